// The MIPS64 Release 2 floating-point unit (CP1): register file, control
// registers and every arithmetic / convert / compare / FPU-internal move
// instruction, bit for bit as QEMU's MIPS64R2-generic CPU executes them
// (legacy NaN encoding, FCSR.NAN2008 = ABS2008 = 0).
//
// The CPU interpreter owns loads/stores, MFC1/MTC1/DMFC1/DMTC1/MFHC1/MTHC1,
// CFC1/CTC1 dispatch and BC1* branches; it calls into here for the rest.
// References: MIPS64 Architecture Vol. I-A (MD00083) ch. 6 "The FPU",
// Vol. II-A (MD00087) ch. 3 (instruction pages) and the COP1/COP1X opcode
// tables (A.13-A.20).
#pragma once
#include "vmm/util/types.hpp"

namespace disco::cpu::fpu {

/// The FPU's architectural state. FR mirrors CP0 Status.FR (Vol. III,
/// Status register); the CPU keeps it in sync.
struct FpuState {
    u64 fpr[32] = {};  // raw 64-bit registers (QEMU's fpr[].d)
    u32 fcsr = 0;      // FCSR (CP1 control register 31)
    bool fr = true;    // CP0 Status.FR

    // Register views (Vol. I-A 6.4 "FPU register models"). With FR=1 each of
    // the 32 registers is 64 bits wide; with FR=0 a 64-bit value lives in an
    // even/odd pair, low word in the even register. 32-bit writes deposit the
    // low word and leave the upper half alone, as QEMU does.
    u32 read_w(unsigned r) const { return static_cast<u32>(fpr[r]); }
    void write_w(unsigned r, u32 v) { fpr[r] = (fpr[r] & 0xFFFFFFFF00000000ull) | v; }
    u64 read_d(unsigned r) const;
    void write_d(unsigned r, u64 v);
    u32 read_hi(unsigned r) const;     // MFHC1
    void write_hi(unsigned r, u32 v);  // MTHC1
};

/// FIR (CP1 control register 0) as QEMU's MIPS64R2-generic reports it:
/// F64 | L | W | MIPS3D | PS | D | S, processor id 0, revision 0.
/// PS and MIPS3D are advertised as QEMU does; execute() implements both
/// except ALNV.PS and the BC1ANY branches (see there).
constexpr u32 kFir = 0x007F0000;

/// FCSR fields (Vol. I-A 6.5.5, Figure 6.8).
namespace fcsr {
constexpr u32 kRmMask = 0x3;           // RM: 0 RN, 1 RZ, 2 RP, 3 RM
constexpr unsigned kFlagsShift = 2;    // Flags  (V Z O U I) bits 6..2
constexpr unsigned kEnablesShift = 7;  // Enables(V Z O U I) bits 11..7
constexpr unsigned kCauseShift = 12;   // Cause  (E V Z O U I) bits 17..12
constexpr u32 kCauseMask = 0x3Fu << kCauseShift;
constexpr u32 kCauseE = 1u << 17;          // Unimplemented Operation
constexpr u32 kFcc0 = 1u << 23;            // FCC0; FCC1..7 are bits 25..31
constexpr u32 kFs = 1u << 24;              // Flush to zero
constexpr u32 kWritableMask = 0xFF83FFFF;  // QEMU MIPS64R2-generic fcr31_rw_bitmask
}  // namespace fcsr

/// Per-operation exception bits, in the order of the FCSR Flags/Enables/Cause
/// fields (I=bit0 ... V=bit4).
namespace flag {
constexpr u8 kInexact = 1, kUnderflow = 2, kOverflow = 4, kDivZero = 8, kInvalid = 16;
}

enum class Outcome : u8 {
    Ok,
    FloatingPointException,  // FCSR.Cause already set; the caller raises exception 15 (FPE)
    ReservedInstruction,     // the caller raises RI
};

/// Executes one COP1 (opcode 0x11) arithmetic/convert/compare/move-within-FPU
/// instruction with fmt S, D, W, L or PS (paired single, which QEMU's
/// MIPS64R2-generic has, as it has the MIPS-3D RECIP1/RECIP2/RSQRT1/RSQRT2/
/// CABS/ADDR/MULR/CVT.PW.PS/CVT.PS.PW forms), or one COP1X (opcode 0x13)
/// MADD/MSUB/NMADD/NMSUB.S/.D/.PS. gpr_rt is the value of GPR[rt] (insn bits
/// 20..16), read only by MOVZ.fmt/MOVN.fmt. Not handled here (they give
/// ReservedInstruction): loads/stores, MFC1 & co., CFC1/CTC1, BC1*, and the
/// MIPS-3D BC1ANY2/BC1ANY4 branches and ALNV.PS (it reads GPR[rs]).
/// Reserved Instruction and FR=0 register rules are QEMU's (see exec_*.cpp).
Outcome execute(FpuState& s, u32 insn, u64 gpr_rt);

/// CFC1: fs=0 FIR, 25 FCCR, 26 FEXR, 28 FENR, 31 FCSR; 1 and 5 read 0; every
/// other number reads FCSR, as QEMU does.
u32 read_control(const FpuState& s, unsigned fs);

/// CTC1 to FCCR/FEXR/FENR/FCSR with QEMU's writable-bit masks (other numbers
/// are ignored). Returns FloatingPointException, after the write, when a Cause
/// bit is set whose Enable is set, or Cause.E is set.
Outcome write_control(FpuState& s, unsigned fs, u32 value);

/// FCC[cc] (cc 0..7) for BC1F/BC1T/MOVF/MOVT.
inline bool condition(const FpuState& s, unsigned cc) { return (s.fcsr >> (cc == 0 ? 23 : 24 + cc)) & 1; }

}  // namespace disco::cpu::fpu
