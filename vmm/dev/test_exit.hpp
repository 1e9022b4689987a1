// The test device of the bare-metal board: a guest reports its result by a
// 32-bit store of V to offset 0, which ends the VM with exit status V & 0xFF.
#pragma once
#include <functional>

#include "vmm/mem/mmio.hpp"

namespace disco::dev {
class TestExit final : public MmioDevice {
public:
    explicit TestExit(std::function<void(int)> exit) : exit_(std::move(exit)) {}
    u64 mmio_read(u64, unsigned) override { return 0; }
    void mmio_write(u64 offset, unsigned size, u64 value) override {
        if (offset == 0 && size == 4) exit_(static_cast<int>(value & 0xFF));
    }
    std::string name() const override { return "test-exit"; }

private:
    std::function<void(int)> exit_;
};
}  // namespace disco::dev
