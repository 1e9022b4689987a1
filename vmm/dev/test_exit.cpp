#include "vmm/dev/test_exit.hpp"

namespace disco::dev {

TestExit::TestExit(ExitRequest exit) : exit_(std::move(exit)) {}

u64 TestExit::mmio_read(u64, unsigned) { return 0; }

void TestExit::mmio_write(u64 offset, unsigned size, u64 value) {
    // Only the documented access counts, so that a stray byte store (say, a
    // guest's memset running into the window) cannot end the VM by accident.
    if (offset != 0 || size != 4) return;
    if (exit_) exit_(static_cast<int>(value & 0xFF));
}
}  // namespace disco::dev
