// CFC1/CTC1 on the FPU control registers (MIPS64 Vol. I-A 6.5 "FPU control
// registers": FIR, FCCR, FEXR, FENR, FCSR), with the writable-bit masks and
// the odd corners of QEMU's MIPS64R2-generic: unknown numbers read FCSR,
// writes of reserved bits to FCCR/FEXR/FENR are dropped whole, and CTC1
// raises FPE after the write when an enabled Cause bit, or Cause.E, is set.
#include "vmm/cpu/fpu/fpu.hpp"

namespace disco::cpu::fpu {

u32 read_control(const FpuState& s, unsigned fs) {
    const u32 f = s.fcsr;
    switch (fs) {
        case 0:
            return kFir;
        case 1:  // UFR (absent: FIR.UFRP = 0)
        case 5:  // FRE (absent: FIR.FREP = 0)
            return 0;
        case 25:
            return ((f >> 24) & 0xFE) | ((f >> 23) & 0x1);  // FCCR: FCC7..1, FCC0
        case 26:
            return f & 0x0003F07C;  // FEXR: Cause, Flags
        case 28:
            return (f & 0x00000F83) | ((f >> 22) & 0x4);  // FENR: Enables, FS, RM
        default:
            return f;
    }
}

Outcome write_control(FpuState& s, unsigned fs, u32 v) {
    u32& f = s.fcsr;
    switch (fs) {
        case 25:
            if (v & 0xFFFFFF00) return Outcome::Ok;
            f = (f & 0x017FFFFF) | ((v & 0xFE) << 24) | ((v & 0x1) << 23);
            break;
        case 26:
            if (v & 0x007C0000) return Outcome::Ok;
            f = (f & 0xFFFC0F83) | (v & 0x0003F07C);
            break;
        case 28:
            if (v & 0x007C0000) return Outcome::Ok;
            f = (f & 0xFEFFF07C) | (v & 0x00000F83) | ((v & 0x4) << 22);
            break;
        case 31:
            f = (v & fcsr::kWritableMask) | (f & ~fcsr::kWritableMask);
            break;
        default:  // 1, 4, 5, 6 (UFR/UNFR/FRE aliases) are absent; the rest reserved
            return Outcome::Ok;
    }
    const u32 cause = (f >> fcsr::kCauseShift) & 0x3F;
    const u32 enables = ((f >> fcsr::kEnablesShift) & 0x1F) | 0x20;  // E cannot be masked
    return (cause & enables) ? Outcome::FloatingPointException : Outcome::Ok;
}

}  // namespace disco::cpu::fpu
