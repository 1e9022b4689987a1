// The device side of one split virtqueue (virtio 1.1 §2.6): takes descriptor
// chains the driver made available and returns them through the used ring.
//
// The driver is hostile. Every index, address, length and chain is checked
// before use: a descriptor outside guest RAM, an index past the queue size, a
// chain longer than the queue (a loop), a readable buffer after a writable
// one, a malformed indirect table or an avail index that jumps too far is a
// fault. The queue then stops (broken(): pop returns nothing, push does
// nothing) and the fault text goes to the caller, who reports it through
// VirtioHost::device_error. Each descriptor is read once into a local and
// checked there, so a driver rewriting it meanwhile cannot slip past a check.
//
// Threads: one thread at a time uses a queue (the device's own lock or
// thread); the driver's vCPUs write the rings concurrently, which is what the
// barriers documented in virtqueue.cpp are for. All guest memory goes
// through GuestRam's bounds-checked lookups, each time it is used.
#pragma once
#include <optional>
#include <string>

#include "vmm/dev/virtio/chain.hpp"
#include "vmm/dev/virtio/device.hpp"
#include "vmm/util/result.hpp"

namespace disco::dev {

class VirtQueue {
public:
    /// Why the driver's ring layout is unusable (size not a power of 2 or
    /// above max_size, a misaligned or out-of-RAM part), or nullopt if it is fine.
    static std::optional<std::string> check_layout(const GuestRam& ram, const VirtQueueLayout& layout, u16 max_size);

    /// A queue over a layout that passed check_layout; features are the
    /// negotiated ones (INDIRECT_DESC and EVENT_IDX change the ring rules).
    VirtQueue(GuestRam& ram, const VirtQueueLayout& layout, u64 features);

    /// The next available chain, nullopt when none is, or the fault text (the
    /// queue is then broken).
    Result<std::optional<DescChain>, std::string> pop();
    /// Returns a chain to the driver with the number of bytes written into it.
    Result<void, std::string> push(u16 head, u32 written);
    /// After a batch of push(): whether the driver asked to be interrupted for
    /// what was used since the last time this said yes (§2.6.7, §2.6.10).
    bool needs_interrupt();
    /// Before waiting for the next notification: tells the driver which avail
    /// index to notify for (EVENT_IDX, §2.6.7.2) and reports whether more
    /// chains arrived meanwhile (then pop again instead of waiting).
    bool arm_notification();

    bool broken() const { return broken_; }
    /// Stops the queue for a fault the device found in a chain's contents.
    void mark_broken() { broken_ = true; }
    u16 size() const { return layout_.size; }
    /// Chains popped and not yet pushed back.
    u16 in_flight() const { return static_cast<u16>(last_avail_ - used_idx_); }

private:
    Result<DescChain, std::string> walk_chain(u16 head);
    std::string fault(std::string what);
    u16 load_u16(GuestPhysAddr a, bool acquire) const;
    void store_u16(GuestPhysAddr a, u16 v, bool release);

    GuestRam& ram_;
    VirtQueueLayout layout_;
    bool indirect_, event_idx_;
    u16 last_avail_ = 0;      // the next avail ring entry to take
    u16 used_idx_ = 0;        // the next used ring entry to fill
    u16 signalled_used_ = 0;  // used_idx_ when the driver was last interrupted (EVENT_IDX)
    bool broken_ = false;
};
}  // namespace disco::dev
