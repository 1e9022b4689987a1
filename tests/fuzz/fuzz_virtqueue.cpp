// libFuzzer target: any split ring (descriptor table and available ring) must
// be walked, decoded as blk requests and served by the console through the
// MMIO transport without touching memory outside guest RAM.
// Built by the meson build with -Dfuzz=true and clang 16 (tests/fuzz/meson.build);
// tools/setup --test runs it for a bounded time.
#include "tests/fuzz/virtqueue_harness.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    disco::test::run_virtqueue_case(std::span<const disco::u8>(data, size));
    return 0;
}
