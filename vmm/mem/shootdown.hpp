// Soft-TLB shootdowns (DESIGN.md "The memory path"): before a page operation
// copies or remaps a guest page, every vCPU that may hold a write permission
// for it in its soft TLB must drop it and say so at a safe point.
//
// Guest RAM is a view (guest_ram.hpp): a vCPU's soft TLB caches view
// addresses, which never change when a page moves to another machine frame;
// only write permissions can go stale. So a shootdown asks every vCPU to drop
// all its write tags (they refill on the next store, through the slow path,
// which consults the pmap) and to acknowledge the request's epoch.
//
// Protocol. The initiator sets the page's write-deny state in the pmap first,
// then calls shoot_down(): that bumps the epoch (release) and waits until
// each vCPU has acknowledged it or is quiescent. A vCPU polls epoch() at its
// safe points (between run slices, at page changes, and while it waits in a
// slow path); when it changed it drops its write tags, then acknowledge()s.
// A vCPU that sleeps (WAIT, held in reset) is quiescent: before it next
// touches guest memory it leaves quiescence, which first drops write tags.
// Any write tag filled after an acknowledgement sees the write-deny state,
// because the initiator published it before the epoch it acknowledged.
//
// Threads: any number of initiators (page operations serialise themselves);
// each vCPU slot is written only by its own vCPU thread.
#pragma once
#include <atomic>
#include <memory>

#include "vmm/util/types.hpp"

namespace disco {

class Shootdown {
public:
    explicit Shootdown(unsigned vcpus);
    unsigned vcpus() const { return n_; }

    /// Initiator: waits until every vCPU dropped the write tags it held when called.
    /// Returns the number of vCPUs that had to acknowledge (not quiescent).
    unsigned shoot_down();

    // ---- vCPU side (its own thread) ----
    u64 epoch() const { return epoch_.load(std::memory_order_acquire); }
    void acknowledge(unsigned vcpu, u64 epoch);
    /// Around sleeps: a quiescent vCPU holds no write tag anyone waits for.
    void enter_quiescent(unsigned vcpu);
    /// Returns the epoch to acknowledge after dropping write tags.
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
};
}  // namespace disco
