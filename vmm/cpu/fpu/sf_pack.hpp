// Internal: unpacking finite values and the one rounding routine every
// arithmetic result goes through (IEEE 754-2008 4.3 rounding, 7.4 overflow,
// 7.5 underflow), with the MIPS/QEMU rules: tininess after rounding, underflow
// raised only when tiny and inexact, and FCSR.FS flushing to a signed zero,
// without flags, any result whose unrounded exponent is below Emin
// (Vol. I-A 6.5.5 "FS bit"; QEMU leaves U/I clear there).
#pragma once
#include <bit>

#include "vmm/cpu/fpu/softfloat.hpp"

namespace disco::cpu::fpu::sf {

using u128 = unsigned __int128;

/// A finite nonzero value: (-1)^sign * sig * 2^(exp - 63), sig's bit 63 set.
/// Bits below the format's precision in sig are round/sticky bits.
struct Unpacked {
    bool sign;
    int exp;
    u64 sig;
};

/// Unpacks a finite nonzero value (normal or denormal).
template <class F>
inline Unpacked unpack(typename F::Bits a) {
    using T = Traits<F>;
    constexpr int kUp = 63 - F::kMantBits;
    const int e = T::exp(a);
    const u64 m = static_cast<u64>(T::mant(a));
    if (e != 0) return {T::sign(a), e - F::kBias, (m | (u64(1) << F::kMantBits)) << kUp};
    const u64 sig = m << kUp;
    const int lz = std::countl_zero(sig);
    return {T::sign(a), 1 - F::kBias - lz, sig << lz};
}

/// Shifts right keeping a sticky bit ("jamming") in bit 0.
inline u64 shift_right_jam(u64 v, int n) {
    if (n <= 0) return v;
    if (n >= 64) return v != 0;
    return (v >> n) | ((v << (64 - n)) != 0);
}

/// Rounds (-1)^sign * sig * 2^(exp-63) to format F in env.rm and packs it.
template <class F>
inline typename F::Bits round_pack(bool sign, int exp, u64 sig, Env& env) {
    using T = Traits<F>;
    using Bits = typename F::Bits;
    constexpr int kShift = 63 - F::kMantBits;
    constexpr u64 kLsb = u64(1) << kShift;
    constexpr u64 kRoundMask = kLsb - 1;
    constexpr u64 kHalf = kLsb >> 1;
    const Bits s = sign ? T::kSign : 0;
    const Round rm = env.rm;
    auto rounds_up = [&](u64 v) {
        const u64 r = v & kRoundMask;
        if (r == 0) return false;
        switch (rm) {
            case Round::NearestEven:
                return r > kHalf || (r == kHalf && (v & kLsb) != 0);
            case Round::Zero:
                return false;
            case Round::Up:
                return !sign;
            case Round::Down:
                return sign;
        }
        return false;
    };

    int be = exp + F::kBias;
    if (be > 0) [[likely]] {
        if (sig & kRoundMask) {
            env.raise(flag::kInexact);
            if (rounds_up(sig)) {
                const u64 n = sig + kLsb;
                if (n < sig) {  // carried out: 1.111..1 -> 10.000
                    sig = u64(1) << 63;
                    ++be;
                } else {
                    sig = n;
                }
            }
        }
        if (be >= F::kExpMax) [[unlikely]] {
            env.raise(flag::kOverflow | flag::kInexact);
            const bool to_max = rm == Round::Zero || (rm == Round::Up && sign) || (rm == Round::Down && !sign);
            return s | (to_max ? T::kInf - 1 : T::kInf);
        }
        return s | (Bits(be) << F::kMantBits) | (Bits(sig >> kShift) & T::kMantMask);
    }
    if (env.ftz) return s;  // QEMU: float_flag_output_denormal only, no MIPS flag
    // Tiny after rounding: would rounding at normal precision with an
    // unbounded exponent stay below 2^Emin?
    const bool tiny = be < 0 || !(rounds_up(sig) && sig + kLsb < sig);
    sig = shift_right_jam(sig, 1 - be);
    if (sig & kRoundMask) {
        env.raise(flag::kInexact);
        if (tiny) env.raise(flag::kUnderflow);
        if (rounds_up(sig)) sig += kLsb;
    }
    const Bits e = (sig >> 63) ? 1 : 0;  // rounded up into the smallest normal
    return s | (e << F::kMantBits) | (Bits(sig >> kShift) & T::kMantMask);
}

/// A NaN result: the default NaN, Invalid when an operand is signalling.
template <class F>
inline typename F::Bits nan_result(typename F::Bits a, typename F::Bits b, Env& env) {
    using T = Traits<F>;
    if (T::is_snan(a) || T::is_snan(b)) env.raise(flag::kInvalid);
    return F::kDefaultNaN;
}

/// A finite value passed through unchanged but for FCSR.FS: a denormal
/// flushes to zero (QEMU rounds every result, exact ones included).
template <class F>
inline typename F::Bits pass_through(typename F::Bits a, bool sign, const Env& env) {
    using T = Traits<F>;
    typename F::Bits v = (a & ~T::kSign) | (sign ? T::kSign : 0);
    if (env.ftz && T::exp(a) == 0) v &= T::kSign;
    return v;
}

}  // namespace disco::cpu::fpu::sf
