// Distinct types for the three address spaces of DESIGN.md ("The memory
// path"): guest-virtual, guest-physical and machine. A value of one can never
// be passed where another is expected without an explicit conversion.
#pragma once
#include <compare>

#include "vmm/util/types.hpp"

namespace disco {
template <class Tag>
struct Address {
    u64 value = 0;
    constexpr Address() = default;
    constexpr explicit Address(u64 v) : value(v) {}
    constexpr Address operator+(u64 off) const { return Address(value + off); }
    constexpr u64 operator-(Address o) const { return value - o.value; }
    constexpr auto operator<=>(const Address&) const = default;
    constexpr u64 page() const { return value >> 12; }
    constexpr u64 page_offset() const { return value & 0xFFF; }
};
struct GuestVirtTag {};
struct GuestPhysTag {};
struct MachineTag {};
/// What guest code uses, translated by the guest's TLB or unmapped segments.
using GuestVirtAddr = Address<GuestVirtTag>;
/// What the guest OS believes is RAM or device space.
using GuestPhysAddr = Address<GuestPhysTag>;
/// Host memory owned by the monitor (offset into machine memory).
using MachineAddr = Address<MachineTag>;

constexpr u64 kPageSize = 4096;
constexpr u64 kPageShift = 12;
}  // namespace disco
