// libFuzzer target: any instruction words must decode, disassemble and run on
// the interpreter without harming the host. Built by the meson build with
// -Dfuzz=true (tests/fuzz/meson.build; tools/setup --test runs it).
#include <cstring>
#include <chrono>
#include <memory>
#include <mutex>
#include <thread>

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
    // WAIT sleeps until an unmasked interrupt, which the words may never
    // arrange (IM clear, or COMPARE far ahead): a watchdog stops a case that
    // has slept for 50 ms, the way a VM's stop ends a sleeping vCPU.
    static std::mutex running_mutex;
    static cpu::Cpu* running = nullptr;
    static std::chrono::steady_clock::time_point started;
    static std::jthread watchdog([](std::stop_token token) {
        while (!token.stop_requested()) {
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
            std::lock_guard<std::mutex> lock(running_mutex);
            if (running && std::chrono::steady_clock::now() - started > std::chrono::milliseconds(50)) {
                stop.store(true, std::memory_order_release);
                running->kick();
            }
        }
    });
    {
        std::lock_guard<std::mutex> lock(running_mutex);
        running = &c;
        started = std::chrono::steady_clock::now();
    }
    c.run(500);
    std::lock_guard<std::mutex> lock(running_mutex);
    running = nullptr;
    stop.store(false, std::memory_order_release);
    return 0;
}
