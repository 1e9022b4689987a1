// Read-time sharing for virtio-blk (DESIGN.md "Sharing"; Disco §4.3): which
// parts of a read the global disk page cache (vmm/mem/disk_page_cache.hpp)
// may serve by mapping a cached frame instead of copying.
//
// A piece qualifies when it is one whole 4 KiB guest page of machine-memory
// RAM (4 KiB aligned in guest-physical memory and wholly inside one
// descriptor) that the read fills at a 4 KiB aligned disk offset, and the
// disk reads that block from its shareable base unchanged (an overlay's base
// where the guest never wrote that block, or a raw image opened read-only:
// disk_backend.hpp). Everything else of the read is copied as usual. Debian's
// mips64r2el kernel uses 4 KiB pages, so its page-cache reads of a 4 KiB
// block file system qualify; bigger guest pages would be made of 4 KiB
// machine pages that are still aligned.
//
// A base that changes under the monitor (its size or mtime differs from
// when the disk was opened, checked with fstat on each read that has
// qualifying pieces) is refused from then on with one message, and its
// entries are dropped from the cache; its reads are copied. A change within
// one request's window, or one that keeps size and mtime, goes unseen: the
// base is meant to be read-only.
//
// Threads: the device's I/O thread only.
#pragma once
#include <vector>

#include "vmm/dev/virtio/blk_request.hpp"
#include "vmm/dev/virtio/disk_backend.hpp"
#include "vmm/mem/disk_page_cache.hpp"

namespace disco::dev {

/// One 4 KiB piece of a read that the cache may serve.
struct CachedPiece {
    u64 data_offset = 0;  // into the request's data (chain.writable)
    u64 ppage = 0;        // the guest page it fills whole
    u64 block = 0;        // its disk offset / 4 KiB
    MachineFrame frame;   // the cached frame, with a reference of ours, once found or loaded
    bool cached = false;  // frame is the cache's (false: a loaded frame the cache had no room for)
};

class CachedReads {
public:
    /// backend must have a shareable base; both outlive this.
    CachedReads(DiskPageCache& cache, const DiskBackend& backend);

    /// The pieces of the Read request r that the cache may serve, in data
    /// order; empty when none does (or the base just turned out changed).
    std::vector<CachedPiece> plan(const GuestRam& ram, const BlkRequest& r);

    DiskPageCache& cache() const { return cache_; }
    const ShareableBase& base() const { return base_; }

private:
    /// False once the base changed (said once, then always false).
    bool base_unchanged();

    DiskPageCache& cache_;
    const DiskBackend& backend_;
    const ShareableBase& base_;
    bool refused_ = false;
};
}  // namespace disco::dev
