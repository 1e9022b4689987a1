// The free frames of one node: machine frames [first, first + count).
// Frames never handed out lie above a watermark and are known to be zero (the
// host has not even backed them yet); freed frames go on a LIFO stack, so the
// most recently freed frame, still backed and cache-warm, is reused first and
// untouched frames stay unbacked as long as possible.
//
// Threads: any thread may take and give back; one mutex per pool guards the
// stack and the watermark, and the counters are atomics readable without it.
#pragma once
#include <atomic>
#include <memory>
#include <mutex>
#include <optional>

#include "vmm/mem/host_mapping.hpp"

namespace disco {
class NodePool {
public:
    static Result<std::unique_ptr<NodePool>, MemoryError> create(u32 first, u32 count);

    struct Taken {
        u32 frame;
        bool needs_zeroing;  // it was used before; a fresh frame reads zero already
    };
    /// A free frame, or nothing when the pool is empty.
    std::optional<Taken> take();
    /// Returns a frame taken from this pool.
    void give_back(u32 frame);

    u32 first() const { return first_; }
    u32 count() const { return count_; }
    u32 free_frames() const { return free_.load(std::memory_order_relaxed); }

    /// An allocation that preferred this node was served by another one.
    void note_fallback() { fallbacks_.fetch_add(1, std::memory_order_relaxed); }
    /// This node served an allocation that preferred another node.
    void note_foreign() { foreign_.fetch_add(1, std::memory_order_relaxed); }
    u64 fallbacks() const { return fallbacks_.load(std::memory_order_relaxed); }
    u64 foreign() const { return foreign_.load(std::memory_order_relaxed); }

private:
    NodePool(u32 first, u32 count, HostMapping stack)
        : first_(first), count_(count), next_fresh_(first), stack_(std::move(stack)), free_(count) {}

    const u32 first_, count_;
    std::mutex lock_;
    u32 next_fresh_;     // frames [next_fresh_, first_ + count_) were never handed out
    HostMapping stack_;  // u32[count_]: freed frames, most recent last
    u32 depth_ = 0;
    std::atomic<u32> free_;
    std::atomic<u64> fallbacks_{0}, foreign_{0};
};
}  // namespace disco
