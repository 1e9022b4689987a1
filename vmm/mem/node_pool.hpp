// The free frames of one node: machine frames [first, first + count).
// Frames never handed out lie above a watermark and are known to be zero (the
// host has not even backed them yet); freed frames go on a LIFO stack, so the
// most recently freed frame, still backed and cache-warm, is reused first and
// untouched frames stay unbacked as long as possible.
//
// Runs of consecutive frames (a VM's RAM as one mapping) come from the
// never-used frames above the watermark when enough are left. Otherwise the
// pool looks for the first run among its freed frames (possibly ending in the
// never-used ones): a scan of a bitmap built from the stack, linear in the
// node's size and done under the pool mutex, so runs are for rare events (VM
// creation), not for the fault path.
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
    struct TakenRun {
        u32 first;     // frames [first, first + count)
        u32 recycled;  // the first `recycled` of them were used before; the rest read zero
    };
    /// `count` (>= 1) consecutive free frames, or nothing when the pool has no such run.
    std::optional<TakenRun> take_run(u32 count);
    /// Returns a frame taken from this pool (one at a time, also for frames of a run).
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
    /// The first run of `count` frames free in the stack, or free in the stack up to the
    /// watermark and fresh beyond it, as an offset from first_. Caller holds lock_.
    std::optional<u32> find_recycled_run(u32 count) const;
    /// Drops the stack's entries for frames [begin, end). Caller holds lock_.
    void unstack(u32 begin, u32 end);

    const u32 first_, count_;
    std::mutex lock_;
    u32 next_fresh_;     // frames [next_fresh_, first_ + count_) were never handed out
    HostMapping stack_;  // u32[count_]: freed frames, most recent last
    u32 depth_ = 0;
    std::atomic<u32> free_;
    std::atomic<u64> fallbacks_{0}, foreign_{0};
};
}  // namespace disco
