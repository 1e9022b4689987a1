// The software CPU's core behaviour, pinned down with hand-encoded programs:
// decoding, sign extension, delay slots, exceptions and their registers, the
// soft TLB and code-page invalidation, LL/SC across threads, the timer.
#include <bit>
#include <catch2/catch.hpp>
#include <thread>

#include "cpu_harness.hpp"
#include "vmm/cpu/decoder.hpp"

using namespace disco;
using namespace disco::test;
using disco::cpu::Op;

namespace {
constexpr u64 kGeneralVector = 0xFFFFFFFF80000180ull;
u64 exc_code(const cpu::Cpu& c) { return (c.cp0.cause >> 2) & 31; }
}  // namespace

TEST_CASE("every table entry decodes to itself", "[cpu][decoder]") {
    for (unsigned i = 0; i + 1 < cpu::kOpCount; ++i) {
        const auto op = static_cast<Op>(i);
        const auto& info = cpu::op_info(op);
        INFO(info.mnemonic);
        // An entry decodes to itself unless a more specific entry covers the
        // same word (SYNC with stype 0 is plain SYNC).
        const Op got = cpu::decode_op(info.match);
        const auto& got_info = cpu::op_info(got);
        CHECK((info.match & got_info.mask) == got_info.match);
        CHECK((got == op || std::popcount(got_info.mask) > std::popcount(info.mask)));
    }
    CHECK(cpu::decode_op(0xFC000000u | (1u << 26)) != Op::Invalid);  // SD
    CHECK(cpu::decode_op(0x7C00003Bu | (31u << 11)) == Op::RDHWR);
    CHECK(cpu::decode_op(0xEC000000u) == Op::Invalid);  // opcode 0x3B is reserved
}

TEST_CASE("the disassembler reads the same table", "[cpu][decoder]") {
    CHECK(cpu::disassemble(0x27BDFFE0, 0) == "addiu $sp, $sp, -32");
    CHECK(cpu::disassemble(0x03E00008, 0) == "jr $ra");
    CHECK(cpu::disassemble(0x1000FFFF, 0x1000) == "beq $zero, $zero, 0x1000");
    CHECK(cpu::disassemble(0x8FA40010, 0) == "lw $a0, 16($sp)");
    CHECK(cpu::disassemble(0x46220800, 0) == "add.d $f0, $f1, $f2");
    CHECK(cpu::disassemble(0xEC000000, 0).find("reserved") != std::string::npos);
}

TEST_CASE("32-bit operations sign-extend their results", "[cpu]") {
    CpuHarness h;
    h.run({enc::lui(8, 0x7FFF), enc::ori(8, 8, 0xFFFF), enc::addiu(9, 8, 1), enc::daddiu(10, 8, 1), enc::addu(11, 0, 0),
           enc::addiu(0, 0, 5)});
    CHECK(h.c->r[9] == 0xFFFFFFFF80000000ull);
    CHECK(h.c->r[10] == 0x80000000ull);
    CHECK(h.c->r[0] == 0);
}

TEST_CASE("ADD overflow raises Ov without writing the destination", "[cpu][exceptions]") {
    CpuHarness h;
    h.run({enc::lui(8, 0x7FFF), enc::ori(8, 8, 0xFFFF), enc::addiu(9, 0, 1), enc::addiu(10, 0, 7), enc::add(10, 8, 9)});
    CHECK(h.parked_at(kGeneralVector));
    CHECK(exc_code(*h.c) == 12);
    CHECK(h.c->cp0.epc == kCodeBase + 16);
    CHECK(h.c->r[10] == 7);
    CHECK((h.c->cp0.status & cpu::status::EXL) != 0);
}

TEST_CASE("delay slots run; branch-likely annuls them when not taken", "[cpu][branches]") {
    CpuHarness h;
    h.run({enc::beq(0, 0, 2), enc::addiu(8, 0, 1), enc::addiu(9, 0, 1), enc::beql(8, 0, 2), enc::addiu(10, 0, 1),
           enc::addiu(11, 0, 1)});
    CHECK(h.c->r[8] == 1);   // slot of the taken branch ran
    CHECK(h.c->r[9] == 0);   // skipped by the branch
    CHECK(h.c->r[10] == 0);  // annulled slot
    CHECK(h.c->r[11] == 1);
}

TEST_CASE("an exception in a delay slot sets BD and points EPC at the branch", "[cpu][exceptions]") {
    CpuHarness h;
    h.run({enc::lui(8, 0x7FFF), enc::ori(8, 8, 0xFFFF), enc::beq(0, 0, 4), enc::add(9, 8, 8)});
    CHECK(exc_code(*h.c) == 12);
    CHECK(h.c->cp0.epc == kCodeBase + 8);
    CHECK((h.c->cp0.cause & cpu::cause::BD) != 0);
}

TEST_CASE("misaligned loads raise AdEL with BadVAddr", "[cpu][exceptions]") {
    CpuHarness h;
    h.run({enc::lui(8, 0x8001), enc::lw(9, 8, 2)});  // 0xFFFFFFFF80010002
    CHECK(exc_code(*h.c) == 4);
    CHECK(h.c->cp0.badvaddr == 0xFFFFFFFF80010002ull);
}

