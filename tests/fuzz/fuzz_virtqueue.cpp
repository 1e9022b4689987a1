// libFuzzer target: any split ring (descriptor table and available ring) must
// be walked, decoded as blk requests and served by the console through the
// MMIO transport without touching memory outside guest RAM. Build with clang:
//   clang++ -std=c++2b -g -O1 -fsanitize=fuzzer,address,undefined -I. tests/fuzz/fuzz_virtqueue.cpp \
//     vmm/dev/virtio/{virtqueue,chain,blk_request,console,mmio_transport}.cpp vmm/dev/unimplemented.cpp \
//     vmm/mem/guest_ram.cpp -lfmt -o fuzz_virtqueue
#include "tests/fuzz/virtqueue_harness.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    disco::test::run_virtqueue_case(std::span<const disco::u8>(data, size));
    return 0;
}
