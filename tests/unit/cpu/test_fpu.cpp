// The FPU (vmm/cpu/fpu): register views, arithmetic semantics, exceptions,
// control registers. Expected values were checked against QEMU
// MIPS64R2-generic with tests/fpu-oracle; this file needs no QEMU.
#include <catch2/catch.hpp>

#include "vmm/cpu/fpu/fpu.hpp"

using namespace disco;
using namespace disco::cpu::fpu;

namespace {

enum Fmt : unsigned { S = 16, D = 17, W = 20, L = 21, PS = 22 };

constexpr u32 cop1(unsigned fmt, unsigned ft, unsigned fs, unsigned fd, unsigned funct) {
    return (0x11u << 26) | (fmt << 21) | (ft << 16) | (fs << 11) | (fd << 6) | funct;
}
// COP1X: op 4 MADD, 5 MSUB, 6 NMADD, 7 NMSUB; fmt3 0 S, 1 D, 6 PS.
constexpr u32 cop1x(unsigned op, unsigned fmt3, unsigned fr, unsigned ft, unsigned fs, unsigned fd) {
    return (0x13u << 26) | (fr << 21) | (ft << 16) | (fs << 11) | (fd << 6) | (op << 3) | fmt3;
}
constexpr u32 c_cond(unsigned fmt, unsigned cond, unsigned cc, unsigned fs, unsigned ft) {
    return cop1(fmt, ft, fs, cc << 2, 48 + cond);
}

constexpr u32 kOneS = 0x3F800000, kTwoS = 0x40000000, kThreeS = 0x40400000;
constexpr u64 kOneD = 0x3FF0000000000000;
constexpr u32 kQNaNS = 0x7FBFFFFF;  // legacy: quiet NaN has the fraction MSB clear
constexpr u32 kSNaNS = 0x7FC00000;  // ...and a signalling one has it set
constexpr u64 kQNaND = 0x7FF7FFFFFFFFFFFF;

constexpr u32 cause(const FpuState& s) { return (s.fcsr >> 12) & 0x3F; }
constexpr u32 flags(const FpuState& s) { return (s.fcsr >> 2) & 0x1F; }

FpuState fresh(bool fr = true) {
    FpuState s;
    s.fr = fr;
    return s;
}

}  // namespace

TEST_CASE("FPU register views follow Status.FR", "[fpu]") {
    FpuState s = fresh(true);
    s.fpr[2] = 0x1111111122222222;
    s.write_w(2, 0xAABBCCDD);
    CHECK(s.fpr[2] == 0x11111111AABBCCDD);  // upper half kept, as QEMU does
    CHECK(s.read_hi(2) == 0x11111111);
    s.write_hi(2, 0x55667788);
    CHECK(s.read_d(2) == 0x55667788AABBCCDD);

    s.fr = false;  // pairs: low word in the even register, high word in the odd one
    s.fpr[4] = 0xDEAD000000000001;
    s.fpr[5] = 0xBEEF000000000002;
    CHECK(s.read_d(4) == 0x0000000200000001);
    CHECK(s.read_d(5) == 0x0000000200000001);  // the low bit of the number is ignored
    s.write_d(4, 0x1234567890ABCDEF);
    CHECK(s.fpr[4] == 0xDEAD000090ABCDEF);
    CHECK(s.fpr[5] == 0xBEEF000012345678);
    CHECK(s.read_hi(4) == 0x12345678);
    s.write_hi(4, 0xCAFEF00D);
    CHECK(s.fpr[5] == 0xBEEF0000CAFEF00D);
}

