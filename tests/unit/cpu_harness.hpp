// A tiny machine for CPU unit tests: 1 MiB of RAM at 0, code assembled from
// encoded words at kseg0, exception vectors that park the CPU in a loop.
#pragma once
#include <atomic>
#include <memory>
#include <vector>

#include "vmm/cpu/cpu.hpp"

namespace disco::test {

namespace enc {
constexpr u32 r(unsigned rs, unsigned rt, unsigned rd, unsigned sa, unsigned funct) {
    return (rs << 21) | (rt << 16) | (rd << 11) | (sa << 6) | funct;
}
constexpr u32 i(unsigned op, unsigned rs, unsigned rt, u32 imm) {
    return (op << 26) | (rs << 21) | (rt << 16) | (imm & 0xFFFF);
}
constexpr u32 addiu(unsigned rt, unsigned rs, i32 imm) { return i(9, rs, rt, static_cast<u32>(imm)); }
constexpr u32 daddiu(unsigned rt, unsigned rs, i32 imm) { return i(25, rs, rt, static_cast<u32>(imm)); }
constexpr u32 lui(unsigned rt, u32 imm) { return i(15, 0, rt, imm); }
constexpr u32 ori(unsigned rt, unsigned rs, u32 imm) { return i(13, rs, rt, imm); }
constexpr u32 beq(unsigned rs, unsigned rt, i32 off) { return i(4, rs, rt, static_cast<u32>(off)); }
constexpr u32 bne(unsigned rs, unsigned rt, i32 off) { return i(5, rs, rt, static_cast<u32>(off)); }
constexpr u32 beql(unsigned rs, unsigned rt, i32 off) { return i(20, rs, rt, static_cast<u32>(off)); }
constexpr u32 lw(unsigned rt, unsigned base, i32 off) { return i(35, base, rt, static_cast<u32>(off)); }
constexpr u32 sw(unsigned rt, unsigned base, i32 off) { return i(43, base, rt, static_cast<u32>(off)); }
constexpr u32 ld(unsigned rt, unsigned base, i32 off) { return i(55, base, rt, static_cast<u32>(off)); }
constexpr u32 sd(unsigned rt, unsigned base, i32 off) { return i(63, base, rt, static_cast<u32>(off)); }
constexpr u32 addu(unsigned rd, unsigned rs, unsigned rt) { return r(rs, rt, rd, 0, 0x21); }
constexpr u32 add(unsigned rd, unsigned rs, unsigned rt) { return r(rs, rt, rd, 0, 0x20); }
constexpr u32 jr(unsigned rs) { return r(rs, 0, 0, 0, 8); }
constexpr u32 syscall() { return 0x0000000C; }
constexpr u32 nop() { return 0; }
constexpr u32 self_loop() { return beq(0, 0, -1); }
constexpr u32 mtc0(unsigned rt, unsigned reg, unsigned sel = 0) {
    return (0x10u << 26) | (4u << 21) | (rt << 16) | (reg << 11) | sel;
}
constexpr u32 mfc0(unsigned rt, unsigned reg, unsigned sel = 0) {
    return (0x10u << 26) | (rt << 16) | (reg << 11) | sel;
}
constexpr u32 eret() { return 0x42000018; }
}  // namespace enc

constexpr u64 kCodeBase = 0xFFFFFFFF80001000ull;
constexpr u64 kDataBase = 0xFFFFFFFF80010000ull;

struct CpuHarness {
    GuestRam ram;
    MmioBus mmio;
    std::unique_ptr<CodeWatch> code;
    std::atomic<bool> stop{false};
    std::unique_ptr<cpu::Cpu> c;
    ByteOrder order;

    explicit CpuHarness(ByteOrder bo = ByteOrder::Little) : order(bo) {
        (void)ram.add_region(GuestPhysAddr(0), 1 << 20);
        code = std::make_unique<CodeWatch>(1 << 20);
        c = std::make_unique<cpu::Cpu>(cpu::CpuBus{&ram, &mmio, code.get(), &stop, [](const std::string&) {}}, bo, 0);
        c->write_cp0(cpu::cp0::Status, cpu::status::CU0 | cpu::status::KX | cpu::status::SX | cpu::status::UX);
        c->cp0.ebase = 0xFFFFFFFF80000000ull;
        // Every vector parks the CPU: "b . ; nop".
        for (u64 off : {0x000ull, 0x080ull, 0x180ull, 0x200ull})
            put(0xFFFFFFFF80000000ull + off, {enc::self_loop(), enc::nop()});
        c->pc = kCodeBase;
    }
    void put(u64 kseg0, std::vector<u32> words) {
        u64 pa = kseg0 & 0x1FFFFFFF;
        for (u32 w : words) {
            u8 b[4];
            if (order == ByteOrder::Little)
                store_guest<ByteOrder::Little, u32>(b, w);
            else
                store_guest<ByteOrder::Big, u32>(b, w);
            (void)ram.write(GuestPhysAddr(pa), b);
            code->note_write(pa >> 12);
            pa += 4;
        }
    }
    /// Loads a program at kCodeBase followed by a parking loop and runs it.
    void run(std::vector<u32> program, u64 budget = 10000) {
        program.push_back(enc::self_loop());
        program.push_back(enc::nop());
        put(kCodeBase, program);
        c->run(budget);
    }
    bool parked_at(u64 addr) const { return c->pc == addr || c->pc == addr + 4; }
};
}  // namespace disco::test
