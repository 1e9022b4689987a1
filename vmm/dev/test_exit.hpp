// The bare-metal board's test device: a guest reports its result by a 32-bit
// store of V to offset 0, which asks for the VM to end with exit status
// V & 0xFF (guest-kernel/README.md documents the contract for guest authors).
// Nothing else in the 0x10-byte window does anything: other offsets and
// widths are ignored and reads return 0, silently, since a guest probing the
// window is not an error worth a log line.
#pragma once
#include <functional>
#include <string>

#include "vmm/mem/mmio.hpp"

namespace disco::dev {

class TestExit final : public MmioDevice {
public:
    /// Called with the status (0-255) from the vCPU thread that wrote it.
    using ExitRequest = std::function<void(int status)>;

    static constexpr u64 kWindowSize = 0x10;

    explicit TestExit(ExitRequest exit);

    u64 mmio_read(u64 offset, unsigned size) override;
    void mmio_write(u64 offset, unsigned size, u64 value) override;
    std::string name() const override { return "test-exit"; }

private:
    ExitRequest exit_;
};
}  // namespace disco::dev
