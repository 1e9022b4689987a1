// COP1 fmt W (20) and L (21): CVT.S.W/L, CVT.D.W/L (MD00087 Table A.17),
// and CVT.PS.PW (MIPS-3D). QEMU reserves every L operation, and CVT.PS.PW,
// when FR=0.
#include "vmm/cpu/fpu/exec_common.hpp"

namespace disco::cpu::fpu::exec {

Outcome fixed_op(FpuState& s, u32 insn, bool is_long) {
    const Fields f(insn);
    constexpr auto RI = Outcome::ReservedInstruction;
    if (is_long && !s.fr) return RI;
    const i64 v = is_long ? static_cast<i64>(s.read_d(f.fs)) : static_cast<i32>(s.read_w(f.fs));
    switch (f.funct) {
        case 32: {  // CVT.S.W / CVT.S.L
            Env env = begin(s);
            return commit<F32>(s, env, f.fd, sf::from_i64<F32>(v, env));
        }
        case 33: {  // CVT.D.W / CVT.D.L
            if (odd_pair(s, f.fd)) return RI;
            Env env = begin(s);
            return commit<F64>(s, env, f.fd, sf::from_i64<F64>(v, env));
        }
        case 38: {  // CVT.PS.PW: both 32-bit halves of fs to single
            if (is_long || !s.fr) return RI;
            Env env = begin(s);
            const u64 w = s.read_d(f.fs);
            const u32 lo = sf::from_i64<F32>(static_cast<i32>(w), env);
            const u32 hi = sf::from_i64<F32>(static_cast<i32>(w >> 32), env);
            return commit<F64>(s, env, f.fd, (u64(hi) << 32) | lo);
        }
        default:
            return RI;
    }
}

}  // namespace disco::cpu::fpu::exec
