// COP1 fmt S (16) and D (17): the function-field map of MD00087 Table A.17,
// plus the MIPS-3D RECIP1/RECIP2/RSQRT1/RSQRT2/CABS forms QEMU's
// MIPS64R2-generic implements. The Reserved Instruction checks are QEMU's:
// with FR=0, odd numbers naming 64-bit registers, and every operation on an
// L operand or a MIPS-3D/PS one, are reserved.
#include "vmm/cpu/fpu/exec_common.hpp"

namespace disco::cpu::fpu::exec {

template <class F>
Outcome float_op(FpuState& s, u32 insn, u64 gpr_rt) {
    using T = sf::Traits<F>;
    using Bits = typename F::Bits;
    using R = Reg<F>;
    constexpr bool kD = std::is_same_v<F, F64>;
    constexpr Bits kOne = kD ? Bits(0x3FF0000000000000ull) : Bits(0x3F800000);
    constexpr Bits kTwo = kD ? Bits(0x4000000000000000ull) : Bits(0x40000000);
    const Fields f(insn);
    auto bad = [&](unsigned regs) { return kD && odd_pair(s, regs); };
    constexpr auto RI = Outcome::ReservedInstruction;

    switch (f.funct) {
        case 0:
        case 1:
        case 2:
        case 3: {  // ADD SUB MUL DIV
            if (bad(f.fs | f.ft | f.fd)) return RI;
            Env env = begin(s);
            const Bits a = R::get(s, f.fs), b = R::get(s, f.ft);
            Bits r;
            switch (f.funct) {
                case 0:
                    r = sf::add<F>(a, b, env);
                    break;
                case 1:
                    r = sf::sub<F>(a, b, env);
                    break;
                case 2:
                    r = sf::mul<F>(a, b, env);
                    break;
                default:
                    r = sf::div<F>(a, b, env);
                    break;
            }
            return commit<F>(s, env, f.fd, r);
        }
        case 4: {  // SQRT
            if (bad(f.fs | f.fd)) return RI;
            Env env = begin(s);
            return commit<F>(s, env, f.fd, sf::sqrt<F>(R::get(s, f.fs), env));
        }
        case 5:
        case 6:
        case 7: {  // ABS MOV NEG: sign-bit operations, FCSR untouched
            if (bad(f.fs | f.fd)) return RI;
            Bits v = R::get(s, f.fs);
            if (f.funct == 5) v &= ~T::kSign;
            if (f.funct == 7) v ^= T::kSign;
            R::set(s, f.fd, v);
            return Outcome::Ok;
        }
        case 8:
        case 9:
        case 10:
        case 11:  // ROUND TRUNC CEIL FLOOR .L
        case 12:
        case 13:
        case 14:
        case 15: {  // ... .W
            const bool to_long = f.funct < 12;
            if (to_long ? !s.fr : bad(f.fs)) return RI;
            static constexpr Round kMode[4] = {Round::NearestEven, Round::Zero, Round::Up, Round::Down};
            Env env = begin(s);
            const i64 r = sf::to_int<F>(R::get(s, f.fs), kMode[f.funct & 3], to_long ? 64 : 32, env);
            if (to_long) return commit<F64>(s, env, f.fd, static_cast<u64>(r));
            return commit<F32>(s, env, f.fd, static_cast<u32>(r));
        }
        case 17:
        case 18:
        case 19: {  // MOVF/MOVT.fmt, MOVZ.fmt, MOVN.fmt (QEMU: no odd-register check)
            bool move;
            if (f.funct == 17)
                move = condition(s, (f.ft >> 2) & 7) == ((f.ft & 1) != 0);
            else
                move = (gpr_rt == 0) == (f.funct == 18);
            if (move) R::set(s, f.fd, R::get(s, f.fs));
            return Outcome::Ok;
        }
        case 21:
        case 22:  // RECIP RSQRT (MIPS IV / R2)
        case 29:
        case 30: {  // RECIP1 RSQRT1 (MIPS-3D: FR=1 only)
            if (f.funct >= 29 ? !s.fr : bad(f.fs | f.fd)) return RI;
            Env env = begin(s);
            Bits x = R::get(s, f.fs);
            if (f.funct == 22 || f.funct == 30) x = sf::sqrt<F>(x, env);
            return commit<F>(s, env, f.fd, sf::div<F>(kOne, x, env));
        }
        case 28:
        case 31: {  // RECIP2 = -(fs*ft - 1), RSQRT2 = -(fs*ft - 1)/2 (MIPS-3D)
            if (!s.fr) return RI;
            Env env = begin(s);
            Bits r = sf::mul<F>(R::get(s, f.fs), R::get(s, f.ft), env);
            r = sf::sub<F>(r, kOne, env);
            if (f.funct == 31) r = sf::div<F>(r, kTwo, env);
            return commit<F>(s, env, f.fd, r ^ T::kSign);
        }
        case 32: {  // CVT.S.D
            if (!kD || bad(f.fs)) return RI;
            Env env = begin(s);
            return commit<F32>(s, env, f.fd, sf::f64_to_f32(static_cast<u64>(R::get(s, f.fs)), env));
        }
        case 33: {  // CVT.D.S
            if (kD || odd_pair(s, f.fd)) return RI;
            Env env = begin(s);
            return commit<F64>(s, env, f.fd, sf::f32_to_f64(static_cast<u32>(R::get(s, f.fs)), env));
        }
        case 36: {  // CVT.W.fmt
            if (bad(f.fs)) return RI;
            Env env = begin(s);
            return commit<F32>(s, env, f.fd, static_cast<u32>(sf::to_int<F>(R::get(s, f.fs), env.rm, 32, env)));
        }
        case 37: {  // CVT.L.fmt
            if (!s.fr) return RI;
            Env env = begin(s);
            return commit<F64>(s, env, f.fd, static_cast<u64>(sf::to_int<F>(R::get(s, f.fs), env.rm, 64, env)));
        }
        case 38: {  // CVT.PS.S: fd.PU = fs, fd.PL = ft; a plain move, FCSR untouched
            if (kD || !s.fr) return RI;
            s.write_d(f.fd, (u64(s.read_w(f.fs)) << 32) | s.read_w(f.ft));
            return Outcome::Ok;
        }
        default:
            break;
    }
    if (f.funct >= 48) {  // C.cond.fmt; insn bit 6 set: CABS.cond.fmt (MIPS-3D) on |fs|, |ft|
        if (bad(f.fs | f.ft)) return RI;
        Bits a = R::get(s, f.fs), b = R::get(s, f.ft);
        if (insn & (1u << 6)) {
            a &= ~T::kSign;
            b &= ~T::kSign;
        }
        Env env = begin(s);
        const bool c = sf::compare<F>(a, b, f.funct & 15, env);
        if (traps(s, env.flags)) return Outcome::FloatingPointException;
        set_condition(s, (f.fd >> 2) & 7, c);
        return Outcome::Ok;
    }
    return RI;
}

template Outcome float_op<F32>(FpuState&, u32, u64);
template Outcome float_op<F64>(FpuState&, u32, u64);

}  // namespace disco::cpu::fpu::exec
