// The board's reboot/poweroff registers as Linux's syscon-reboot uses them.
#include <catch2/catch.hpp>

#include "vmm/dev/syscon.hpp"

using namespace disco;

namespace {
struct Rig {
    int reboots = 0, poweroffs = 0;
    dev::Syscon syscon{[this] { ++reboots; }, [this] { ++poweroffs; }, 0x1F000000};
};
}  // namespace

TEST_CASE("syscon: writing 1 to the reboot register asks for a reboot", "[syscon]") {
    Rig r;
    // syscon-reboot: regmap_update_bits(offset 0, mask, value 1) reads, and
    // writes only when the value differs, so the read must not be 1.
    const u64 old = r.syscon.mmio_read(dev::Syscon::kRebootOffset, 4);
    CHECK(old == 0);
    r.syscon.mmio_write(dev::Syscon::kRebootOffset, 4, (old & ~u64{0xFFFFFFFF}) | 1);
    CHECK(r.reboots == 1);
    CHECK(r.poweroffs == 0);
    CHECK(r.syscon.mmio_read(dev::Syscon::kRebootOffset, 4) == 0);  // still 0 for a second attempt
    r.syscon.mmio_write(dev::Syscon::kRebootOffset, 4, 1);
    CHECK(r.reboots == 2);
    CHECK(r.syscon.name() == "syscon");
}

TEST_CASE("syscon: writing 1 to the poweroff register asks for a power-off", "[syscon]") {
    Rig r;
    CHECK(r.syscon.mmio_read(dev::Syscon::kPoweroffOffset, 4) == 0);
    r.syscon.mmio_write(dev::Syscon::kPoweroffOffset, 4, 1);
    CHECK(r.poweroffs == 1);
    CHECK(r.reboots == 0);
}

TEST_CASE("syscon: other values, widths and offsets do nothing", "[syscon]") {
    Rig r;
    r.syscon.mmio_write(dev::Syscon::kRebootOffset, 4, 0);
    r.syscon.mmio_write(dev::Syscon::kRebootOffset, 4, 2);
    r.syscon.mmio_write(dev::Syscon::kPoweroffOffset, 4, 0xFF);
    r.syscon.mmio_write(dev::Syscon::kRebootOffset, 1, 1);
    r.syscon.mmio_write(dev::Syscon::kRebootOffset, 8, 1);
    r.syscon.mmio_write(0x8, 4, 1);
    r.syscon.mmio_write(0x2, 4, 1);
    CHECK(r.reboots == 0);
    CHECK(r.poweroffs == 0);
    CHECK(r.syscon.mmio_read(0x8, 4) == 0);
    CHECK(r.syscon.mmio_read(0xFFC, 4) == 0);
}
