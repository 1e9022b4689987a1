// Format conversions (MIPS64 Vol. II-A CVT.S.fmt, CVT.D.fmt, CVT.W.fmt,
// CVT.L.fmt, ROUND/TRUNC/CEIL/FLOOR.W/L.fmt).
#include "vmm/cpu/fpu/sf_pack.hpp"

namespace disco::cpu::fpu::sf {

u64 f32_to_f64(u32 a, Env& env) {
    using T = Traits<F32>;
    if (T::is_nan(a)) [[unlikely]]
        return nan_result<F32>(a, a, env), F64::kDefaultNaN;
    const u64 s = u64(T::sign(a)) << 63;
    if (T::is_inf(a)) return s | Traits<F64>::kInf;
    if (T::is_zero(a)) return s;
    const Unpacked x = unpack<F32>(a);
    return round_pack<F64>(x.sign, x.exp, x.sig, env);  // exact
}

u32 f64_to_f32(u64 a, Env& env) {
    using T = Traits<F64>;
    if (T::is_nan(a)) [[unlikely]]
        return nan_result<F64>(a, a, env), F32::kDefaultNaN;
    const u32 s = u32(T::sign(a)) << 31;
    if (T::is_inf(a)) return s | Traits<F32>::kInf;
    if (T::is_zero(a)) return s;
    const Unpacked x = unpack<F64>(a);
    return round_pack<F32>(x.sign, x.exp, x.sig, env);
}

template <class F>
typename F::Bits from_i64(i64 v, Env& env) {
    if (v == 0) return 0;
    const bool sign = v < 0;
    const u64 mag = sign ? u64(0) - static_cast<u64>(v) : static_cast<u64>(v);
    const int lz = std::countl_zero(mag);
    return round_pack<F>(sign, 63 - lz, mag << lz, env);
}

template <class F>
i64 to_int(typename F::Bits a, Round rm, int bits, Env& env) {
    using T = Traits<F>;
    const i64 max = static_cast<i64>((u64(1) << (bits - 1)) - 1);  // also MIPS's answer for every invalid case
    if (T::exp(a) == F::kExpMax) [[unlikely]] {                    // NaN or infinity
        env.raise(flag::kInvalid);
        return max;
    }
    if (T::is_zero(a)) return 0;
    const Unpacked x = unpack<F>(a);
    u64 mag;
    bool inexact = false;
    if (x.exp < 0) {  // |a| < 1
        inexact = true;
        bool one = false;
        switch (rm) {
            case Round::NearestEven:
                one = x.exp == -1 && (x.sig << 1) != 0;
                break;  // > 0.5
            case Round::Zero:
                break;
            case Round::Up:
                one = !x.sign;
                break;
            case Round::Down:
                one = x.sign;
                break;
        }
        mag = one;
    } else if (x.exp >= 63) {
        mag = x.exp == 63 ? x.sig : ~u64(0);
    } else {
        mag = x.sig >> (63 - x.exp);
        const u64 frac = x.sig << (x.exp + 1);  // the fraction, binary point at bit 64
        if (frac) {
            inexact = true;
            bool up = false;
            switch (rm) {
                case Round::NearestEven:
                    up = frac > (u64(1) << 63) || (frac == (u64(1) << 63) && (mag & 1));
                    break;
                case Round::Zero:
                    break;
                case Round::Up:
                    up = !x.sign;
                    break;
                case Round::Down:
                    up = x.sign;
                    break;
            }
            mag += up;
        }
    }
    // Out of range: Invalid alone (softfloat drops Inexact there).
    const u64 limit = x.sign ? u64(max) + 1 : u64(max);
    if (mag > limit) {
        env.raise(flag::kInvalid);
        return max;
    }
    if (inexact) env.raise(flag::kInexact);
    return x.sign ? static_cast<i64>(u64(0) - mag) : static_cast<i64>(mag);
}

template u32 from_i64<F32>(i64, Env&);
template u64 from_i64<F64>(i64, Env&);
template i64 to_int<F32>(u32, Round, int, Env&);
template i64 to_int<F64>(u64, Round, int, Env&);

}  // namespace disco::cpu::fpu::sf
