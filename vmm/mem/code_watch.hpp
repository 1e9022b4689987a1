// Tracks which guest-physical RAM pages hold code that some vCPU has decoded,
// so that a write to such a page drops the decoded copy (DESIGN.md, "Code
// pages"). One per VM; shared by its vCPUs.
#pragma once
#include <atomic>
#include <memory>

#include "vmm/util/types.hpp"

namespace disco {
class CodeWatch {
public:
    /// Covers guest-physical pages [0, limit_pa).
    explicit CodeWatch(u64 limit_pa);

    /// Marks a page as holding decoded code; returns its current generation.
    /// A page that was not watched before makes every vCPU drop its cached
    /// write permissions (flush_epoch), so that the next write is seen here.
    u32 watch(u64 ppage);
    /// The page's generation: decoded code is valid only while this is unchanged.
    u32 generation(u64 ppage) const { return ppage < pages_ ? state_[ppage].load(std::memory_order_acquire) >> 1 : 0; }
    bool watched(u64 ppage) const { return ppage < pages_ && (state_[ppage].load(std::memory_order_relaxed) & 1); }
    /// Called after a write to ppage (by a vCPU or a device): invalidates its code.
    void note_write(u64 ppage) {
        if (ppage >= pages_) return;
        u32 s = state_[ppage].load(std::memory_order_relaxed);
        // Bump the generation and clear the watched bit in one step.
        while ((s & 1) && !state_[ppage].compare_exchange_weak(s, (s + 2) & ~1u, std::memory_order_acq_rel)) {
        }
    }
    u64 flush_epoch() const { return flush_epoch_.load(std::memory_order_acquire); }

private:
    u64 pages_;
    std::unique_ptr<std::atomic<u32>[]> state_;  // generation << 1 | watched
    std::atomic<u64> flush_epoch_{0};
};
}  // namespace disco
