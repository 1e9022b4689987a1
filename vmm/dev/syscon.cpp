#include "vmm/dev/syscon.hpp"

namespace disco::dev {

Syscon::Syscon(Request reboot, Request poweroff, u64 mmio_base)
    : reboot_(std::move(reboot)), poweroff_(std::move(poweroff)), unimplemented_("syscon", mmio_base) {}

bool Syscon::is_register(u64 offset, unsigned size) {
    return size == 4 && (offset == kRebootOffset || offset == kPoweroffOffset);
}

u64 Syscon::mmio_read(u64 offset, unsigned size) {
    if (!is_register(offset, size)) unimplemented_.note(offset, size, false);
    return 0;  // the registers too: see the header (syscon-reboot's read-modify-write)
}

void Syscon::mmio_write(u64 offset, unsigned size, u64 value) {
    if (!is_register(offset, size)) {
        unimplemented_.note(offset, size, true);
        return;
    }
    if ((value & 0xFFFF'FFFFull) != 1) return;
    const Request& request = offset == kRebootOffset ? reboot_ : poweroff_;
    if (request) request();
}
}  // namespace disco::dev
