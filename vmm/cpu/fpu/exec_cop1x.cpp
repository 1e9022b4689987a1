// COP1X (opcode 0x13) MADD/MSUB/NMADD/NMSUB.fmt fd, fr, fs, ft
// (MD00087 Table A.20). As in QEMU's MIPS64R2-generic these are NOT fused:
// fs*ft is rounded, then fr is added/subtracted and rounded again (flags of
// both steps accumulate), and the N forms negate the result, NaN included.
// The PS forms go lane by lane. Loads/stores/PREFX/ALNV.PS are the CPU's.
#include "vmm/cpu/fpu/exec_common.hpp"

namespace disco::cpu::fpu::exec {
namespace {

template <class F>
typename F::Bits madd_family(unsigned op, typename F::Bits fs, typename F::Bits ft, typename F::Bits fr, Env& env) {
    typename F::Bits r = sf::mul<F>(fs, ft, env);
    r = (op & 1) ? sf::sub<F>(r, fr, env) : sf::add<F>(r, fr, env);
    if (op & 2) r ^= sf::Traits<F>::kSign;
    return r;
}

}  // namespace

Outcome cop1x_op(FpuState& s, u32 insn) {
    const Fields f(insn);
    const unsigned fr = (insn >> 21) & 31;
    const unsigned kind = f.funct >> 3;  // 4 MADD, 5 MSUB, 6 NMADD, 7 NMSUB
    if (kind < 4) return Outcome::ReservedInstruction;
    const unsigned op = kind - 4;
    switch (f.funct & 7) {
        case 0: {  // .S
            Env env = begin(s);
            const u32 r = madd_family<F32>(op, s.read_w(f.fs), s.read_w(f.ft), s.read_w(fr), env);
            return commit<F32>(s, env, f.fd, r);
        }
        case 1: {  // .D
            if (odd_pair(s, f.fd | f.fs | f.ft | fr)) return Outcome::ReservedInstruction;
            Env env = begin(s);
            const u64 r = madd_family<F64>(op, s.read_d(f.fs), s.read_d(f.ft), s.read_d(fr), env);
            return commit<F64>(s, env, f.fd, r);
        }
        case 6: {  // .PS
            if (!s.fr) return Outcome::ReservedInstruction;
            Env env = begin(s);
            const u64 a = s.read_d(f.fs), b = s.read_d(f.ft), c = s.read_d(fr);
            const u32 lo = madd_family<F32>(op, u32(a), u32(b), u32(c), env);
            const u32 hi = madd_family<F32>(op, u32(a >> 32), u32(b >> 32), u32(c >> 32), env);
            return commit<F64>(s, env, f.fd, (u64(hi) << 32) | lo);
        }
        default:
            return Outcome::ReservedInstruction;
    }
}

}  // namespace disco::cpu::fpu::exec
