// Test set-up shared by the memory-layer tests: machine memory on simulated
// nodes, and a VM's RAM on it with its own shootdown coordinator.
#pragma once
#include <catch2/catch.hpp>

#include "vmm/mem/guest_ram.hpp"
#include "vmm/mem/machine_memory.hpp"
#include "vmm/mem/shootdown.hpp"

namespace disco::test {

/// `nodes` simulated nodes of `bytes_per_node` each.
inline auto test_machine_memory(unsigned nodes, u64 bytes_per_node) {
    MachineMemoryConfig mc;
    mc.numa_sim = nodes;
    mc.bytes_per_node = bytes_per_node;
    auto mm = MachineMemory::create(mc);
    REQUIRE(mm.has_value());
    return std::move(*mm);
}

/// One VM's RAM, [0, bytes), backed by `mm` with `home` as its home node.
struct TestVmRam {
    GuestRam ram;
    Shootdown shootdown;
    TestVmRam(MachineMemory& mm, u32 vm_id, u64 bytes, unsigned vcpus = 1, NodeId home = 0) : shootdown(vcpus) {
        ram.use_machine_memory(&mm, home, vm_id);
        ram.set_shootdown(&shootdown);
        REQUIRE(ram.add_region(GuestPhysAddr(0), bytes));
    }
};
}  // namespace disco::test
