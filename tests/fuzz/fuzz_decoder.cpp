// libFuzzer target: any instruction word must decode, disassemble and run
// one step on the interpreter without harming the host. Build with clang:
//   clang++ -std=c++2b -g -O1 -fsanitize=fuzzer,address,undefined -I. tests/fuzz/fuzz_decoder.cpp \
//     vmm/cpu/*.cpp vmm/cpu/interp/handlers.cpp vmm/cpu/fpu/*.cpp vmm/mem/*.cpp -lfmt -o fuzz_decoder
#include <cstring>
#include <memory>

#include "vmm/cpu/cpu.hpp"
#include "vmm/cpu/decoder.hpp"

using namespace disco;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static GuestRam ram = [] {
        GuestRam r;
        (void)r.add_region(GuestPhysAddr(0), 1 << 20);
        return r;
    }();
    static CodeWatch code(1 << 20);
    static MmioBus mmio;
    static std::atomic<bool> stop{false};
    if (size < 4) return 0;
    u32 raw;
    std::memcpy(&raw, data, 4);
    (void)cpu::disassemble(raw, 0xFFFFFFFF80001000ull);
    // Place up to 64 words at 0x1000 and run a few hundred instructions from there.
    const size_t words = std::min<size_t>(size / 4, 64);
    (void)ram.write(GuestPhysAddr(0x1000), {data, words * 4});
    code.note_write(1);
    cpu::Cpu c(cpu::CpuBus{&ram, &mmio, &code, &stop, [](const std::string&) {}}, ByteOrder::Little, 0);
    c.write_cp0(cpu::cp0::Status, cpu::status::CU0 | cpu::status::CU1 | cpu::status::KX);
    c.pc = 0xFFFFFFFF80001000ull;
    c.run(500);
    return 0;
}
