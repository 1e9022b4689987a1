// The disco-virt board's system controller: a "syscon" register block that
// Linux's syscon-reboot driver writes to reset the machine
// (guest-board.md §5.4; DT `reboot { compatible = "syscon-reboot";
// regmap = <&syscon>; offset = <0>; value = <1>; }`), plus a poweroff
// register for guests that use one (Debian's 6.1 build has no
// syscon-poweroff, guest-board.md §6.6, but other guests may).
//
// Registers, 32 bits, in a 0x1000-byte window:
//   0x0 REBOOT    writing 1 asks for a reboot
//   0x4 POWEROFF  writing 1 asks for a power-off
// Both read as 0: syscon-reboot does a regmap read-modify-write that skips the
// write when the register already holds the value, so it must never read 1.
// Other values written are ignored; other offsets and widths are logged once
// (UnimplementedRegisterLog) and read as 0.
//
// Threads: the callbacks run on the vCPU thread that did the store, with no
// lock held, once per store of 1 (the board decides what a second request
// means).
#pragma once
#include <functional>
#include <string>

#include "vmm/dev/unimplemented.hpp"
#include "vmm/mem/mmio.hpp"

namespace disco::dev {

class Syscon final : public MmioDevice {
public:
    using Request = std::function<void()>;

    static constexpr u64 kWindowSize = 0x1000;
    static constexpr u64 kRebootOffset = 0x0, kPoweroffOffset = 0x4;

    /// mmio_base is the window's guest-physical base, only for log messages.
    Syscon(Request reboot, Request poweroff, u64 mmio_base);

    u64 mmio_read(u64 offset, unsigned size) override;
    void mmio_write(u64 offset, unsigned size, u64 value) override;
    std::string name() const override { return "syscon"; }

private:
    static bool is_register(u64 offset, unsigned size);

    Request reboot_;
    Request poweroff_;
    UnimplementedRegisterLog unimplemented_;
};
}  // namespace disco::dev
