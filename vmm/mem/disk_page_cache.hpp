// The global disk page cache (DESIGN.md "Sharing"; Disco, Bugnion et al.
// 1997, §4.3): machine frames that hold 4 KiB blocks of read-only base
// images, one frame per block for the whole monitor. A virtio-blk read of an
// unmodified base block maps the cached frame into the guest's pmap as
// shared copy-on-write (GuestRam::map_shared_frame) instead of copying, so
// that many VMs booting one image hold its blocks once.
//
// Keys: the image's identity (device, inode, size, mtime in ns: a base that
// changes gets a new identity, and its old entries can no longer be hit) and
// the block number (offset / 4 KiB). The cache holds one reference of its own
// on each frame; a guest page that shows the frame holds another. A frame is
// never written while the cache holds it: every guest page showing it is
// kShared|kDenyWrite, and the first write (a store or device DMA) breaks the
// sharing, which copies because the cache's reference keeps the count above
// one.
//
// Capacity: at most `capacity` entries. When full, an insert evicts the least
// recently used entry that only the cache still references (its frame goes
// back to machine memory); entries that guests map cost nothing extra and are
// skipped. If every entry is mapped, the insert is refused and the caller
// copies as usual.
//
// Threads: every method may be called from any thread (many VMs' virtio-blk
// I/O threads share one cache); one mutex, held for a hash lookup or a short
// bounded scan. The MachineMemory must outlive the cache.
#pragma once
#include <list>
#include <mutex>
#include <optional>
#include <unordered_map>

#include "vmm/mem/machine_frame.hpp"

namespace disco {

class MachineMemory;

/// The capacity the monitor gives its cache: 128 MiB of blocks.
constexpr u64 kDiskCacheDefaultFrames = 32768;

/// Which version of which image file: fstat's st_dev, st_ino, st_size and st_mtim.
struct DiskImageId {
    u64 device = 0;
    u64 inode = 0;
    u64 size = 0;
    i64 mtime_ns = 0;
    bool operator==(const DiskImageId&) const = default;
};

struct DiskCacheStats {
    u64 capacity = 0;            // entries at most
    u64 hits = 0;                // lookups that found their block
    u64 loads = 0;               // misses whose block was read into a new frame and cached
    u64 evictions = 0;           // entries dropped to make room
    u64 refused = 0;             // inserts refused: full of entries that guests map
    u64 frames_held = 0;         // entries now (one frame and one reference each)
    u64 frames_only_cached = 0;  // of those, frames no guest page shows (what the cache costs)
    u64 pages_mapped = 0;        // guest pages pointed at a cached frame (note_mapped)
    u64 pages_copied = 0;        // cacheable reads that were copied instead (note_copied)
    u64 images_refused = 0;      // base images that changed under the monitor (forget)
};

class DiskPageCache {
public:
    /// Frames come from, and go back to, mm. capacity: entries at most (>= 1).
    DiskPageCache(MachineMemory& mm, u64 capacity);
    /// Drops every reference the cache holds (frames guests still map live on).
    ~DiskPageCache();
    DiskPageCache(const DiskPageCache&) = delete;
    DiskPageCache& operator=(const DiskPageCache&) = delete;

    MachineMemory& machine_memory() const { return mm_; }

    /// The frame caching `block` of `image`, with a reference added for the
    /// caller (who releases it); nothing on a miss.
    std::optional<MachineFrame> find(const DiskImageId& image, u64 block);
    /// Caches `frame`, which holds the block's bytes and on which the caller
    /// holds a reference (the cache takes one of its own). Returns the frame
    /// now cached for the block: `frame` itself (the caller's reference
    /// stays its), or the frame another thread cached first, with a
    /// reference added for the caller (who then releases `frame`); nothing
    /// when the cache is full of mapped entries (the caller keeps `frame`).
    std::optional<MachineFrame> insert(const DiskImageId& image, u64 block, MachineFrame frame);
    /// Drops every entry of `image`: it changed under the monitor.
    void forget(const DiskImageId& image);
    /// Drops every entry (the monitor is done with its VMs).
    void clear();

    /// The device side's figures: guest pages mapped from the cache, cacheable reads copied.
    void note_mapped() { bump(&Counters::mapped); }
    void note_copied() { bump(&Counters::copied); }
    DiskCacheStats stats() const;

private:
    struct Key {
        DiskImageId image;
        u64 block = 0;
        bool operator==(const Key&) const = default;
    };
    struct KeyHash {
        usize operator()(const Key& k) const;
    };
    struct Entry {
        Key key;
        MachineFrame frame;
    };
    struct Counters {
        u64 hits = 0, loads = 0, evictions = 0, refused = 0, mapped = 0, copied = 0, images = 0;
    };
    /// Evicts one entry only the cache references, oldest first; false if none (mutex_ held).
    bool evict_one_locked();
    void drop_locked(std::list<Entry>::iterator it);
    void bump(u64 Counters::*field);

    MachineMemory& mm_;
    const u64 capacity_;
    mutable std::mutex mutex_;
    std::list<Entry> lru_;  // most recently used first
    std::unordered_map<Key, std::list<Entry>::iterator, KeyHash> index_;
    Counters counters_;
};
}  // namespace disco