TEST_CASE("FPU basic arithmetic, flags and Cause", "[fpu]") {
    FpuState s = fresh();
    s.write_w(2, kOneS);
    s.write_w(4, kTwoS);
    REQUIRE(execute(s, cop1(S, 4, 2, 6, 0), 0) == Outcome::Ok);  // add.s $f6, $f2, $f4
    CHECK(s.read_w(6) == kThreeS);
    CHECK(s.fcsr == 0);

    s.write_w(4, kThreeS);
    REQUIRE(execute(s, cop1(S, 4, 2, 6, 3), 0) == Outcome::Ok);  // div.s: 1/3 is inexact
    CHECK(s.read_w(6) == 0x3EAAAAAB);
    CHECK(cause(s) == flag::kInexact);
    CHECK(flags(s) == flag::kInexact);
    // The next arithmetic instruction replaces Cause; Flags stay sticky.
    REQUIRE(execute(s, cop1(S, 2, 2, 6, 0), 0) == Outcome::Ok);
    CHECK(cause(s) == 0);
    CHECK(flags(s) == flag::kInexact);

    s.write_d(8, kOneD);
    s.write_d(10, 0);
    REQUIRE(execute(s, cop1(D, 10, 8, 12, 3), 0) == Outcome::Ok);  // 1/0
    CHECK(s.read_d(12) == 0x7FF0000000000000);
    CHECK(cause(s) == flag::kDivZero);
}

TEST_CASE("FPU rounding modes", "[fpu]") {
    // 1 + 2^-24 is a tie between 1 and 1 + 2^-23 in single precision.
    const u32 tiny = 0x33800000;                                             // 2^-24
    const u32 expect[4] = {0x3F800000, 0x3F800000, 0x3F800001, 0x3F800000};  // RN RZ RP RM
    for (u32 rm = 0; rm < 4; ++rm) {
        FpuState s = fresh();
        s.fcsr = rm;
        s.write_w(1, kOneS);
        s.write_w(2, tiny);
        REQUIRE(execute(s, cop1(S, 2, 1, 3, 0), 0) == Outcome::Ok);
        CHECK(s.read_w(3) == expect[rm]);
        CHECK(cause(s) == flag::kInexact);
    }
    // x - x is +0, but -0 when rounding toward minus infinity.
    for (u32 rm = 0; rm < 4; ++rm) {
        FpuState s = fresh();
        s.fcsr = rm;
        s.write_d(2, kOneD);
        REQUIRE(execute(s, cop1(D, 2, 2, 4, 1), 0) == Outcome::Ok);
        CHECK(s.read_d(4) == (rm == 3 ? 0x8000000000000000 : 0));
    }
    // Overflow: infinity, or the largest finite number when rounding toward zero.
    FpuState s = fresh();
    s.fcsr = 1;
    s.write_w(1, 0x7F7FFFFF);
    REQUIRE(execute(s, cop1(S, 1, 1, 2, 0), 0) == Outcome::Ok);
    CHECK(s.read_w(2) == 0x7F7FFFFF);
    CHECK(cause(s) == (flag::kOverflow | flag::kInexact));
}

TEST_CASE("FPU NaNs use the legacy encoding and the default NaN", "[fpu]") {
    FpuState s = fresh();
    s.write_w(1, 0x7F800001);  // a quiet NaN with a payload: not propagated
    s.write_w(2, kOneS);
    REQUIRE(execute(s, cop1(S, 2, 1, 3, 2), 0) == Outcome::Ok);
    CHECK(s.read_w(3) == kQNaNS);
    CHECK(cause(s) == 0);  // a quiet NaN raises nothing
    s.write_w(1, kSNaNS);
    REQUIRE(execute(s, cop1(S, 2, 1, 3, 2), 0) == Outcome::Ok);
    CHECK(s.read_w(3) == kQNaNS);
    CHECK(cause(s) == flag::kInvalid);
    // Invalid operations produce the default NaN too.
    s.write_d(4, 0x7FF0000000000000);
    REQUIRE(execute(s, cop1(D, 4, 4, 6, 1), 0) == Outcome::Ok);  // inf - inf
    CHECK(s.read_d(6) == kQNaND);
    s.write_d(4, 0xBFF0000000000000);
    REQUIRE(execute(s, cop1(D, 0, 4, 6, 4), 0) == Outcome::Ok);  // sqrt(-1)
    CHECK(s.read_d(6) == kQNaND);
    CHECK(cause(s) == flag::kInvalid);
    // ABS/NEG/MOV are bit operations: no Invalid for sNaN, Cause untouched.
    s.write_w(1, kSNaNS);
    REQUIRE(execute(s, cop1(S, 0, 1, 2, 7), 0) == Outcome::Ok);  // neg.s
    CHECK(s.read_w(2) == (kSNaNS | 0x80000000));
    CHECK(cause(s) == flag::kInvalid);  // still the previous instruction's
}

