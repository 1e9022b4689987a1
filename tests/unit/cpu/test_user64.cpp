// 64-bit operations outside Kernel mode: Reserved Instruction in User mode
// with Status.UX = 0 and in Supervisor mode with Status.SX = 0, executed
// otherwise (MD00091 ch. 3, "64-bit Operations Enable"). The interpreter
// decodes a code page once per setting, so these tests also switch back and
// forth on one physical page, through ERET and exceptions as a kernel does.
#include <catch2/catch.hpp>

#include "tests/unit/cpu_harness.hpp"
#include "vmm/cpu/decoder.hpp"

using namespace disco;
using namespace disco::test;
using disco::cpu::Op;

namespace {
namespace st = cpu::status;

constexpr u64 kUserVa = 0x00400000;  // mapped by a global TLB entry to kUserPa
constexpr u64 kUserPa = 0x4000;
constexpr u64 kUserKseg0 = 0xFFFFFFFF80000000ull | kUserPa;  // the same page, unmapped
constexpr u64 kGeneralVector = 0xFFFFFFFF80000180ull;
constexpr u64 kUser = 2ull << st::KSU_SHIFT, kSupervisor = 1ull << st::KSU_SHIFT;
constexpr u64 kExcSys = 8, kExcRi = 10, kExcCpU = 11;

constexpr u32 daddu(unsigned rd, unsigned rs, unsigned rt) { return enc::r(rs, rt, rd, 0, 0x2D); }
constexpr u32 dmfc0(unsigned rt, unsigned reg) { return (0x10u << 26) | (1u << 21) | (rt << 16) | (reg << 11); }
constexpr u32 dmfc1(unsigned rt, unsigned fs) { return (0x11u << 26) | (1u << 21) | (rt << 16) | (fs << 11); }
constexpr u64 kA = 0x100000000ull, kB = 5;  // daddu of these differs from addu's

struct User64Harness : CpuHarness {
    explicit User64Harness(ByteOrder bo = ByteOrder::Little) : CpuHarness(bo) {
        auto& cpu = *c;
        cpu.write_cp0(cpu::cp0::Index, 0);
        cpu.write_cp0(cpu::cp0::PageMask, 0);
        cpu.write_cp0(cpu::cp0::EntryHi, kUserVa);
        // PFN, cacheable (C=3), dirty, valid, global; the odd page: global only.
        cpu.write_cp0(cpu::cp0::EntryLo0, ((kUserPa >> 12) << 6) | (3 << 3) | 4 | 2 | 1);
        cpu.write_cp0(cpu::cp0::EntryLo1, 1);
        cpu.tlbwi();
    }
    /// Runs from pc in the mode that status selects (EXL clear) until an exception parks the CPU.
    void run_at(u64 pc, u64 status) {
        for (auto& reg : c->r) reg = 0;
        c->r[9] = kA;
        c->r[10] = kB;
        c->write_cp0(cpu::cp0::Status, status);
        c->pc = pc;
        c->run(200);
    }
    u64 exc() const { return (c->cp0.cause >> 2) & 31; }
};
}  // namespace

TEST_CASE("a 64-bit operation raises RI in User mode only with UX clear", "[cpu][user64]") {
    for (auto bo : {ByteOrder::Little, ByteOrder::Big}) {
        User64Harness h(bo);
        h.put(kUserKseg0, {daddu(8, 9, 10), enc::addu(11, 9, 10), enc::syscall()});
        // Back and forth on the same page, each setting decoded once and then reused.
        for (int round = 0; round < 2; ++round) {
            h.run_at(kUserVa, kUser | st::UX);
            CHECK(h.exc() == kExcSys);
            CHECK(h.c->r[8] == kA + kB);
            CHECK(h.c->r[11] == kB);

            h.run_at(kUserVa, kUser);
            CHECK(h.exc() == kExcRi);
            CHECK(h.c->cp0.epc == kUserVa);
            CHECK(h.c->r[8] == 0);
            CHECK(h.parked_at(kGeneralVector));

            // Kernel mode runs the same physical page with 64-bit operations whatever UX says.
            h.run_at(kUserKseg0, 0);
            CHECK(h.exc() == kExcSys);
            CHECK(h.c->r[8] == kA + kB);
            h.run_at(kUserVa, 0);  // kernel mode through the user mapping
            CHECK(h.exc() == kExcSys);
            CHECK(h.c->r[8] == kA + kB);
        }
    }
}

TEST_CASE("Supervisor mode needs SX for 64-bit operations", "[cpu][user64]") {
    User64Harness h;
    h.put(kUserKseg0, {daddu(8, 9, 10), enc::syscall()});
    h.run_at(kUserVa, kSupervisor | st::UX);  // UX does not count in Supervisor mode
    CHECK(h.exc() == kExcRi);
    CHECK(h.c->cp0.epc == kUserVa);
    h.run_at(kUserVa, kSupervisor | st::SX);
    CHECK(h.exc() == kExcSys);
    CHECK(h.c->r[8] == kA + kB);
    h.run_at(kUserVa, kSupervisor);
    CHECK(h.exc() == kExcRi);
}

