// Seeded generation of FPU test cases: every COP1 function code under the
// S/D/W/L/PS formats (reserved ones included, to check the Reserved
// Instruction map), every COP1X multiply-add, CTC1/CFC1 on every control
// register number; for each, both FR modes, all four rounding modes and
// FCSR.FS off/on; operands drawn from special values (zeros, infinities,
// legacy quiet/signalling NaNs, denormals, extremes, ties, integer limits)
// and random ones.
#include "tests/fpu-oracle/cases.hpp"

#include <fmt/format.h>

#include <array>
#include <bit>
#include <cmath>
#include <cstring>

#include "vmm/cpu/fpu/fpu.hpp"

namespace fpu_oracle {
namespace {

using Rng = std::mt19937_64;

constexpr u32 cop1(unsigned fmt, unsigned funct) { return (0x11u << 26) | (fmt << 21) | funct; }
constexpr u32 cop1x(unsigned funct) { return (0x13u << 26) | funct; }

u64 rnd(Rng& r, u64 n) { return r() % n; }

const std::array<u32, 30> kSpecial32 = {
    0x00000000, 0x80000000, 0x7F800000, 0xFF800000,  // zeros, infinities
    0x7FBFFFFF, 0x7F800001, 0xFFA00000, 0x7F812345,  // legacy quiet NaNs (fraction MSB clear)
    0x7FC00000, 0x7FFFFFFF, 0xFFC00001, 0xFFE00000,  // legacy signalling NaNs
    0x00000001, 0x80000001, 0x007FFFFF, 0x807FFFFF,  // denormal extremes
    0x00800000, 0x80800000, 0x7F7FFFFF, 0xFF7FFFFF,  // normal extremes
    0x3F800000, 0xBF800000, 0x3F000000, 0x3FC00000,  // 1, -1, 0.5, 1.5
    0x40200000, 0xC0200000, 0x4F000000, 0xCF000000,  // 2.5, -2.5, 2^31, -2^31
    0x5F000000, 0xDF000000,                          // 2^63, -2^63
};
const std::array<u64, 30> kSpecial64 = {
    0x0000000000000000, 0x8000000000000000, 0x7FF0000000000000, 0xFFF0000000000000, 0x7FF7FFFFFFFFFFFF,
    0x7FF0000000000001, 0xFFF4000000000000, 0x7FF0123456789ABC, 0x7FF8000000000000, 0x7FFFFFFFFFFFFFFF,
    0xFFF8000000000001, 0xFFFC000000000000, 0x0000000000000001, 0x8000000000000001, 0x000FFFFFFFFFFFFF,
    0x800FFFFFFFFFFFFF, 0x0010000000000000, 0x8010000000000000, 0x7FEFFFFFFFFFFFFF, 0xFFEFFFFFFFFFFFFF,
    0x3FF0000000000000, 0xBFF0000000000000, 0x3FE0000000000000, 0x3FF8000000000000, 0x4004000000000000,
    0xC004000000000000, 0x41E0000000000000, 0xC1E0000000000000, 0x43E0000000000000, 0xC3E0000000000000,
};

/// A binary32 value: special, random bits, ordinary, near the denormal or
/// overflow edges, or near an integer (ties, conversion limits).
u32 gen_f32(Rng& r) {
    const u32 sign = rnd(r, 2) ? 0x80000000u : 0;
    const u32 mant = static_cast<u32>(r()) & 0x7FFFFF;
    switch (rnd(r, 10)) {
        case 8: {  // just below/above 1: times a value near 2^Emin lands on the underflow edge
            const u32 m = static_cast<u32>(rnd(r, 8));
            return rnd(r, 2) ? (0x3F7FFFFFu - m) : (0x3F800000u + m);
        }
        case 9:
            return sign | (rnd(r, 2) ? static_cast<u32>(rnd(r, 8)) : (0x00800000u - static_cast<u32>(rnd(r, 8))));
        case 0:
        case 1:
            return kSpecial32[rnd(r, kSpecial32.size())];
        case 2:
            return static_cast<u32>(r());
        case 3:
            return sign | (static_cast<u32>(127 - 20 + rnd(r, 40)) << 23) | mant;
        case 4:
            return sign | (static_cast<u32>(rnd(r, 4)) << 23) | (mant >> rnd(r, 23));
        case 5:
            return sign | (static_cast<u32>(251 + rnd(r, 4)) << 23) | mant;
        case 6: {
            const int bits = static_cast<int>(rnd(r, 66));
            const double n = std::ldexp(static_cast<double>(r() >> 11), bits - 53);
            const double fr[] = {0.0, 0.5, 0.25, 0.75, -0.5, 1.0 / 3};
            return sign | std::bit_cast<u32>(static_cast<float>(std::floor(n) + fr[rnd(r, 6)]));
        }
        default:
            return sign | (static_cast<u32>(rnd(r, 255)) << 23) | mant;
    }
}

u64 gen_f64(Rng& r) {
    const u64 sign = rnd(r, 2) ? 0x8000000000000000ull : 0;
    const u64 mant = r() & 0xFFFFFFFFFFFFFull;
    switch (rnd(r, 10)) {
        case 8: {
            const u64 m = rnd(r, 8);
            return rnd(r, 2) ? (0x3FEFFFFFFFFFFFFFull - m) : (0x3FF0000000000000ull + m);
        }
        case 9:
            return sign | (rnd(r, 2) ? rnd(r, 8) : (0x0010000000000000ull - rnd(r, 8)));
        case 0:
        case 1:
            return kSpecial64[rnd(r, kSpecial64.size())];
        case 2:
            return r();
        case 3:
            return sign | ((1023 - 30 + rnd(r, 60)) << 52) | mant;
        case 4:
            return sign | (rnd(r, 4) << 52) | (mant >> rnd(r, 52));
        case 5:
            return sign | ((2043 + rnd(r, 4)) << 52) | mant;
        case 6: {
            const int bits = static_cast<int>(rnd(r, 66));
            const double n = std::ldexp(static_cast<double>(r() >> 11), bits - 53);
            const double fr[] = {0.0, 0.5, 0.25, 0.75, -0.5, 1.0 / 3};
            return sign | std::bit_cast<u64>(std::floor(n) + fr[rnd(r, 6)]);
        }
        case 7: {  // a float32-representable value, or one just off it
            const u64 d = std::bit_cast<u64>(static_cast<double>(std::bit_cast<float>(gen_f32(r))));
            return rnd(r, 2) ? d : d + rnd(r, 1u << 29) - (1u << 28);
        }
        default:
            return sign | (rnd(r, 2047) << 52) | mant;
    }
}

u64 gen_int(Rng& r, bool is_long) {
    const u64 v = r();
    switch (rnd(r, 5)) {
        case 0: {
            const u64 s[] = {0,
                             1,
                             ~0ull,
                             0x7FFFFFFF,
                             0x80000000,
                             0xFFFFFFFF80000000ull,
                             0x7FFFFFFFFFFFFFFFull,
                             0x8000000000000000ull,
                             0x1000001,
                             0x20000000000001ull,
                             0xFFFFFF,
                             0x7FFFFFBF};
            return s[rnd(r, std::size(s))];
        }
        case 1:
            return v >> rnd(r, 64);
        case 2:
            return static_cast<u64>(-static_cast<i64>(v >> rnd(r, 64)));
        case 3:
            return (u64(1) << rnd(r, is_long ? 64 : 32)) + rnd(r, 3) - 1;
        default:
            return v;
    }
}

/// A second operand related to the first (cancellation, ties, equal values).
u64 related(Rng& r, u64 a, Kind k) {
    const bool narrow = k == Kind::S;
    const u64 sign = narrow ? 0x80000000ull : 0x8000000000000000ull;
    switch (rnd(r, 8)) {
        case 4:
        case 5:
        case 6:
        case 7: {  // a*b or a/b within a few ulps of 2^Emin: the underflow/flush edge
            const bool for_mul = rnd(r, 2);
            const int k = static_cast<int>(rnd(r, 3)) - 1;
            if (narrow) {
                const float x = std::bit_cast<float>(static_cast<u32>(a));
                if (!std::isnormal(x)) return a;
                const float y = for_mul ? std::ldexp(1.0f / x, -126) : std::ldexp(x, 126);
                return std::bit_cast<u32>(y) + k;
            }
            const double x = std::bit_cast<double>(a);
            if (!std::isnormal(x)) return a;
            const double y = for_mul ? std::ldexp(1.0 / x, -1022) : std::ldexp(x, 1022);
            return std::bit_cast<u64>(y) + k;
        }
        case 0:
            return a;
        case 1:
            return a ^ sign;
        case 2:
            return (a ^ (rnd(r, 2) ? sign : 0)) + rnd(r, 16) - 8;
        default:
            return (a ^ sign) + (u64(rnd(r, 8)) << (narrow ? 23 : 52)) - (u64(4) << (narrow ? 23 : 52));
    }
}

u64 gen_value(Rng& r, Kind k) {
    switch (k) {
        case Kind::S:
            return gen_f32(r);
        case Kind::D:
            return gen_f64(r);
        case Kind::W:
            return gen_int(r, false) & 0xFFFFFFFF;
        case Kind::L:
            return gen_int(r, true);
        case Kind::PS:
            return (u64(gen_f32(r)) << 32) | gen_f32(r);
    }
    return 0;
}

void place(disco::cpu::fpu::FpuState& s, unsigned reg, Kind k, u64 v) {
    if (k == Kind::S || k == Kind::W)
        s.write_w(reg, static_cast<u32>(v));
    else
        s.write_d(reg, v);
}

u32 gen_fcsr(Rng& r, unsigned rm, bool fs) {
    const u32 enables = rnd(r, 10) < 6 ? 0 : static_cast<u32>(rnd(r, 32));
    const u32 flags = static_cast<u32>(rnd(r, 32));
    const u32 cause = static_cast<u32>(rnd(r, 64)) & ~(enables | 0x20);
    const u32 fcc = static_cast<u32>(rnd(r, 256));
    return rm | (fs ? (1u << 24) : 0) | (flags << 2) | (enables << 7) | (cause << 12) | ((fcc & 1) << 23) |
           ((fcc >> 1) << 25);
}

u32 gen_control_value(Rng& r) {
    const u32 v = static_cast<u32>(r());
    switch (rnd(r, 6)) {
        case 0:
            return v & 0xFF;
        case 1:
            return v & 0x0003F07C;
        case 2:
            return v & 0x00000F87;
        case 3:
            return v & ~0x0003F000u;  // no cause: never traps
        case 4:
            return v & 0xFFFC0FFF;
        default:
            return v;
    }
}

}  // namespace

std::vector<OpSpec> op_specs() {
    std::vector<OpSpec> v;
    auto is_arith_sd = [](unsigned f) {
        return f <= 4 || (f >= 8 && f <= 15) || f == 21 || f == 22 || (f >= 28 && f <= 33) || f == 36 || f == 37 ||
               f >= 48;
    };
    for (unsigned funct = 0; funct < 64; ++funct) {
        const int heavy = (funct <= 3 || funct == 4 || funct == 32 || funct == 33 || funct == 36) ? 10 : 5;
        v.push_back({cop1(16, funct), Kind::S, false, false, is_arith_sd(funct) ? heavy : 2});
        v.push_back({cop1(17, funct), Kind::D, false, false, is_arith_sd(funct) ? heavy : 2});
        const bool fixed = funct == 32 || funct == 33 || funct == 38;
        v.push_back({cop1(20, funct), Kind::W, false, false, fixed ? 8 : 1});
        v.push_back({cop1(21, funct), Kind::L, false, false, fixed ? 8 : 1});
        const bool ps = funct <= 2 || (funct >= 5 && funct <= 7) || (funct >= 17 && funct <= 19) || funct == 24 ||
                        funct == 26 || (funct >= 28 && funct <= 32) || funct == 36 || funct >= 40;
        v.push_back({cop1(22, funct), Kind::PS, false, false, ps ? 3 : 1});
    }
    for (unsigned funct = 32; funct < 64; ++funct) {
        const unsigned f3 = funct & 7;
        const Kind k = f3 == 1 ? Kind::D : f3 == 6 ? Kind::PS : Kind::S;
        v.push_back({cop1x(funct), k, true, false, (f3 == 0 || f3 == 1) ? 10 : f3 == 6 ? 3 : 1});
    }
    for (unsigned fs = 0; fs < 32; ++fs) {
        v.push_back({(0x11u << 26) | (6u << 21) | (3u << 16) | (fs << 11), Kind::W, false, true, 2});  // CTC1
        v.push_back({(0x11u << 26) | (2u << 21) | (3u << 16) | (fs << 11), Kind::W, false, true, 1});  // CFC1
    }
    return v;
}

std::vector<Case> generate(u64 seed, double scale) {
    Rng r(seed);
    std::vector<Case> out;
    for (const OpSpec& op : op_specs()) {
        const bool wide = op.src == Kind::D || op.src == Kind::L || op.src == Kind::PS;
        for (unsigned fr = 0; fr < 2; ++fr)
            for (unsigned rm = 0; rm < 4; ++rm)
                for (unsigned fsb = 0; fsb < 2; ++fsb) {
                    const int n = std::max(1, static_cast<int>(op.weight * scale + 0.5));
                    for (int i = 0; i < n; ++i) {
                        Case c;
                        c.mode = fr;
                        c.fcsr = gen_fcsr(r, rm, fsb);
                        c.gpr = rnd(r, 2) ? 0 : r();
                        disco::cpu::fpu::FpuState s;
                        s.fr = fr;
                        for (auto& x : s.fpr) x = fr ? r() : (r() & 0xFFFFFFFF);
                        auto reg = [&] {
                            unsigned x = static_cast<unsigned>(rnd(r, 32));
                            if (!fr && wide && rnd(r, 5)) x &= ~1u;  // mostly legal pairs
                            return x;
                        };
                        u32 insn = op.base;
                        if (op.control) {
                            c.gpr = gen_control_value(r);
                        } else if (op.cop1x) {
                            const unsigned fd = reg(), fs = reg(), ft = reg(), frr = reg();
                            insn |= (frr << 21) | (ft << 16) | (fs << 11) | (fd << 6);
                            const u64 a = gen_value(r, op.src);
                            place(s, fs, op.src, a);
                            place(s, ft, op.src, rnd(r, 2) ? gen_value(r, op.src) : related(r, a, op.src));
                            place(s, frr, op.src, gen_value(r, op.src));
                        } else {
                            const unsigned funct = op.base & 63;
                            unsigned fd = reg(), fs = reg(), ft = reg();
                            if (funct == 18 || funct == 19) ft = 3;  // MOVZ/MOVN: rt = $3
                            if (funct >= 48) fd = (fd & ~3u) | static_cast<unsigned>(rnd(r, 8) ? 0 : rnd(r, 4));
                            insn |= (ft << 16) | (fs << 11) | (fd << 6);
                            const u64 a = gen_value(r, op.src);
                            place(s, fs, op.src, a);
                            if (ft != fs && funct != 18 && funct != 19)
                                place(s, ft, op.src, rnd(r, 2) ? gen_value(r, op.src) : related(r, a, op.src));
                        }
                        c.insn = insn;
                        std::memcpy(c.fpr, s.fpr, sizeof c.fpr);
                        out.push_back(c);
                    }
                }
    }
    return out;
}

std::string mnemonic(u32 insn) {
    static const char* const kFunct[64] = {
        "add",      "sub",     "mul",     "div",     "sqrt",   "abs",     "mov",   "neg",    "round.l", "trunc.l",
        "ceil.l",   "floor.l", "round.w", "trunc.w", "ceil.w", "floor.w", "?16",   "movcf",  "movz",    "movn",
        "?20",      "recip",   "rsqrt",   "?23",     "addr",   "?25",     "mulr",  "?27",    "recip2",  "recip1",
        "rsqrt1",   "rsqrt2",  "cvt.s",   "cvt.d",   "?34",    "?35",     "cvt.w", "cvt.l",  "cvt.ps",  "?39",
        "cvt.s.pl", "?41",     "?42",     "?43",     "pll",    "plu",     "pul",   "puu",    "c.f",     "c.un",
        "c.eq",     "c.ueq",   "c.olt",   "c.ult",   "c.ole",  "c.ule",   "c.sf",  "c.ngle", "c.seq",   "c.ngl",
        "c.lt",     "c.nge",   "c.le",    "c.ngt"};
    const unsigned rs = (insn >> 21) & 31, rt = (insn >> 16) & 31, rd = (insn >> 11) & 31, sa = (insn >> 6) & 31;
    const unsigned funct = insn & 63;
    if ((insn >> 26) == 0x13) {
        static const char* const kOp[8] = {"?", "?", "?", "?", "madd", "msub", "nmadd", "nmsub"};
        static const char* const kFmt[8] = {"s", "d", "?2", "?3", "?4", "?5", "ps", "?7"};
        return fmt::format("{}.{} $f{}, $f{}, $f{}, $f{}  [{:#010x}]", kOp[funct >> 3], kFmt[funct & 7], sa, rs, rd, rt,
                           insn);
    }
    if (rs == 2) return fmt::format("cfc1 $3, ${}  [{:#010x}]", rd, insn);
    if (rs == 6) return fmt::format("ctc1 $3, ${}  [{:#010x}]", rd, insn);
    static const char* const kFmt[32] = {"?",  "?", "?", "?", "?", "?", "?", "?", "?", "?", "?",
                                         "?",  "?", "?", "?", "?", "s", "d", "?", "?", "w", "l",
                                         "ps", "?", "?", "?", "?", "?", "?", "?", "?", "?"};
    std::string name = kFunct[funct];
    if (funct >= 48 && (insn & (1u << 6))) name = "cabs" + name.substr(1);
    if (funct == 17) name = (rt & 1) ? "movt" : "movf";
    return fmt::format("{}.{} fd=$f{} fs=$f{} ft=${} (cc {})  [{:#010x}]", name, kFmt[rs], sa, rd, rt,
                       funct >= 48 ? sa >> 2 : rt >> 2, insn);
}

}  // namespace fpu_oracle
