#include "vmm/mem/node_pool.hpp"

#include <algorithm>
#include <cassert>
#include <vector>

namespace disco {

Result<std::unique_ptr<NodePool>, MemoryError> NodePool::create(u32 first, u32 count) {
    auto stack = DISCO_TRY(HostMapping::reserve(u64(count) * sizeof(u32)));
    return std::unique_ptr<NodePool>(new NodePool(first, count, std::move(stack)));
}

std::optional<NodePool::Taken> NodePool::take() {
    // An empty pool is common under pressure (every fallback probes it): skip the lock.
    if (free_.load(std::memory_order_relaxed) == 0) return std::nullopt;
    std::lock_guard g(lock_);
    if (depth_ > 0) {
        free_.fetch_sub(1, std::memory_order_relaxed);
        return Taken{stack_.as<u32>()[--depth_], true};
    }
    if (next_fresh_ - first_ < count_) {
        free_.fetch_sub(1, std::memory_order_relaxed);
        return Taken{next_fresh_++, false};
    }
    return std::nullopt;
}

std::optional<NodePool::TakenRun> NodePool::take_run(u32 count) {
    assert(count > 0);
    if (free_.load(std::memory_order_relaxed) < count) return std::nullopt;
    std::lock_guard g(lock_);
    const u32 end = first_ + count_;
    if (end - next_fresh_ >= count) {
        const u32 first = next_fresh_;
        next_fresh_ += count;
        free_.fetch_sub(count, std::memory_order_relaxed);
        return TakenRun{first, 0};
    }
    const auto offset = find_recycled_run(count);
    if (!offset) return std::nullopt;
    const u32 first = first_ + *offset;
    // The run lies below the watermark or straddles it (a run wholly above it
    // would have been served as fresh), so its used frames are a prefix.
    const u32 recycled = std::min(count, next_fresh_ - first);
    unstack(first, first + recycled);
    next_fresh_ = std::max(next_fresh_, first + count);
    free_.fetch_sub(count, std::memory_order_relaxed);
    return TakenRun{first, recycled};
}

std::optional<u32> NodePool::find_recycled_run(u32 count) const {
    const u32 used = next_fresh_ - first_;  // frames ever handed out: [0, used) as offsets
    std::vector<u64> free_bits((used + 63) / 64, 0);
    const u32* stack = stack_.as<u32>();
    for (u32 i = 0; i < depth_; ++i) {
        const u32 o = stack[i] - first_;
        free_bits[o / 64] |= 1ull << (o % 64);
    }
    u32 run_start = 0;
    for (u32 o = 0; o < used; ++o) {
        const u64 word = free_bits[o / 64];
        if (o % 64 == 0 && word == 0) {  // 64 frames in use: skip them at once
            o += 63;
            run_start = std::min(o + 1, used);
            continue;
        }
        if (!(word >> (o % 64) & 1)) {
            run_start = o + 1;
            continue;
        }
        if (o + 1 - run_start == count) return run_start;
    }
    // A free tail below the watermark continued by the fresh frames above it.
    if (used - run_start + (count_ - used) >= count) return run_start;
    return std::nullopt;
}

void NodePool::unstack(u32 begin, u32 end) {
    if (begin == end) return;
    u32* stack = stack_.as<u32>();
    // Stable, so the other freed frames keep their most-recent-first order.
    u32* kept = std::remove_if(stack, stack + depth_, [&](u32 f) { return f - begin < end - begin; });
    assert(u32(stack + depth_ - kept) == end - begin);
    depth_ = static_cast<u32>(kept - stack);
}

void NodePool::give_back(u32 frame) {
    assert(frame - first_ < count_);
    std::lock_guard g(lock_);
    assert(depth_ < count_);
    stack_.as<u32>()[depth_++] = frame;
    free_.fetch_add(1, std::memory_order_relaxed);
}
}  // namespace disco