TEST_CASE("ERET into User mode and the exception back switch the decoding each time", "[cpu][user64]") {
    User64Harness h;
    h.put(kUserKseg0, {daddu(8, 9, 10), enc::syscall()});
    // The exception handler itself runs a 64-bit operation right after the
    // user's one was refused.
    h.put(kGeneralVector, {daddu(12, 9, 10), enc::self_loop(), enc::nop()});
    // Kernel: EPC = $20, Status = $21 (EXL set, KSU = user), ERET.
    const std::vector<u32> enter_user = {enc::mtc0(20, 14), enc::mtc0(21, 12), enc::eret()};
    for (bool ux : {false, true, false, true}) {
        INFO("UX=" << ux);
        for (auto& reg : h.c->r) reg = 0;
        h.c->r[9] = kA;
        h.c->r[10] = kB;
        h.c->r[20] = kUserVa;
        h.c->r[21] = st::KX | st::EXL | kUser | (ux ? st::UX : 0);
        h.c->write_cp0(cpu::cp0::Status, st::CU0 | st::KX);
        h.c->pc = kCodeBase;
        h.run(enter_user, 200);
        CHECK(h.exc() == (ux ? kExcSys : kExcRi));
        CHECK(h.c->cp0.epc == (ux ? kUserVa + 4 : kUserVa));
        CHECK(h.c->r[8] == (ux ? kA + kB : 0));
        CHECK(h.c->r[12] == kA + kB);
    }
}

TEST_CASE("DMFC0 and DMFC1 check their coprocessor before the 64-bit enable", "[cpu][user64]") {
    User64Harness h;
    h.put(kUserKseg0, {dmfc0(8, 12), enc::syscall(), dmfc1(8, 0), enc::syscall()});
    // Coprocessor Unusable has priority over Reserved Instruction (MD00091 §6.2.1).
    h.run_at(kUserVa, kUser);
    CHECK(h.exc() == kExcCpU);
    CHECK(((h.c->cp0.cause >> 28) & 3) == 0);
    h.run_at(kUserVa, kUser | st::CU0);
    CHECK(h.exc() == kExcRi);
    h.run_at(kUserVa, kUser | st::CU0 | st::UX);
    CHECK(h.exc() == kExcSys);

    h.run_at(kUserVa + 8, kUser);
    CHECK(h.exc() == kExcCpU);
    CHECK(((h.c->cp0.cause >> 28) & 3) == 1);
    h.run_at(kUserVa + 8, kUser | st::CU1);
    CHECK(h.exc() == kExcRi);
    CHECK(h.c->cp0.epc == kUserVa + 8);
    h.run_at(kUserVa + 8, kUser | st::CU1 | st::UX);
    CHECK(h.exc() == kExcSys);
}

TEST_CASE("UX changes what every table entry does only for the 64-bit operations", "[cpu][user64]") {
    User64Harness h;
    // Each entry's fixed bits with every field zero, followed by a SYSCALL
    // (the delay slot of the branches). CU1 lets FPU operations run; CU0 is
    // clear, so DMFC0/DMTC0 stop at Coprocessor Unusable in both settings.
    const u64 base = kUser | st::CU1;
    for (unsigned i = 0; i + 1 < cpu::kOpCount; ++i) {
        const auto op = static_cast<Op>(i);
        const auto& info = cpu::op_info(op);
        INFO(info.mnemonic << " " << cpu::disassemble(info.match, kUserVa));
        h.put(kUserKseg0, {info.match, enc::syscall(), enc::syscall()});
        h.run_at(kUserVa, base | st::UX);
        const u64 exc_ux1 = h.exc(), epc_ux1 = h.c->cp0.epc;
        h.run_at(kUserVa, base);
        const u64 exc_ux0 = h.exc(), epc_ux0 = h.c->cp0.epc;
        if (op == Op::DMFC0 || op == Op::DMTC0) {
            CHECK(exc_ux0 == kExcCpU);
            CHECK(exc_ux1 == kExcCpU);
        } else if (info.op64) {
            CHECK(exc_ux0 == kExcRi);
            CHECK(epc_ux0 == kUserVa);
            CHECK(exc_ux1 != kExcRi);
            h.run_at(kUserVa, st::CU1);  // and Kernel mode runs it
            CHECK(h.exc() == exc_ux1);
        } else {
            CHECK(exc_ux0 == exc_ux1);
            CHECK(epc_ux0 == epc_ux1);
        }
    }
}
