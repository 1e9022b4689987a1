#include "vmm/cpu/decoder.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <bit>
#include <vector>

namespace disco::cpu {
namespace {

constexpr u32 pattern_mask(std::string_view p) {
    u32 m = 0;
    for (char c : p) m = (m << 1) | (c == '0' || c == '1' ? 1u : 0u);
    return m;
}
constexpr u32 pattern_match(std::string_view p) {
    u32 m = 0;
    for (char c : p) m = (m << 1) | (c == '1' ? 1u : 0u);
    return m;
}

#define INST(name, mnem, pattern, operands) \
    static_assert(std::string_view(pattern).size() == 32, "pattern of " #name " must have 32 bits");
#define INST64 INST
#include "vmm/cpu/fpu_isa.inc"
#include "vmm/cpu/isa.inc"
#undef INST64
#undef INST

const std::array<OpInfo, kOpCount> kInfo = {{
#define INST(name, mnem, pattern, operands) \
    {mnem, pattern, operands, pattern_mask(pattern), pattern_match(pattern), false},
#define INST64(name, mnem, pattern, operands) \
    {mnem, pattern, operands, pattern_mask(pattern), pattern_match(pattern), true},
#include "vmm/cpu/fpu_isa.inc"
#include "vmm/cpu/isa.inc"
#undef INST64
#undef INST
    {"(invalid)", "", "", 0, 1, false},  // mask 0 with match 1 never matches
}};

/// Candidate ops per primary opcode, most specific pattern first, so that
/// e.g. SYNC_T never shadows SYNC and ROTR never shadows SRL.
struct Buckets {
    std::array<std::vector<Op>, 64> by_opcode;
    Buckets() {
        for (unsigned i = 0; i + 1 < kOpCount; ++i) {
            const auto& info = kInfo[i];
            const unsigned opcode = info.match >> 26;
            by_opcode[opcode].push_back(static_cast<Op>(i));
        }
        for (auto& b : by_opcode) {
            std::stable_sort(b.begin(), b.end(), [](Op x, Op y) {
                return std::popcount(kInfo[static_cast<unsigned>(x)].mask) >
                       std::popcount(kInfo[static_cast<unsigned>(y)].mask);
            });
        }
    }
};
const Buckets& buckets() {
    static const Buckets b;
    return b;
}

const char* const kGprNames[32] = {"zero", "at", "v0", "v1", "a0", "a1", "a2", "a3", "a4", "a5", "a6",
                                   "a7",   "t0", "t1", "t2", "t3", "s0", "s1", "s2", "s3", "s4", "s5",
                                   "s6",   "s7", "t8", "t9", "k0", "k1", "gp", "sp", "s8", "ra"};

/// FPU arithmetic mnemonics by function field (MD00087 Table A.17), "" = reserved.
const char* const kFpuFunct[64] = {
    "add",     "sub",     "mul",     "div",    "sqrt",    "abs",  "mov",   "neg",   "round.l", "trunc.l", "ceil.l",
    "floor.l", "round.w", "trunc.w", "ceil.w", "floor.w", "",     "mov?",  "movz",  "movn",    "",        "recip",
    "rsqrt",   "",        "",        "",       "",        "",     "",      "",      "",        "",        "cvt.s",
    "cvt.d",   "",        "",        "cvt.w",  "cvt.l",   "",     "",      "",      "",        "",        "",
    "",        "",        "",        "",       "c.f",     "c.un", "c.eq",  "c.ueq", "c.olt",   "c.ult",   "c.ole",
    "c.ule",   "c.sf",    "c.ngle",  "c.seq",  "c.ngl",   "c.lt", "c.nge", "c.le",  "c.ngt"};

std::string fpu_arith_text(u32 raw, std::string_view fmt_name) {
    const unsigned funct = field_funct(raw);
    std::string name = kFpuFunct[funct];
    if (name.empty()) return fmt::format(".word {:#010x}  # reserved cop1.{}", raw, fmt_name);
    if (funct == 0x11) name = (raw >> 16) & 1 ? "movt" : "movf";
    const unsigned fd = field_sa(raw), fs = field_rd(raw), ft = field_rt(raw);
    if (funct >= 0x30) return fmt::format("{}.{} $fcc{}, $f{}, $f{}", name, fmt_name, fd >> 2, fs, ft);
    if (funct == 0x11) return fmt::format("{}.{} $f{}, $f{}, $fcc{}", name, fmt_name, fd, fs, ft >> 2);
    if (funct == 0x12 || funct == 0x13)
        return fmt::format("{}.{} $f{}, $f{}, ${}", name, fmt_name, fd, fs, kGprNames[ft]);
    if (funct <= 3) return fmt::format("{}.{} $f{}, $f{}, $f{}", name, fmt_name, fd, fs, ft);
    return fmt::format("{}.{} $f{}, $f{}", name, fmt_name, fd, fs);
}
}  // namespace

const OpInfo& op_info(Op op) { return kInfo[static_cast<unsigned>(op)]; }

Op decode_op(u32 raw) {
    for (Op op : buckets().by_opcode[raw >> 26]) {
        const auto& info = kInfo[static_cast<unsigned>(op)];
        if ((raw & info.mask) == info.match) return op;
    }
    return Op::Invalid;
}

std::string disassemble(u32 raw, u64 pc) {
    const Op op = decode_op(raw);
    if (op == Op::Invalid) return fmt::format(".word {:#010x}  # reserved", raw);
    const OpInfo& info = op_info(op);
    const unsigned rs = field_rs(raw), rt = field_rt(raw), rd = field_rd(raw), sa = field_sa(raw);
    if (info.operands == "X") return fpu_arith_text(raw, info.mnemonic);
    if (info.operands == "M") {
        static const char* const kFmt[8] = {"s", "d", "?", "?", "?", "?", "ps", "?"};
        return fmt::format("{}.{} $f{}, $f{}, $f{}, $f{}", info.mnemonic, kFmt[raw & 7], sa, rs, rd, rt);
    }
    std::string out(info.mnemonic);
    bool first = true;
    for (char c : info.operands) {
        if (c == ',') continue;
        out += first ? " " : ", ";
        first = false;
        switch (c) {
            case 'D':
            case 'd':
                out += fmt::format("${}", kGprNames[rd]);
                break;
            case 'T':
            case 't':
                out += fmt::format("${}", kGprNames[rt]);
                break;
            case 's':
                out += fmt::format("${}", kGprNames[rs]);
                break;
            case 'a':
                out += fmt::format("{}", sa);
                break;
            case 'i':
                out += fmt::format("{}", field_simm16(raw));
                break;
            case 'u':
                out += fmt::format("{:#x}", raw & 0xFFFF);
                break;
            case 'o':
                out += fmt::format("{}(${})", field_simm16(raw), kGprNames[rs]);
                break;
            case 'x':
                out += fmt::format("${}(${})", kGprNames[rt], kGprNames[rs]);
                break;
            case 'b':
                out += fmt::format("{:#x}", pc + 4 + (static_cast<u64>(field_simm16(raw)) << 2));
                break;
            case 'j':
                out += fmt::format("{:#x}", ((pc + 4) & ~0x0FFFFFFFull) | ((raw & 0x03FFFFFF) << 2));
                break;
            case 'k':
                out += fmt::format("${}, {}", rd, raw & 7);
                break;
            case 'h':
                out += fmt::format("${}", rd);
                break;
            case 'f':
                out += fmt::format("$f{}", rd);
                break;
            case 'g':
                out += fmt::format("$f{}", rt);
                break;
            case 'e':
                out += fmt::format("$f{}", sa);
                break;
            case 'C':
                out += fmt::format("${}", rd);
                break;
            case 'N':
                out += fmt::format("$fcc{}", (raw >> 18) & 7);
                break;
            case 'c':
                out += fmt::format("{:#x}", (raw >> 6) & 0xFFFFF);
                break;
            case 'y':
                out += fmt::format("{:#x}", op == Op::SYNC_T ? sa : rt);
                break;
            case 'E':
                out += fmt::format("{}, {}", sa, rd + 1);
                break;  // pos, size
            case 'F':
                out += fmt::format("{}, {}", sa, rd + 33);
                break;
            case 'G':
                out += fmt::format("{}, {}", sa + 32, rd + 1);
                break;
            case 'I':
                out += fmt::format("{}, {}", sa, rd + 1 - sa);
                break;  // msb in rd
            case 'J':
                out += fmt::format("{}, {}", sa, rd + 33 - sa);
                break;
            case 'K':
                out += fmt::format("{}, {}", sa + 32, rd + 1 - sa);
                break;
            default:
                out += '?';
                break;
        }
    }
    return out;
}
}  // namespace disco::cpu
