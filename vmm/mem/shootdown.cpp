#include "vmm/mem/shootdown.hpp"

#include <mutex>
#include <thread>

namespace disco {

Shootdown::Shootdown(unsigned vcpus) : n_(vcpus), slots_(new Slot[vcpus]) {}

unsigned Shootdown::shoot_down(u64 ppage) { return shoot_down_pages(std::span<const u64>(&ppage, 1)); }

unsigned Shootdown::shoot_down_pages(std::span<const u64> ppages) {
    if (ppages.empty()) return 0;
    requests_.fetch_add(ppages.size(), std::memory_order_relaxed);
    // Initiators take epochs one at a time, so that each epoch's page is
    // recorded before any vCPU can see the epoch.
    std::lock_guard<std::mutex> lock(initiators_);
    const u64 first = epoch_.load(std::memory_order_relaxed) + 1;
    const u64 target = first + ppages.size() - 1;
    // Only the last kRecent matter: a vCPU further behind flushes everything.
    for (u64 e = ppages.size() > kRecent ? target - kRecent + 1 : first; e <= target; ++e)
        recent_[e % kRecent].store(ppages[e - first], std::memory_order_release);
    // seq_cst: the bump must be ordered after the caller's pmap update and
    // before the loads of the vCPUs' slots below (a Dekker-style handshake
    // with enter_quiescent / leave_quiescent).
    epoch_.store(target, std::memory_order_seq_cst);
    unsigned waited = 0;
    for (unsigned i = 0; i < n_; ++i) {
        Slot& s = slots_[i];
        bool counted = false;
        for (unsigned spins = 0;; ++spins) {
            if (s.acked.load(std::memory_order_seq_cst) >= target) break;
            if (s.quiescent.load(std::memory_order_seq_cst)) break;
            if (!counted) {
                counted = true;
                ++waited;
            }
            // A running vCPU reaches a safe point within one run slice (tens of µs).
            if (spins > 64) std::this_thread::yield();
        }
    }
    return waited;
}

void Shootdown::acknowledge(unsigned vcpu, u64 epoch) {
    Slot& s = slots_[vcpu];
    if (s.acked.load(std::memory_order_relaxed) < epoch) s.acked.store(epoch, std::memory_order_seq_cst);
}

void Shootdown::enter_quiescent(unsigned vcpu) { slots_[vcpu].quiescent.store(true, std::memory_order_seq_cst); }

u64 Shootdown::leave_quiescent(unsigned vcpu) {
    slots_[vcpu].quiescent.store(false, std::memory_order_seq_cst);
    // Read after leaving: a request that saw us quiescent did not wait for us,
    // so we must drop whatever we cached, up to this epoch.
    return epoch_.load(std::memory_order_seq_cst);
}
}  // namespace disco