TEST_CASE("FPU enabled exceptions trap without writing the destination", "[fpu]") {
    FpuState s = fresh();
    s.fcsr = flag::kInvalid << 7;  // enable V
    s.write_d(2, 0x7FF0000000000000);
    s.write_d(4, 0x1234);
    REQUIRE(execute(s, cop1(D, 2, 2, 4, 1), 0) == Outcome::FloatingPointException);
    CHECK(s.read_d(4) == 0x1234);
    CHECK(cause(s) == flag::kInvalid);
    CHECK(flags(s) == 0);
    // A comparison that traps leaves its condition code alone.
    s.fcsr |= fcsr::kFcc0;
    s.write_w(6, kSNaNS);
    REQUIRE(execute(s, c_cond(S, 2, 0, 6, 6), 0) == Outcome::FloatingPointException);
    CHECK(condition(s, 0));
    // Only enabled bits trap: inexact alone still completes.
    s.fcsr = flag::kInvalid << 7;
    s.write_w(1, kOneS);
    s.write_w(2, kThreeS);
    REQUIRE(execute(s, cop1(S, 2, 1, 3, 3), 0) == Outcome::Ok);
    CHECK(flags(s) == flag::kInexact);
}

TEST_CASE("FPU denormal results: tininess after rounding, FS flushes silently", "[fpu]") {
    // (1 - 2^-23) * (2^-126 (1 + 2^-23)) = 2^-126 (1 - 2^-46): tiny before
    // rounding, not after, so Underflow stays clear.
    FpuState s = fresh();
    s.write_w(1, 0x3F7FFFFE);
    s.write_w(2, 0x00800001);
    REQUIRE(execute(s, cop1(S, 2, 1, 3, 2), 0) == Outcome::Ok);
    CHECK(s.read_w(3) == 0x00800000);
    CHECK(cause(s) == flag::kInexact);
    // A truly tiny inexact result underflows.
    s.write_w(1, 0x00800001);
    s.write_w(2, 0x3F000000);  // * 0.5
    REQUIRE(execute(s, cop1(S, 2, 1, 3, 2), 0) == Outcome::Ok);
    CHECK(s.read_w(3) == 0x00400000);  // ties to even
    CHECK(cause(s) == (flag::kUnderflow | flag::kInexact));
    // FS=1: any result below 2^Emin before rounding becomes a signed zero, no flags.
    s.fcsr = fcsr::kFs;
    s.write_w(1, 0x3F7FFFFE);
    s.write_w(2, 0x80800001);
    REQUIRE(execute(s, cop1(S, 2, 1, 3, 2), 0) == Outcome::Ok);
    CHECK(s.read_w(3) == 0x80000000);
    CHECK(cause(s) == 0);
    // ...even an exact one passed through from a denormal operand.
    s.write_w(1, 0x00000005);
    s.write_w(2, 0);
    REQUIRE(execute(s, cop1(S, 2, 1, 3, 0), 0) == Outcome::Ok);
    CHECK(s.read_w(3) == 0);
}

TEST_CASE("FPU float to integer conversions", "[fpu]") {
    struct Row {
        unsigned funct;
        u32 in;
        u32 out;
        u32 cause;
    };
    const Row rows[] = {
        {12, 0x40200000, 2, flag::kInexact},           // round.w 2.5 -> 2 (ties to even)
        {12, 0x40600000, 4, flag::kInexact},           // round.w 3.5 -> 4
        {13, 0xC0600000, 0xFFFFFFFD, flag::kInexact},  // trunc.w -3.5 -> -3
        {14, 0x3F000000, 1, flag::kInexact},           // ceil.w 0.5 -> 1
        {15, 0xBF000000, 0xFFFFFFFF, flag::kInexact},  // floor.w -0.5 -> -1
        {13, 0x4F000000, 0x7FFFFFFF, flag::kInvalid},  // 2^31: out of range, Invalid alone
        {13, 0xCF000000, 0x80000000, 0},               // -2^31 fits
        {13, 0xCF000001, 0x7FFFFFFF, flag::kInvalid},  // below -2^31: MIPS gives 2^31-1
        {13, kQNaNS, 0x7FFFFFFF, flag::kInvalid},
        {13, 0xFF800000, 0x7FFFFFFF, flag::kInvalid},  // -inf
    };
    for (const Row& r : rows) {
        FpuState s = fresh();
        s.write_w(1, r.in);
        REQUIRE(execute(s, cop1(S, 0, 1, 2, r.funct), 0) == Outcome::Ok);
        CHECK(s.read_w(2) == r.out);
        CHECK(cause(s) == r.cause);
    }
    FpuState s = fresh();
    s.write_d(1, 0x43E0000000000000);                             // 2^63
    REQUIRE(execute(s, cop1(D, 0, 1, 2, 37), 0) == Outcome::Ok);  // cvt.l.d
    CHECK(s.read_d(2) == 0x7FFFFFFFFFFFFFFF);
    CHECK(cause(s) == flag::kInvalid);
    s.fcsr = 2;                        // cvt.w uses FCSR.RM: round up
    s.write_d(1, 0x3FF8000000000000);  // 1.5
    REQUIRE(execute(s, cop1(D, 0, 1, 2, 36), 0) == Outcome::Ok);
    CHECK(s.read_w(2) == 2);
}

