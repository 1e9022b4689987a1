// A disk made of a shared read-only base image and this disk's own
// copy-on-write overlay file (format: overlay_format.hpp,
// configs/disk-overlay-format.md).
//
// Reads of a cluster the guest never wrote come from the base; of one it
// wrote, from the overlay. The first write to a cluster goes to a fresh
// overlay cluster (a partial one merged with the base's bytes first, all on
// the I/O thread through the ring); once that write completed the cluster is
// mapped, and later writes to it go to the same place, as on a disk. The
// base is opened read-only: nothing the guest does reaches it.
//
// Crash safety: the table reaches the file only in a commit, made by flush():
// the changed table blocks go to their spare copies, fdatasync, then the
// commit record naming the new generation, fdatasync. A crash at any point
// leaves the last complete commit intact, and every write that completed
// before a flush that completed is in it. Anything wrong on open is refused
// with the reason; nothing is repaired.
//
// Requests touching a cluster whose first write is in flight wait for it
// (they are retried when it ends), so that two partial first writes to one
// cluster cannot lose each other's sectors.
#pragma once
#include <deque>
#include <functional>
#include <optional>
#include <unordered_set>
#include <vector>

#include "vmm/dev/virtio/disk_backend.hpp"
#include "vmm/dev/virtio/overlay_format.hpp"

namespace disco::dev {

class OverlayDisk final : public DiskBackend {
public:
    /// Opens the overlay on base (creating it, with base's identity, if it
    /// does not exist and read_only is false) and checks it against base.
    static Result<std::unique_ptr<OverlayDisk>, Error> open(const std::string& base, const std::string& overlay,
                                                            bool read_only, IoRing& ring);
    /// Commits what the last flush did not (the ring must be idle).
    ~OverlayDisk() override;

    u64 size() const override { return geometry_.disk_size; }
    bool read_only() const override { return read_only_; }
    std::string name() const override;
    std::string serial() const override;
    void read(u64 offset, std::span<const iovec> iov, IoDone done) override;
    void write(u64 offset, std::span<const iovec> iov, IoDone done) override;
    void flush(IoDone done) override;

    /// Whether the cluster holding disk offset has its data in the overlay.
    bool in_overlay(u64 offset) const;
    const ShareableBase* shareable_base() const override { return base_ ? &*base_ : nullptr; }
    /// A cluster is one 4 KiB block: in the base while the guest never wrote
    /// it and no first write of it is in flight.
    bool reads_base(u64 offset) const override;
    /// Clusters the guest has written (mapped in the overlay).
    u64 clusters_in_overlay() const { return mapped_; }
    /// The generation of the last commit (0: none since creation).
    u64 generation() const { return committed_; }
    const overlay::BaseIdentity& base_identity() const { return base_id_; }
    /// True once an fdatasync of the overlay failed: what it covered may not
    /// be on disk, so the disk takes no more writes or flushes (EIO).
    bool failed() const { return failed_; }

private:
    struct BlockState {
        u8 active = 0;  // the copy (0 or 1) the last commit made current; commits write the other
        u32 crc = 0;    // that copy's checksum (0: never written)
        bool dirty = false;
    };
    struct CommitJob;

    OverlayDisk(std::string base_path, std::string overlay_path, int base_fd, int overlay_fd, bool read_only,
                IoRing& ring, const overlay::Geometry& g);
    static Result<void, std::string> load(OverlayDisk& d, u64 file_size);
    /// Answers a request with nothing to transfer (out of range: -EINVAL; empty: 0); true if it did.
    bool answered_at_once(u64 offset, u64 length, IoDone& done);
    bool defer_if_busy(u64 offset, u64 length, std::function<void()> retry);
    void run_deferred();
    u32 allocate();
    void first_write_done(u64 first_cluster, u32 first_slot, u64 count, int res);
    void copy_up(u64 cluster, u32 slot, u64 within, std::vector<iovec> data, IoDone done);
    void mark_dirty(u32 block);
    void commit();
    void end_commit(std::vector<IoDone>& waiters, int res);
    void fail_writes(const char* what, int err);

    const std::string base_path_, overlay_path_;
    const int base_fd_, overlay_fd_;
    const bool read_only_;
    IoRing& ring_;
    const overlay::Geometry geometry_;
    overlay::BaseIdentity base_id_;
    std::optional<ShareableBase> base_;  // a regular file's (the disk page cache's key)

    std::vector<u32> table_;  // disk cluster -> overlay cluster (0: in the base), table_blocks * 1020 entries
    std::vector<BlockState> blocks_;
    std::vector<u32> dirty_;                      // blocks changed since the last commit began, in order
    std::unordered_set<u64> busy_;                // disk clusters whose first write is in flight
    std::vector<u32> free_;                       // overlay clusters whose first write failed: handed out again first
    std::deque<std::function<void()>> deferred_;  // requests waiting for a busy cluster
    u64 next_free_ = 0;                           // the next overlay cluster never handed out
    u64 committed_ = 0;
    u64 mapped_ = 0;
    u64 max_mapped_ = 0;  // the highest overlay cluster mapped
    bool committing_ = false;
    std::vector<IoDone> flush_waiters_;  // flushes for the next commit
    bool failed_ = false;
};
}  // namespace disco::dev
