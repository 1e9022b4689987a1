// What virtio-blk reads and writes: a disk of whole 512-byte sectors behind
// an asynchronous interface on the device's I/O thread. RawDisk is one image
// file (or block device); OverlayDisk is a read-only base image plus a
// copy-on-write overlay file (configs/disk-overlay-format.md).
//
// Threads: a backend is opened and destroyed on its owner's thread while its
// IoRing is idle; read/write/flush, and every completion, run on the one
// thread that reaps that ring (IoRing::dispatch for each completion).
// done may run before the call returns (an error found at once).
#pragma once
#include <sys/uio.h>

#include <memory>
#include <optional>
#include <span>
#include <string>

#include "vmm/dev/virtio/disk_io.hpp"
#include "vmm/mem/disk_page_cache.hpp"

namespace disco::dev {

/// A read-only regular file whose 4 KiB blocks reads may take from the
/// global disk page cache (cached_reads.hpp): an overlay's base, or a raw
/// image opened read-only. Block devices are never shared: what writes them
/// leaves no trace in fstat.
struct ShareableBase {
    int fd = -1;
    std::string path;
    DiskImageId id;  // as opened
};
/// The identity of an open regular file (fstat); nothing for anything else.
std::optional<DiskImageId> image_identity(int fd);

class DiskBackend {
public:
    virtual ~DiskBackend() = default;
    /// The disk's size in bytes, a multiple of 512.
    virtual u64 size() const = 0;
    virtual bool read_only() const = 0;
    /// The disk in messages: its file (and its base).
    virtual std::string name() const = 0;
    /// The default serial (GET_ID): the file name of what the guest writes to.
    virtual std::string serial() const = 0;

    /// Fills iov from the disk at offset (both in whole sectors, inside the
    /// disk); iov stays valid until done.
    virtual void read(u64 offset, std::span<const iovec> iov, IoDone done) = 0;
    /// Writes iov to the disk at offset.
    virtual void write(u64 offset, std::span<const iovec> iov, IoDone done) = 0;
    /// Makes every write that completed before this call durable (VIRTIO_BLK_T_FLUSH).
    virtual void flush(IoDone done) = 0;

    /// The file this disk's unwritten blocks are read from, when sharing them is safe; null otherwise.
    virtual const ShareableBase* shareable_base() const { return nullptr; }
    /// Whether the 4 KiB block at offset (4 KiB aligned) reads now as the
    /// shareable base's bytes at offset: inside the disk, never written by
    /// this disk, no write to it in flight.
    virtual bool reads_base(u64 offset) const {
        (void)offset;
        return false;
    }
};

/// The raw image at path, or with overlay non-empty, the overlay on the base
/// image at path (created if absent, unless read_only). Errors name the file.
Result<std::unique_ptr<DiskBackend>, Error> open_disk_backend(const std::string& path, const std::string& overlay,
                                                              bool read_only, IoRing& ring);

/// The disk size for a file of file_size bytes: whole sectors only, with a
/// warning on stderr naming path when a partial last sector is left out.
u64 visible_disk_size(const std::string& path, u64 file_size);
}  // namespace disco::dev
