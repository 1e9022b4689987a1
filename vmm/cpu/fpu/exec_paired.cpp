// COP1 fmt PS (22): paired single, two binary32 lanes in one 64-bit register
// (Vol. I-A 6.3.4; MD00087 Table A.17 and the MIPS-3D ASE, MD00099). Each
// arithmetic lane is an S operation; the lanes' exceptions are merged before
// the one Cause/trap decision, as QEMU does. Reserved when FR=0.
#include "vmm/cpu/fpu/exec_common.hpp"

namespace disco::cpu::fpu::exec {
namespace {

constexpr u32 kSign = 0x80000000u;
constexpr u32 kOne = 0x3F800000u;
constexpr u32 kTwo = 0x40000000u;

u32 lo(u64 v) { return static_cast<u32>(v); }
u32 hi(u64 v) { return static_cast<u32>(v >> 32); }
u64 pair(u32 h, u32 l) { return (u64(h) << 32) | l; }

/// The FCSR bit of condition code n for the PS forms, which use FCC[cc] and
/// FCC[cc+1]. cc should be even; QEMU computes cc=7's "FCC8" as 1 << 32 in
/// 32-bit C arithmetic, which on its x86 hosts is bit 0 (RM's low bit) - kept
/// here so results stay identical.
u32 fcc_bit(unsigned n) { return n == 0 ? fcsr::kFcc0 : n == 8 ? 1u : (1u << (24 + n)); }
bool fcc(const FpuState& s, unsigned n) { return (s.fcsr & fcc_bit(n)) != 0; }
void set_fcc(FpuState& s, unsigned n, bool v) { s.fcsr = v ? (s.fcsr | fcc_bit(n)) : (s.fcsr & ~fcc_bit(n)); }

}  // namespace

Outcome paired_op(FpuState& s, u32 insn, u64 gpr_rt) {
    const Fields f(insn);
    if (!s.fr) return Outcome::ReservedInstruction;
    const u64 a = s.read_d(f.fs), b = s.read_d(f.ft);
    using sf::add;
    using sf::div;
    using sf::mul;
    using sf::sub;
    Env env = begin(s);
    switch (f.funct) {
        case 0:
            return commit<F64>(s, env, f.fd, pair(add<F32>(hi(a), hi(b), env), add<F32>(lo(a), lo(b), env)));
        case 1:
            return commit<F64>(s, env, f.fd, pair(sub<F32>(hi(a), hi(b), env), sub<F32>(lo(a), lo(b), env)));
        case 2:
            return commit<F64>(s, env, f.fd, pair(mul<F32>(hi(a), hi(b), env), mul<F32>(lo(a), lo(b), env)));
        case 5:
            s.write_d(f.fd, a & ~(u64(kSign) << 32 | kSign));
            return Outcome::Ok;  // ABS.PS
        case 6:
            s.write_d(f.fd, a);
            return Outcome::Ok;  // MOV.PS
        case 7:
            s.write_d(f.fd, a ^ (u64(kSign) << 32 | kSign));
            return Outcome::Ok;  // NEG.PS
        case 17: {               // MOVF.PS / MOVT.PS: lower lane on FCC[cc], upper on FCC[cc+1]
            const unsigned cc = (f.ft >> 2) & 7;
            const bool tf = f.ft & 1;
            u64 d = s.read_d(f.fd);
            if (fcc(s, cc) == tf) d = pair(hi(d), lo(a));
            if (fcc(s, cc + 1) == tf) d = pair(hi(a), lo(d));
            s.write_d(f.fd, d);
            return Outcome::Ok;
        }
        case 18:
        case 19:  // MOVZ.PS / MOVN.PS
            if ((gpr_rt == 0) == (f.funct == 18)) s.write_d(f.fd, a);
            return Outcome::Ok;
        case 24:  // ADDR.PS (MIPS-3D): fd.PL = ft.PL + ft.PU, fd.PU = fs.PL + fs.PU
            return commit<F64>(s, env, f.fd, pair(add<F32>(lo(a), hi(a), env), add<F32>(lo(b), hi(b), env)));
        case 26:  // MULR.PS (MIPS-3D)
            return commit<F64>(s, env, f.fd, pair(mul<F32>(lo(a), hi(a), env), mul<F32>(lo(b), hi(b), env)));
        case 28:
        case 31: {  // RECIP2.PS, RSQRT2.PS (MIPS-3D)
            u32 l = mul<F32>(lo(a), lo(b), env), h = mul<F32>(hi(a), hi(b), env);
            l = sub<F32>(l, kOne, env);
            h = sub<F32>(h, kOne, env);
            if (f.funct == 31) {
                l = div<F32>(l, kTwo, env);
                h = div<F32>(h, kTwo, env);
            }
            return commit<F64>(s, env, f.fd, pair(h ^ kSign, l ^ kSign));
        }
        case 29:
        case 30: {  // RECIP1.PS, RSQRT1.PS (MIPS-3D)
            u32 l = lo(a), h = hi(a);
            if (f.funct == 30) {
                l = sf::sqrt<F32>(l, env);
                h = sf::sqrt<F32>(h, env);
            }
            l = div<F32>(kOne, l, env);
            h = div<F32>(kOne, h, env);
            return commit<F64>(s, env, f.fd, pair(h, l));
        }
        case 32:
            return commit<F32>(s, env, f.fd, hi(a));  // CVT.S.PU: a move that clears Cause
        case 40:
            return commit<F32>(s, env, f.fd, lo(a));  // CVT.S.PL
        case 36: {                                    // CVT.PW.PS (MIPS-3D)
            const u32 l = static_cast<u32>(sf::to_int<F32>(lo(a), env.rm, 32, env));
            const u32 h = static_cast<u32>(sf::to_int<F32>(hi(a), env.rm, 32, env));
            return commit<F64>(s, env, f.fd, pair(h, l));
        }
        case 44:
            s.write_d(f.fd, pair(lo(a), lo(b)));
            return Outcome::Ok;  // PLL.PS
        case 45:
            s.write_d(f.fd, pair(lo(a), hi(b)));
            return Outcome::Ok;  // PLU.PS
        case 46:
            s.write_d(f.fd, pair(hi(a), lo(b)));
            return Outcome::Ok;  // PUL.PS
        case 47:
            s.write_d(f.fd, pair(hi(a), hi(b)));
            return Outcome::Ok;  // PUU.PS
        default:
            break;
    }
    if (f.funct >= 48) {  // C.cond.PS / CABS.cond.PS: FCC[cc] from the lower lanes, FCC[cc+1] upper
        u64 x = a, y = b;
        if (insn & (1u << 6)) {
            x &= ~(u64(kSign) << 32 | kSign);
            y &= ~(u64(kSign) << 32 | kSign);
        }
        const unsigned cond = f.funct & 15, cc = (f.fd >> 2) & 7;
        const bool cl = sf::compare<F32>(lo(x), lo(y), cond, env);
        const bool ch = sf::compare<F32>(hi(x), hi(y), cond, env);
        if (traps(s, env.flags)) return Outcome::FloatingPointException;
        set_fcc(s, cc, cl);
        set_fcc(s, cc + 1, ch);
        return Outcome::Ok;
    }
    return Outcome::ReservedInstruction;
}

}  // namespace disco::cpu::fpu::exec
