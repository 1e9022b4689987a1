#include "vmm/mem/node_pool.hpp"

#include <cassert>

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

void NodePool::give_back(u32 frame) {
    assert(frame - first_ < count_);
    std::lock_guard g(lock_);
    assert(depth_ < count_);
    stack_.as<u32>()[depth_++] = frame;
    free_.fetch_add(1, std::memory_order_relaxed);
}
}  // namespace disco
