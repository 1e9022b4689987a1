// Names for machine memory (DESIGN.md "The memory path", address space 3):
// 4 KiB machine frames numbered from 0 across every node, the nodes they sit
// on, and the {VM, guest-physical page} pairs that map a frame.
#pragma once
#include <compare>

#include "vmm/mem/address.hpp"

namespace disco {

/// A (real or simulated) NUMA node of machine memory, numbered densely from 0.
/// It is not the host's node number: NumaNode::host_node gives that.
using NodeId = u32;

/// One machine frame. 32 bits keep pmap entries small and still cover 16 TiB.
struct MachineFrame {
    static constexpr u32 kNone = ~0u;
    u32 index = kNone;

    constexpr MachineFrame() = default;
    constexpr explicit MachineFrame(u32 i) : index(i) {}
    constexpr auto operator<=>(const MachineFrame&) const = default;

    constexpr bool is_none() const { return index == kNone; }
    /// Machine address of the frame's first byte (offset into machine memory).
    constexpr MachineAddr addr() const { return MachineAddr(u64(index) << kPageShift); }
    /// The frame holding a machine address; none when the address lies beyond any frame number.
    static constexpr MachineFrame containing(MachineAddr a) {
        return a.page() < kNone ? MachineFrame(static_cast<u32>(a.page())) : MachineFrame();
    }
};

/// One user of a frame: VM `vm` maps guest-physical page `gppage` (address >> 12) to it.
struct FrameUser {
    u32 vm = 0;
    u64 gppage = 0;
    constexpr auto operator<=>(const FrameUser&) const = default;
};

/// Page numbers of 64-bit addresses fit in 52 bits; larger values are not pages.
constexpr u64 kMaxGuestPage = (1ull << (64 - kPageShift)) - 1;
}  // namespace disco
