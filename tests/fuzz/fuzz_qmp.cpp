// libFuzzer target: any byte stream a client may send on the control socket
// goes through the QMP framer and a session (tests/fuzz/qmp_harness.hpp says
// what must hold). The session drives a real Fleet.
// Built by the meson build with -Dfuzz=true and clang 16 (tests/fuzz/meson.build);
// tools/setup --test runs it for a bounded time.
#include "tests/fuzz/qmp_harness.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    disco::test::run_qmp_case(std::span<const disco::u8>(data, size));
    return 0;
}
