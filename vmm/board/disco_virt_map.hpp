// The disco-virt board's guest-physical memory map (guest-kernel/disco-virt.md
// documents it with the device-tree binding). Everything below 4 GiB; MMIO in
// one 16 MiB window under 512 MiB so KSEG1 reaches it, RAM at 0 and again
// from 512 MiB (the layout of ../shared/reference/guest-board.md §5.3).
#pragma once
#include "vmm/util/types.hpp"

namespace disco::board::virt {
constexpr u64 kRam0Base = 0x00000000, kRam0Limit = 0x1F000000;  // RAM below the MMIO window (496 MiB)
constexpr u64 kRam1Base = 0x20000000;                           // the rest of RAM
constexpr u64 kSysconBase = 0x1F000000, kSysconSize = 0x1000;   // +0 reboot, +4 poweroff
constexpr u64 kRtcBase = 0x1F010000, kRtcSize = 0x1000;         // goldfish RTC
constexpr u64 kUartBase = 0x1F020000, kUartSize = 0x100;        // ns16550a, reg-shift 0
constexpr u64 kVirtioBase = 0x1F100000, kVirtioStride = 0x1000, kVirtioSize = 0x200;
constexpr unsigned kVirtioSlots = 8;
constexpr u64 kGicBase = 0x1F400000, kGicSize = 0x20000;         // 128 KiB, 128 KiB aligned
constexpr u64 kCpcBase = 0x1F800000, kCpcSize = 0x8000;          // 32 KiB
constexpr u64 kGcrBase = 0x1FBF8000, kGcrSize = 0x8000;          // CMGCRBase = base >> 4
constexpr u64 kL2SyncBase = 0x1FC00000, kL2SyncSize = 0x1000;    // GCR_L2_ONLY_SYNC target

// GIC shared interrupt lines (the top 2 x ncpus lines are Linux's IPIs).
constexpr unsigned kUartIrq = 0, kRtcIrq = 1, kVirtioIrqBase = 8;
constexpr unsigned kGicSharedInterrupts = 64;

// Clocks: CP0 Count at 100 MHz, the CPU clock the device tree declares at
// twice that (Linux halves it, guest-board.md §1.5); the GIC counter at 100 MHz.
constexpr u64 kCountHz = 100'000'000, kCpuClockHz = 2 * kCountHz, kGicTimerHz = 100'000'000;
constexpr u64 kUartClockHz = 1'843'200;

// Boot placement (guest-board.md §5.2): the DTB and initrd above where KASLR
// may move the kernel.
constexpr u64 kDtbBase = 0x04000000, kDtbMaxSize = 0x10000;
constexpr u64 kInitrdBase = 0x04100000;
constexpr u64 kMinMemory = 64ull << 20, kMaxMemory = 16ull << 30;
}  // namespace disco::board::virt
