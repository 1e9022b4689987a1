// The five IEEE basic operations on binary32/binary64, correctly rounded in
// software (MIPS64 Vol. II-A ADD.fmt, SUB.fmt, MUL.fmt, DIV.fmt, SQRT.fmt;
// IEEE 754-2008 5.4.1, 6.1-6.3 for the special cases).
#include <cmath>

#include "vmm/cpu/fpu/sf_pack.hpp"

namespace disco::cpu::fpu::sf {
namespace {

template <class F>
typename F::Bits add_sub(typename F::Bits a, typename F::Bits b, bool negate_b, Env& env) {
    using T = Traits<F>;
    using Bits = typename F::Bits;
    if (T::is_nan(a) || T::is_nan(b)) [[unlikely]]
        return nan_result<F>(a, b, env);
    const bool sa = T::sign(a);
    const bool sb = T::sign(b) != negate_b;
    if (T::is_inf(a)) {
        if (T::is_inf(b) && sa != sb) {
            env.raise(flag::kInvalid);
            return F::kDefaultNaN;
        }
        return a;
    }
    if (T::is_inf(b)) return T::kInf | (sb ? T::kSign : 0);
    if (T::is_zero(a) && T::is_zero(b)) {
        // x + x keeps the sign; +0 + -0 is +0 except rounding down (IEEE 6.3).
        const bool neg = sa == sb ? sa : env.rm == Round::Down;
        return neg ? T::kSign : Bits(0);
    }
    if (T::is_zero(a)) return pass_through<F>(b, sb, env);
    if (T::is_zero(b)) return pass_through<F>(a, sa, env);

    Unpacked x = unpack<F>(a);
    Unpacked y = unpack<F>(b);
    x.sign = sa;
    y.sign = sb;
    if (x.exp < y.exp || (x.exp == y.exp && x.sig < y.sig)) std::swap(x, y);  // |x| >= |y|
    // x.sig at bits 125..62 of a 128-bit accumulator: 62 guard bits + 2 headroom.
    const u128 X = u128(x.sig) << 62;
    u128 Y = u128(y.sig) << 62;
    const int d = x.exp - y.exp;
    if (d >= 126) {
        Y = Y != 0;
    } else if (d > 0) {
        Y = (Y >> d) | ((Y << (128 - d)) != 0);
    }
    u128 Z;
    if (x.sign == y.sign) {
        Z = X + Y;
    } else {
        Z = X - Y;
        if (Z == 0) return env.rm == Round::Down ? T::kSign : Bits(0);
    }
    // Z * 2^(x.exp - 125); normalise its leading bit to bit 63 of a u64.
    const u64 hi = static_cast<u64>(Z >> 64);
    const int p = hi ? 127 - std::countl_zero(hi) : 63 - std::countl_zero(static_cast<u64>(Z));
    u64 sig;
    if (p >= 63) {
        const int sh = p - 63;
        sig = static_cast<u64>(Z >> sh) | (sh && (Z << (128 - sh)) != 0);
    } else {
        sig = static_cast<u64>(Z) << (63 - p);
    }
    return round_pack<F>(x.sign, x.exp - 125 + p, sig, env);
}

/// floor(sqrt(x)) for 2^126 <= x < 2^128, and whether it is exact.
u64 isqrt128(u128 x, bool& exact) {
    const double approx = std::sqrt(static_cast<double>(x));
    u64 r = approx >= 18446744073709549568.0 ? ~u64(0) : static_cast<u64>(approx);
    if (r < (u64(1) << 63)) r = u64(1) << 63;
    // One Newton step brings the 53-bit estimate to within a unit...
    const u128 nr = (u128(r) + x / r) >> 1;
    r = nr > ~u64(0) ? ~u64(0) : static_cast<u64>(nr);
    // ...and these settle the last one.
    while (u128(r) * r > x) --r;
    while (r != ~u64(0) && u128(r + 1) * (r + 1) <= x) ++r;
    exact = u128(r) * r == x;
    return r;
}

}  // namespace

template <class F>
typename F::Bits add(typename F::Bits a, typename F::Bits b, Env& env) {
    return add_sub<F>(a, b, false, env);
}

template <class F>
typename F::Bits sub(typename F::Bits a, typename F::Bits b, Env& env) {
    return add_sub<F>(a, b, true, env);
}

template <class F>
typename F::Bits mul(typename F::Bits a, typename F::Bits b, Env& env) {
    using T = Traits<F>;
    if (T::is_nan(a) || T::is_nan(b)) [[unlikely]]
        return nan_result<F>(a, b, env);
    const bool sign = T::sign(a) != T::sign(b);
    const typename F::Bits s = sign ? T::kSign : 0;
    if (T::is_inf(a) || T::is_inf(b)) {
        if (T::is_zero(a) || T::is_zero(b)) {
            env.raise(flag::kInvalid);
            return F::kDefaultNaN;
        }
        return s | T::kInf;
    }
    if (T::is_zero(a) || T::is_zero(b)) return s;
    const Unpacked x = unpack<F>(a), y = unpack<F>(b);
    const u128 P = u128(x.sig) * y.sig;  // in [2^126, 2^128)
    const u64 hi = static_cast<u64>(P >> 64), lo = static_cast<u64>(P);
    if (hi >> 63) return round_pack<F>(sign, x.exp + y.exp + 1, hi | (lo != 0), env);
    return round_pack<F>(sign, x.exp + y.exp, (hi << 1) | (lo >> 63) | ((lo << 1) != 0), env);
}

template <class F>
typename F::Bits div(typename F::Bits a, typename F::Bits b, Env& env) {
    using T = Traits<F>;
    if (T::is_nan(a) || T::is_nan(b)) [[unlikely]]
        return nan_result<F>(a, b, env);
    const bool sign = T::sign(a) != T::sign(b);
    const typename F::Bits s = sign ? T::kSign : 0;
    if (T::is_inf(a)) {
        if (T::is_inf(b)) {
            env.raise(flag::kInvalid);
            return F::kDefaultNaN;
        }
        return s | T::kInf;
    }
    if (T::is_inf(b)) return s;
    if (T::is_zero(b)) {
        if (T::is_zero(a)) {
            env.raise(flag::kInvalid);
            return F::kDefaultNaN;
        }
        env.raise(flag::kDivZero);
        return s | T::kInf;
    }
    if (T::is_zero(a)) return s;
    const Unpacked x = unpack<F>(a), y = unpack<F>(b);
    const u128 n = u128(x.sig) << 64;
    const u128 q = n / y.sig;  // in (2^63, 2^65)
    const bool rem = (n - q * y.sig) != 0;
    if (q >> 64) return round_pack<F>(sign, x.exp - y.exp, static_cast<u64>(q >> 1) | (q & 1) | rem, env);
    return round_pack<F>(sign, x.exp - y.exp - 1, static_cast<u64>(q) | rem, env);
}

template <class F>
typename F::Bits sqrt(typename F::Bits a, Env& env) {
    using T = Traits<F>;
    if (T::is_nan(a)) [[unlikely]]
        return nan_result<F>(a, a, env);
    if (T::is_zero(a)) return a;  // sqrt(-0) = -0
    if (T::sign(a)) {
        env.raise(flag::kInvalid);
        return F::kDefaultNaN;
    }
    if (T::is_inf(a)) return a;
    const Unpacked x = unpack<F>(a);
    // value = sig * 2^(e-63); make the exponent of the radicand even.
    const u128 rad = u128(x.sig) << ((x.exp & 1) ? 64 : 63);
    bool exact;
    const u64 r = isqrt128(rad, exact);
    return round_pack<F>(false, x.exp >> 1, r | !exact, env);
}

template u32 add<F32>(u32, u32, Env&);
template u64 add<F64>(u64, u64, Env&);
template u32 sub<F32>(u32, u32, Env&);
template u64 sub<F64>(u64, u64, Env&);
template u32 mul<F32>(u32, u32, Env&);
template u64 mul<F64>(u64, u64, Env&);
template u32 div<F32>(u32, u32, Env&);
template u64 div<F64>(u64, u64, Env&);
template u32 sqrt<F32>(u32, Env&);
template u64 sqrt<F64>(u64, Env&);

}  // namespace disco::cpu::fpu::sf
