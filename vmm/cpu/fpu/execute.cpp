// The entry point: routes a COP1 arithmetic instruction by its fmt field
// (MD00087 Table A.13 "COP1 encoding of rs field") and COP1X by opcode.
#include "vmm/cpu/fpu/exec_common.hpp"

namespace disco::cpu::fpu {

Outcome execute(FpuState& s, u32 insn, u64 gpr_rt) {
    switch (insn >> 26) {
        case 0x11:
            switch ((insn >> 21) & 31) {
                case 16:
                    return exec::float_op<sf::F32>(s, insn, gpr_rt);
                case 17:
                    return exec::float_op<sf::F64>(s, insn, gpr_rt);
                case 20:
                    return exec::fixed_op(s, insn, false);
                case 21:
                    return exec::fixed_op(s, insn, true);
                case 22:
                    return exec::paired_op(s, insn, gpr_rt);
                default:
                    return Outcome::ReservedInstruction;
            }
        case 0x13:
            return exec::cop1x_op(s, insn);
        default:
            return Outcome::ReservedInstruction;
    }
}

}  // namespace disco::cpu::fpu
