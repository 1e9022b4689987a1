// The disco-virt board: what Debian's stock mips64r2el kernel needs to boot
// SMP (guest-board.md) — RAM on both sides of one MMIO window, the MIPS GIC,
// the Coherence Manager and Cluster Power Controller for CPS SMP, a 16550
// console, a goldfish RTC, syscon reboot/poweroff and eight virtio-mmio
// slots — described to the guest by a generated device tree handed over the
// UHI way (a0 = -2, a1 = the DTB). disco_virt_map.hpp has the memory map.
#pragma once
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "vmm/accel/engine.hpp"
#include "vmm/mem/guest_ram.hpp"
#include "vmm/mem/mmio.hpp"
#include "vmm/util/result.hpp"

namespace disco::dev {
class Uart16550;
class Gic;
class VirtioConsole;
}  // namespace disco::dev

namespace disco {
class DiskPageCache;
}

namespace disco::board {

struct DiskSpec {
    std::string path;
    bool read_only = false;
    std::string overlay;  // non-empty: path is the read-only base of this copy-on-write overlay
};

struct VirtConfig {
    u64 memory_bytes = 256ull << 20;
    unsigned ncpus = 1;
    std::string kernel, initrd, cmdline;
    std::vector<DiskSpec> disks;
    bool virtio_console = true;
    /// The disk page cache the disks share read-only base blocks through (null: none; it outlives the board).
    DiskPageCache* disk_cache = nullptr;
};

/// What the board needs from the VM that owns it (all callable from any thread).
struct VirtHooks {
    std::function<void(unsigned vcpu, bool level)> cpu_irq;  // the GIC's output to a vCPU (Cause.IP2)
    std::function<void(unsigned core, u64 pc)> start_core;   // CPC: reset a vCPU and run it from pc
    std::function<void(unsigned core)> stop_core;            // CPC: power a vCPU down
    std::function<void(std::span<const u8>)> serial_out;     // the 16550's transmitted bytes
    std::function<void(std::span<const u8>)> virtio_console_out;
    std::function<void()> reboot, poweroff;  // syscon
};

struct VirtBoard {
    ByteOrder byte_order = ByteOrder::Little;
    accel::ResetState reset;  // vCPU 0's; the others start held in reset
    std::shared_ptr<dev::Uart16550> uart;
    std::shared_ptr<dev::VirtioConsole> virtio_console;  // null when not configured
    /// Every device of the board, so that their threads live as long as the VM.
    std::vector<std::shared_ptr<MmioDevice>> devices;
};

constexpr unsigned kMaxCpus = 16;  // Debian's kernel: NR_CPUS=16

/// Adds RAM and devices to the VM, loads kernel and initrd, builds the device
/// tree; one error line naming what is wrong on failure.
Result<VirtBoard, Error> build_virt_board(GuestRam& ram, MmioBus& mmio, const VirtConfig& config, VirtHooks hooks);
}  // namespace disco::board