TEST_CASE("FPU format conversions", "[fpu]") {
    FpuState s = fresh();
    s.write_w(1, 0x01000001);                                     // 2^24 + 1 as an integer: not exact in single
    REQUIRE(execute(s, cop1(W, 0, 1, 2, 32), 0) == Outcome::Ok);  // cvt.s.w
    CHECK(s.read_w(2) == 0x4B800000);
    CHECK(cause(s) == flag::kInexact);
    REQUIRE(execute(s, cop1(W, 0, 1, 2, 33), 0) == Outcome::Ok);  // cvt.d.w: exact
    CHECK(s.read_d(2) == 0x4170000010000000);
    s.write_d(4, 0x8000000000000000);
    REQUIRE(execute(s, cop1(L, 0, 4, 2, 33), 0) == Outcome::Ok);  // cvt.d.l -2^63
    CHECK(s.read_d(2) == 0xC3E0000000000000);
    s.write_d(4, 0x47F0000000000000);                             // 2^128
    REQUIRE(execute(s, cop1(D, 0, 4, 2, 32), 0) == Outcome::Ok);  // cvt.s.d overflows
    CHECK(s.read_w(2) == 0x7F800000);
    CHECK(cause(s) == (flag::kOverflow | flag::kInexact));
    s.write_w(4, kSNaNS);
    REQUIRE(execute(s, cop1(S, 0, 4, 2, 33), 0) == Outcome::Ok);  // cvt.d.s of an sNaN
    CHECK(s.read_d(2) == kQNaND);
    CHECK(cause(s) == flag::kInvalid);
}

TEST_CASE("FPU Reserved Instruction cases", "[fpu]") {
    FpuState s = fresh(false);
    CHECK(execute(s, cop1(D, 2, 1, 4, 0), 0) == Outcome::ReservedInstruction);  // odd fs, FR=0
    CHECK(execute(s, cop1(D, 2, 4, 6, 0), 0) == Outcome::Ok);
    CHECK(execute(s, cop1(L, 0, 4, 6, 33), 0) == Outcome::ReservedInstruction);  // L needs FR=1
    CHECK(execute(s, cop1(S, 0, 4, 6, 37), 0) == Outcome::ReservedInstruction);  // cvt.l.s too
    CHECK(execute(s, cop1(S, 2, 3, 5, 0), 0) == Outcome::Ok);                    // S: any register
    CHECK(execute(s, cop1(PS, 2, 4, 6, 0), 0) == Outcome::ReservedInstruction);  // PS needs FR=1
    s.fr = true;
    CHECK(execute(s, cop1(S, 0, 4, 6, 16), 0) == Outcome::ReservedInstruction);  // R6 SEL.S
    CHECK(execute(s, cop1(W, 0, 4, 6, 0), 0) == Outcome::ReservedInstruction);
    CHECK(execute(s, cop1(19, 0, 4, 6, 0), 0) == Outcome::ReservedInstruction);  // fmt 19
    CHECK(execute(s, 0x00000000, 0) == Outcome::ReservedInstruction);            // not COP1
}

