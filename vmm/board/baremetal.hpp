// The bare-metal board: what a small test kernel needs and nothing more —
// RAM, a 16550 UART for the console and a test device through which the
// guest reports its result and ends the VM. guest-kernel/README.md documents
// the same map for guest authors.
#pragma once
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "vmm/accel/engine.hpp"
#include "vmm/mem/guest_ram.hpp"
#include "vmm/mem/mmio.hpp"
#include "vmm/util/result.hpp"

namespace disco::board {

// Memory map (guest-physical).
constexpr u64 kRamLowLimit = 0x1F000000;  // RAM below the device window
constexpr u64 kRamHighBase = 0x20000000;  // the rest of RAM continues here
constexpr u64 kUartBase = 0x1F020000;     // 16550, byte registers (reg-shift 0)
constexpr u64 kUartSize = 0x100;
constexpr u64 kTestDeviceBase = 0x1F030000;  // 32-bit write of V: exit with V & 0xFF
constexpr u64 kTestDeviceSize = 0x10;
constexpr unsigned kUartIrq = 2;  // Cause.IP2
constexpr u64 kMinMemory = 1ull << 20;
constexpr u64 kMaxMemory = 64ull << 30;

struct BoardHooks {
    std::function<void(std::span<const u8>)> console_out;
    std::function<void(int)> exit;
    std::function<void(bool)> uart_irq;
};

struct BareMetalBoot {
    ByteOrder byte_order;
    accel::ResetState reset;  // for vCPU 0; others differ only in their index
};

/// Adds RAM and devices to the VM and loads the kernel ELF; one error line on failure.
Result<BareMetalBoot, Error> build_baremetal_board(GuestRam& ram, MmioBus& mmio, u64 memory_bytes,
                                                   const std::string& kernel_path, BoardHooks hooks);
}  // namespace disco::board
