// Soft-TLB shootdowns (DESIGN.md "The memory path"): before a page operation
// copies a guest page, and again before it reuses the frame the page left,
// every vCPU that may hold a soft-TLB entry for the page must drop it and say
// so at a safe point.
//
// A vCPU's soft TLB caches host pointers to machine frames (guest_ram.hpp).
// A shootdown names one guest-physical page; each vCPU drops the entries
// that translate to it (all of them when it has fallen too far behind to
// know which pages were named) and acknowledges the request's epoch.
//
// Protocol. The initiator updates the pmap first (write-deny state, or the
// new frame), then calls shoot_down(page): that records the page for the new
// epoch, bumps the epoch (seq_cst) and waits until each vCPU has acknowledged
// it or is quiescent. A vCPU polls epoch() at its safe points (between run
// slices and at page changes); when it changed it asks pages_since() what to
// drop, drops it, then acknowledge()s. A vCPU that sleeps (WAIT, held in
// reset), serves MMIO or waits in a slow path is quiescent: before it next
// touches guest memory it leaves quiescence and, if the epoch moved, flushes
// its whole soft TLB. Any entry filled after an acknowledgement sees the
// initiator's pmap update, which was published before the epoch.
//
// Threads: any number of initiators; each vCPU slot is written only by its
// own vCPU thread.
#pragma once
#include <atomic>
#include <memory>
#include <mutex>
#include <span>

#include "vmm/util/types.hpp"

namespace disco {

class Shootdown {
public:
    /// How many recent requests' pages are remembered; a vCPU further behind flushes everything.
    /// As many as a page-migration batch names (numad's pages-migrate: up to
    /// 1024), so that a batch drops just its pages rather than flushing every
    /// vCPU's soft TLB: a flush costs a refill of each entry, which the access
    /// counters would count as accesses. 8 KiB per VM.
    static constexpr unsigned kRecent = 1024;

    explicit Shootdown(unsigned vcpus);
    unsigned vcpus() const { return n_; }

    /// Initiator: waits until every vCPU dropped the entries for guest-physical
    /// page `ppage` that it held when called. Returns the number of vCPUs
    /// that had to acknowledge (not quiescent).
    unsigned shoot_down(u64 ppage);
    /// The same for several pages with one wait: each page gets its own epoch
    /// (so vCPUs drop just those, or flush all when there are more than
    /// kRecent), and the initiator waits once, for the last of them.
    unsigned shoot_down_pages(std::span<const u64> ppages);

    // ---- vCPU side (its own thread) ----
    u64 epoch() const { return epoch_.load(std::memory_order_acquire); }
    /// The pages named by requests (seen, now]: calls drop(ppage) for each and
    /// returns true, or returns false when they are no longer all known (the
    /// caller then flushes everything).
    template <class Drop>
    bool pages_since(u64 seen, u64 now, Drop drop) const {
        if (now - seen > kRecent) return false;
        for (u64 e = seen + 1; e <= now; ++e) drop(recent_[e % kRecent].load(std::memory_order_acquire));
        // A request that overwrote a slot while we read it: we cannot trust what we read.
        return epoch_.load(std::memory_order_acquire) - seen <= kRecent;
    }
    void acknowledge(unsigned vcpu, u64 epoch);
    /// Around sleeps and waits: a quiescent vCPU holds no entry anyone waits for.
    void enter_quiescent(unsigned vcpu);
    /// Returns the epoch to acknowledge after flushing (if it moved).
    u64 leave_quiescent(unsigned vcpu);

    u64 requests() const { return requests_.load(std::memory_order_relaxed); }

private:
    struct alignas(64) Slot {
        std::atomic<u64> acked{0};
        std::atomic<bool> quiescent{true};  // until its vCPU first runs
    };
    unsigned n_;
    std::unique_ptr<Slot[]> slots_;
    std::atomic<u64> epoch_{0};
    std::atomic<u64> requests_{0};
    std::atomic<u64> recent_[kRecent] = {};  // page named by epoch e, at e % kRecent
    std::mutex initiators_;                  // one request at a time, start to finish
};
}  // namespace disco