TEST_CASE("FPU compares set condition codes", "[fpu]") {
    FpuState s = fresh();
    s.write_w(1, kOneS);
    s.write_w(2, kTwoS);
    REQUIRE(execute(s, c_cond(S, 4, 3, 1, 2), 0) == Outcome::Ok);  // c.olt.s $fcc3: 1 < 2
    CHECK(condition(s, 3));
    CHECK((s.fcsr & (1u << 27)) != 0);
    REQUIRE(execute(s, c_cond(S, 2, 0, 1, 2), 0) == Outcome::Ok);  // c.eq.s $fcc0
    CHECK_FALSE(condition(s, 0));
    s.write_w(1, 0x80000000);
    s.write_w(2, 0);
    REQUIRE(execute(s, c_cond(S, 2, 0, 1, 2), 0) == Outcome::Ok);  // -0 == +0
    CHECK(condition(s, 0));
    CHECK((s.fcsr & fcsr::kFcc0) != 0);
    // Unordered: a quiet NaN is silent for c.ueq, Invalid for the signalling c.ngl.
    s.write_w(1, kQNaNS);
    REQUIRE(execute(s, c_cond(S, 3, 1, 1, 2), 0) == Outcome::Ok);
    CHECK(condition(s, 1));
    CHECK(cause(s) == 0);
    REQUIRE(execute(s, c_cond(S, 11, 1, 1, 2), 0) == Outcome::Ok);
    CHECK(condition(s, 1));
    CHECK(cause(s) == flag::kInvalid);
    REQUIRE(execute(s, c_cond(S, 0, 1, 1, 2), 0) == Outcome::Ok);  // c.f: always false
    CHECK_FALSE(condition(s, 1));
}

TEST_CASE("FPU conditional moves", "[fpu]") {
    FpuState s = fresh();
    s.write_d(2, 0x1111);
    s.write_d(4, 0x2222);
    s.fcsr = 1u << 26;                                                       // FCC2
    REQUIRE(execute(s, cop1(D, (2 << 2) | 1, 2, 4, 17), 0) == Outcome::Ok);  // movt.d $f4, $f2, $fcc2
    CHECK(s.read_d(4) == 0x1111);
    s.write_d(4, 0x2222);
    REQUIRE(execute(s, cop1(D, (2 << 2) | 0, 2, 4, 17), 0) == Outcome::Ok);  // movf.d: no move
    CHECK(s.read_d(4) == 0x2222);
    REQUIRE(execute(s, cop1(D, 7, 2, 4, 18), 5) == Outcome::Ok);  // movz.d, GPR[rt] = 5: no move
    CHECK(s.read_d(4) == 0x2222);
    REQUIRE(execute(s, cop1(D, 7, 2, 4, 19), 5) == Outcome::Ok);  // movn.d: move
    CHECK(s.read_d(4) == 0x1111);
    CHECK(s.fcsr == 1u << 26);  // moves touch no FCSR bit
}

TEST_CASE("FPU multiply-add is unfused and NMADD negates NaNs", "[fpu]") {
    FpuState s = fresh();
    s.write_w(4, 0x3F800001);                                        // 1 + 2^-23
    s.write_w(6, 0x3F7FFFFE);                                        // 1 - 2^-23: the exact product is 1 - 2^-46
    s.write_w(8, 0xBF800000);                                        // -1
    REQUIRE(execute(s, cop1x(4, 0, 8, 6, 4, 2), 0) == Outcome::Ok);  // madd.s $f2, $f8, $f4, $f6
    CHECK(s.read_w(2) == 0);  // the product rounded to 1 first (a fused one gives -2^-46)
    CHECK(cause(s) == flag::kInexact);
    s.write_d(10, 0x7FF0000000000000);
    s.write_d(12, 0);
    REQUIRE(execute(s, cop1x(6, 1, 12, 12, 10, 14), 0) == Outcome::Ok);  // nmadd.d inf*0+0
    CHECK(s.read_d(14) == (kQNaND | 0x8000000000000000));
    CHECK(cause(s) == flag::kInvalid);
    s.write_d(10, 0x4000000000000000);
    s.write_d(12, kOneD);
    REQUIRE(execute(s, cop1x(7, 1, 12, 12, 10, 14), 0) == Outcome::Ok);  // nmsub.d -(2*1 - 1)
    CHECK(s.read_d(14) == 0xBFF0000000000000);
}

