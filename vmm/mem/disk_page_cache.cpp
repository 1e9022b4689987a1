#include "vmm/mem/disk_page_cache.hpp"

#include <algorithm>
#include <functional>

#include "vmm/mem/machine_memory.hpp"

namespace disco {
namespace {
/// Entries an eviction looks at before giving up: mapped ones it passes go to
/// the front (a second chance), so the next scan starts among others.
constexpr unsigned kEvictScan = 256;

usize mix(usize h, u64 v) { return h ^ (std::hash<u64>{}(v) + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2)); }
}  // namespace

usize DiskPageCache::KeyHash::operator()(const Key& k) const {
    usize h = std::hash<u64>{}(k.block);
    h = mix(h, k.image.inode);
    h = mix(h, k.image.device);
    h = mix(h, k.image.size);
    return mix(h, static_cast<u64>(k.image.mtime_ns));
}

DiskPageCache::DiskPageCache(MachineMemory& mm, u64 capacity) : mm_(mm), capacity_(std::max<u64>(capacity, 1)) {}

DiskPageCache::~DiskPageCache() { clear(); }

void DiskPageCache::bump(u64 Counters::*field) {
    std::lock_guard lock(mutex_);
    ++(counters_.*field);
}

std::optional<MachineFrame> DiskPageCache::find(const DiskImageId& image, u64 block) {
    std::lock_guard lock(mutex_);
    auto it = index_.find(Key{image, block});
    if (it == index_.end()) return std::nullopt;
    // Under the mutex: an eviction (which also holds it) cannot drop the frame meanwhile.
    if (!mm_.add_ref(it->second->frame)) return std::nullopt;
    lru_.splice(lru_.begin(), lru_, it->second);
    ++counters_.hits;
    return it->second->frame;
}

std::optional<MachineFrame> DiskPageCache::insert(const DiskImageId& image, u64 block, MachineFrame frame) {
    std::lock_guard lock(mutex_);
    const Key key{image, block};
    if (auto it = index_.find(key); it != index_.end()) {
        // Another VM loaded the same block meanwhile: everyone uses that one.
        if (!mm_.add_ref(it->second->frame)) return std::nullopt;
        ++counters_.hits;
        return it->second->frame;
    }
    if (index_.size() >= capacity_ && !evict_one_locked()) {
        ++counters_.refused;
        return std::nullopt;
    }
    if (!mm_.add_ref(frame)) return std::nullopt;  // the cache's own reference
    lru_.push_front(Entry{key, frame});
    index_.emplace(key, lru_.begin());
    ++counters_.loads;
    return frame;  // the caller's reference stays the caller's
}

bool DiskPageCache::evict_one_locked() {
    const usize scan = std::min<usize>(kEvictScan, lru_.size());
    for (usize looked = 0; looked < scan; ++looked) {
        auto last = std::prev(lru_.end());
        // Count 1: only the cache's reference. Nobody can add one without the
        // mutex (find) or without showing the frame already (page sharing).
        if (mm_.ref_count(last->frame) == 1) {
            drop_locked(last);
            ++counters_.evictions;
            return true;
        }
        lru_.splice(lru_.begin(), lru_, last);
    }
    return false;
}

void DiskPageCache::drop_locked(std::list<Entry>::iterator it) {
    index_.erase(it->key);
    (void)mm_.release(it->frame);
    lru_.erase(it);
}

void DiskPageCache::forget(const DiskImageId& image) {
    std::lock_guard lock(mutex_);
    ++counters_.images;
    for (auto it = lru_.begin(); it != lru_.end();) {
        auto next = std::next(it);
        if (it->key.image == image) drop_locked(it);
        it = next;
    }
}

void DiskPageCache::clear() {
    std::lock_guard lock(mutex_);
    while (!lru_.empty()) drop_locked(lru_.begin());
}

DiskCacheStats DiskPageCache::stats() const {
    std::lock_guard lock(mutex_);
    DiskCacheStats s;
    s.capacity = capacity_;
    s.hits = counters_.hits;
    s.loads = counters_.loads;
    s.evictions = counters_.evictions;
    s.refused = counters_.refused;
    s.pages_mapped = counters_.mapped;
    s.pages_copied = counters_.copied;
    s.images_refused = counters_.images;
    s.frames_held = lru_.size();
    for (const Entry& e : lru_) s.frames_only_cached += mm_.ref_count(e.frame) == 1;
    return s;
}
}  // namespace disco
