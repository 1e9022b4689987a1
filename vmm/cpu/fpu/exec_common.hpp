// Internal: what every FPU instruction handler shares: instruction fields,
// starting an arithmetic operation from FCSR, and ending it the way MIPS
// (Vol. I-A 6.7 "FPU exceptions") and QEMU's update_fcr31 do: Cause is
// replaced by this operation's exceptions; if one of them is enabled the
// instruction traps with the destination unwritten and Flags untouched,
// otherwise they accumulate into Flags and the result is written.
#pragma once
#include <type_traits>

#include "vmm/cpu/fpu/softfloat.hpp"

namespace disco::cpu::fpu::exec {

using sf::Env;
using sf::F32;
using sf::F64;
using sf::Round;

struct Fields {
    unsigned ft, fs, fd, funct;
    explicit Fields(u32 insn) : ft((insn >> 16) & 31), fs((insn >> 11) & 31), fd((insn >> 6) & 31), funct(insn & 63) {}
};

inline Env begin(const FpuState& s) {
    return Env{static_cast<Round>(s.fcsr & fcsr::kRmMask), (s.fcsr & fcsr::kFs) != 0, 0};
}

/// Sets Cause; true when the operation must trap instead of completing.
inline bool traps(FpuState& s, u8 flags) {
    s.fcsr = (s.fcsr & ~fcsr::kCauseMask) | (u32(flags) << fcsr::kCauseShift);
    if (flags & (s.fcsr >> fcsr::kEnablesShift) & 0x1F) return true;
    s.fcsr |= u32(flags) << fcsr::kFlagsShift;
    return false;
}

/// QEMU's check_cp1_registers: with FR=0 an odd register number naming a
/// 64-bit operand is a Reserved Instruction.
inline bool odd_pair(const FpuState& s, unsigned regs) { return !s.fr && (regs & 1); }

/// Typed register access: S/W through the 32-bit view, D/L the 64-bit one.
template <class F>
struct Reg;
template <>
struct Reg<F32> {
    static u32 get(const FpuState& s, unsigned r) { return s.read_w(r); }
    static void set(FpuState& s, unsigned r, u32 v) { s.write_w(r, v); }
};
template <>
struct Reg<F64> {
    static u64 get(const FpuState& s, unsigned r) { return s.read_d(r); }
    static void set(FpuState& s, unsigned r, u64 v) { s.write_d(r, v); }
};

template <class F>
inline Outcome commit(FpuState& s, const Env& env, unsigned fd, typename F::Bits v) {
    if (traps(s, env.flags)) return Outcome::FloatingPointException;
    Reg<F>::set(s, fd, v);
    return Outcome::Ok;
}

inline void set_condition(FpuState& s, unsigned cc, bool v) {
    const u32 bit = cc == 0 ? fcsr::kFcc0 : (1u << (24 + cc));
    s.fcsr = v ? (s.fcsr | bit) : (s.fcsr & ~bit);
}

// Handlers, one file each.
template <class F>
Outcome float_op(FpuState& s, u32 insn, u64 gpr_rt);    // fmt S / D (exec_float.cpp)
Outcome fixed_op(FpuState& s, u32 insn, bool is_long);  // fmt W / L (exec_fixed.cpp)
Outcome paired_op(FpuState& s, u32 insn, u64 gpr_rt);   // fmt PS (exec_paired.cpp)
Outcome cop1x_op(FpuState& s, u32 insn);                // COP1X (exec_cop1x.cpp)

}  // namespace disco::cpu::fpu::exec