TEST_CASE("FPU RECIP and RSQRT", "[fpu]") {
    FpuState s = fresh();
    s.write_d(2, 0x4010000000000000);                             // 4
    REQUIRE(execute(s, cop1(D, 0, 2, 4, 22), 0) == Outcome::Ok);  // rsqrt.d
    CHECK(s.read_d(4) == 0x3FE0000000000000);
    REQUIRE(execute(s, cop1(D, 0, 2, 4, 21), 0) == Outcome::Ok);  // recip.d
    CHECK(s.read_d(4) == 0x3FD0000000000000);
    s.write_w(2, 0x80000000);
    REQUIRE(execute(s, cop1(S, 0, 2, 4, 22), 0) == Outcome::Ok);  // rsqrt(-0) = 1/-0
    CHECK(s.read_w(4) == 0xFF800000);
    CHECK(cause(s) == flag::kDivZero);
}

TEST_CASE("FPU paired single", "[fpu]") {
    FpuState s = fresh();
    s.write_w(1, kOneS);
    s.write_w(2, kTwoS);
    REQUIRE(execute(s, cop1(S, 2, 1, 4, 38), 0) == Outcome::Ok);  // cvt.ps.s $f4, $f1, $f2
    CHECK(s.read_d(4) == ((u64(kOneS) << 32) | kTwoS));
    REQUIRE(execute(s, cop1(PS, 4, 4, 6, 0), 0) == Outcome::Ok);  // add.ps
    CHECK(s.read_d(6) == ((u64(kTwoS) << 32) | 0x40800000));
    REQUIRE(execute(s, cop1(PS, 4, 6, 8, 46), 0) == Outcome::Ok);  // pul.ps: fs.PU, ft.PL
    CHECK(s.read_d(8) == ((u64(kTwoS) << 32) | kTwoS));
    REQUIRE(execute(s, cop1(PS, 0, 8, 10, 32), 0) == Outcome::Ok);  // cvt.s.pu
    CHECK(s.read_w(10) == kTwoS);
}

TEST_CASE("FPU control registers", "[fpu]") {
    FpuState s = fresh();
    CHECK(read_control(s, 0) == kFir);
    CHECK(kFir == 0x007F0000);
    s.fcsr = 0xFF800000 | 0x0003F07C | 0x00000F83;  // all FCCs, FS, Cause, Flags, Enables, RM
    CHECK(read_control(s, 25) == 0xFF);
    CHECK(read_control(s, 26) == 0x0003F07C);
    CHECK(read_control(s, 28) == 0x00000F87);
    CHECK(read_control(s, 31) == s.fcsr);
    CHECK(read_control(s, 7) == s.fcsr);  // unknown numbers read FCSR, as in QEMU
    CHECK(read_control(s, 1) == 0);

    s.fcsr = 0;
    CHECK(write_control(s, 25, 0x81) == Outcome::Ok);  // FCC7 and FCC0
    CHECK(s.fcsr == 0x80800000);
    CHECK(write_control(s, 25, 0x100) == Outcome::Ok);  // reserved bits: ignored whole
    CHECK(s.fcsr == 0x80800000);
    CHECK(write_control(s, 28, 0x00000F87) == Outcome::Ok);  // enables, FS, RM
    CHECK(s.fcsr == 0x81800F83);
    CHECK(write_control(s, 31, 0xFFFFFFFF & ~0x3F000u) == Outcome::Ok);
    CHECK(s.fcsr == (fcsr::kWritableMask & ~0x3F000u));  // bits 18..22 are read-only
    s.fcsr = 0;
    // A Cause bit whose Enable is set traps after the write; Cause.E always does.
    CHECK(write_control(s, 31, (1u << 7) | (1u << 12)) == Outcome::FloatingPointException);
    CHECK(s.fcsr == ((1u << 7) | (1u << 12)));
    CHECK(write_control(s, 26, 1u << 17) == Outcome::FloatingPointException);
    CHECK(write_control(s, 26, 0) == Outcome::Ok);
    CHECK(write_control(s, 26, 1u << 13) == Outcome::Ok);  // U cause, U not enabled
}
