// The bare-metal board's test device.
#include <catch2/catch.hpp>
#include <vector>

#include "vmm/dev/test_exit.hpp"

using namespace disco;

TEST_CASE("test-exit: a 32-bit store at offset 0 requests exit with its low byte", "[dev]") {
    std::vector<int> requests;
    dev::TestExit dev([&](int status) { requests.push_back(status); });
    dev.mmio_write(0, 4, 0);
    dev.mmio_write(0, 4, 0x1FF);
    dev.mmio_write(0, 4, 0xFFFFFF03);
    CHECK(requests == std::vector<int>{0, 0xFF, 3});
    CHECK(dev.name() == "test-exit");
}

TEST_CASE("test-exit: other offsets and widths are ignored, reads are 0", "[dev]") {
    std::vector<int> requests;
    dev::TestExit dev([&](int status) { requests.push_back(status); });
    dev.mmio_write(4, 4, 1);
    dev.mmio_write(8, 4, 1);
    dev.mmio_write(0, 1, 1);
    dev.mmio_write(0, 2, 1);
    dev.mmio_write(0, 8, 1);
    CHECK(requests.empty());
    for (u64 off = 0; off < dev::TestExit::kWindowSize; off += 4) CHECK(dev.mmio_read(off, 4) == 0);
    CHECK(dev.mmio_read(0, 8) == 0);
}
