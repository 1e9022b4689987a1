// libFuzzer target: any byte stream a client may send on the control socket
// goes through the QMP framer and a session (tests/fuzz/qmp_harness.hpp says
// what must hold). It links the whole monitor library (the session drives a
// real Fleet). From the repository root, with a clang whose C++23 mode can use
// libstdc++'s <expected> (clang 16 or later), after `meson setup BUILD` has
// generated vmm/control/version.hpp:
//   clang++ -std=c++2b -O1 -g -fsanitize=fuzzer,address,undefined -I. -IBUILD \
//     tests/fuzz/fuzz_qmp.cpp $(find vmm -name '*.cpp' ! -path vmm/main.cpp) \
//     -lfmt -lelf -luring -lnuma -lfdt -lsystemd -o fuzz_qmp
//   ./fuzz_qmp -max_len=8192 -max_total_time=300 CORPUS_DIR
// Seed CORPUS_DIR with a few requests, e.g. one file holding
//   {"execute":"qmp_capabilities"}{"execute":"query-status","id":1}
#include "tests/fuzz/qmp_harness.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    disco::test::run_qmp_case(std::span<const disco::u8>(data, size));
    return 0;
}