TEST_CASE("stores and loads go through guest byte order", "[cpu][memory]") {
    for (auto bo : {ByteOrder::Little, ByteOrder::Big}) {
        CpuHarness h(bo);
        h.run({enc::lui(8, 0x8001), enc::lui(9, 0x1122), enc::ori(9, 9, 0x3344), enc::sw(9, 8, 0),
               enc::i(32, 8, 10, 0) /* lb */, enc::lw(11, 8, 0), enc::sd(9, 8, 8), enc::ld(12, 8, 8)});
        CHECK(h.c->r[10] == (bo == ByteOrder::Little ? 0x44u : 0x11u));
        CHECK(h.c->r[11] == 0x11223344u);
        CHECK(h.c->r[12] == 0x11223344u);
    }
}

TEST_CASE("a store into decoded code takes effect before that code runs again", "[cpu][codecache]") {
    CpuHarness h;
    // Run the target once (decoding it), overwrite its first instruction, run it again.
    const u64 target = kCodeBase + 0x100;
    h.put(target, {enc::addiu(10, 0, 1), enc::jr(31), enc::nop()});
    const u32 replacement = enc::addiu(10, 0, 2);
    h.run({enc::lui(8, static_cast<u32>(target >> 16) & 0xFFFF), enc::ori(8, 8, target & 0xFFFF),
           enc::i(3, 0, 0, static_cast<u32>((target >> 2) & 0x3FFFFFF)) /* jal target (op 3) */, enc::nop(),
           enc::addiu(11, 10, 0), enc::lui(12, replacement >> 16), enc::ori(12, 12, replacement & 0xFFFF),
           enc::sw(12, 8, 0), enc::i(3, 0, 0, static_cast<u32>((target >> 2) & 0x3FFFFFF)), enc::nop()});
    CHECK(h.c->r[11] == 1);
    CHECK(h.c->r[10] == 2);
}

TEST_CASE("a branch in a page's last word runs its delay slot from the next page", "[cpu][branches]") {
    CpuHarness h;
    const u64 last = kCodeBase + 0xFFC;
    h.put(last, {enc::beq(0, 0, 3), enc::addiu(8, 0, 5), enc::nop(), enc::nop(), enc::self_loop(), enc::nop()});
    h.c->pc = last;
    h.c->run(100);
    CHECK(h.c->r[8] == 5);
    CHECK(h.parked_at(last + 16));
}

TEST_CASE("a TLB miss on xuseg goes to the XTLB refill vector with EntryHi and XContext", "[cpu][tlb]") {
    CpuHarness h;
    h.run({enc::lui(8, 0x1234), enc::lw(9, 8, 0x5678)});
    CHECK(exc_code(*h.c) == 2);  // TLBL
    CHECK(h.parked_at(0xFFFFFFFF80000080ull));
    CHECK(h.c->cp0.badvaddr == 0x12345678u);
    CHECK((h.c->cp0.entryhi & ~0xFFull) == 0x12344000u);
    CHECK(((h.c->cp0.xcontext >> 4) & ((1ull << 29) - 1)) == (0x12345678u >> 13));
}

TEST_CASE("LL/SC is atomic across host threads", "[cpu][smp]") {
    CpuHarness h;
    const u64 counter = kDataBase;
    // loop: ll t1,0(t0); addiu t1,t1,1; sc t1,0(t0); beq t1,zero,loop; nop; addiu t2,t2,-1; bne t2,zero,loop; nop
    const std::vector<u32> prog = {
        enc::lui(8, 0x8001),    enc::lui(10, 1),  // 65536 iterations
        enc::i(48, 8, 9, 0),    enc::addiu(9, 9, 1), enc::i(56, 8, 9, 0), enc::beq(9, 0, -4), enc::nop(),
        enc::addiu(10, 10, -1), enc::bne(10, 0, -7), enc::nop(),          enc::self_loop(),   enc::nop()};
    h.put(kCodeBase, prog);
    cpu::Cpu second(cpu::CpuBus{&h.ram, &h.mmio, h.code.get(), &h.stop, [](const std::string&) {}}, ByteOrder::Little,
                    1);
    second.write_cp0(cpu::cp0::Status, cpu::status::CU0 | cpu::status::KX);
    second.pc = kCodeBase;
    h.c->pc = kCodeBase;
    std::thread t([&] { second.run(3'000'000); });
    h.c->run(3'000'000);
    t.join();
    u32 value = 0;
    REQUIRE(h.ram.read(GuestPhysAddr(counter & 0x1FFFFFFF), {reinterpret_cast<u8*>(&value), 4}));
    CHECK(value == 2 * 65536);
}

TEST_CASE("Count/Compare raises the timer interrupt that WAIT waits for", "[cpu][timer]") {
    CpuHarness h;
    using namespace cpu;
    // t0 = Count + 20000 (200 us); Compare = t0; Status |= IM7 | IE; wait
    h.run({enc::mfc0(8, 9), enc::addiu(8, 8, 20000), enc::mtc0(8, 11), enc::lui(9, 0x1000),
           enc::ori(9, 9, 0x8001 | 0xE0), enc::mtc0(9, 12), 0x42000020 /* wait */, enc::nop()},
          1000);
    CHECK(exc_code(*h.c) == 0);
    CHECK(h.parked_at(kGeneralVector));
    CHECK((h.c->read_cp0(cp0::Cause) & cause::TI) != 0);
    CHECK(h.c->cp0.epc == kCodeBase + 28);
}
