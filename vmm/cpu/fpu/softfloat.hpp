// Internal: the IEEE 754 binary32/binary64 arithmetic the FPU is built on,
// done in software so that results, flags and the MIPS quirks are exact and
// independent of the host FPU: legacy NaN encoding (Vol. I-A 6.5.3: a NaN is
// signalling when the fraction MSB is set), default NaN for every NaN result
// (QEMU runs legacy MIPS in softfloat's default-NaN mode), tininess detected
// after rounding, FCSR.FS flushing a result whose unrounded exponent is below
// the normal range to zero without any flag (QEMU's flush_to_zero).
#pragma once
#include "vmm/cpu/fpu/fpu.hpp"
#include "vmm/util/types.hpp"

namespace disco::cpu::fpu::sf {

/// Rounding modes, in the FCSR.RM encoding (Vol. I-A Table 6.10).
enum class Round : u8 { NearestEven = 0, Zero = 1, Up = 2, Down = 3 };

/// What one operation sees and produces: the rounding mode, FCSR.FS and the
/// exception bits raised (fpu::flag::*).
struct Env {
    Round rm = Round::NearestEven;
    bool ftz = false;
    u8 flags = 0;
    void raise(u8 f) { flags |= f; }
};

/// The two binary formats.
struct F32 {
    using Bits = u32;
    static constexpr int kMantBits = 23;
    static constexpr int kBias = 127;
    static constexpr int kExpMax = 255;
    static constexpr Bits kDefaultNaN = 0x7FBFFFFF;
};
struct F64 {
    using Bits = u64;
    static constexpr int kMantBits = 52;
    static constexpr int kBias = 1023;
    static constexpr int kExpMax = 2047;
    static constexpr Bits kDefaultNaN = 0x7FF7FFFFFFFFFFFFull;
};

template <class F>
struct Traits {
    using Bits = typename F::Bits;
    static constexpr int kTotalBits = sizeof(Bits) * 8;
    static constexpr Bits kSign = Bits(1) << (kTotalBits - 1);
    static constexpr Bits kMantMask = (Bits(1) << F::kMantBits) - 1;
    static constexpr Bits kQuietBit = Bits(1) << (F::kMantBits - 1);  // set = signalling (legacy)
    static constexpr Bits kInf = Bits(F::kExpMax) << F::kMantBits;

    static constexpr bool sign(Bits a) { return (a & kSign) != 0; }
    static constexpr int exp(Bits a) { return static_cast<int>((a >> F::kMantBits) & F::kExpMax); }
    static constexpr Bits mant(Bits a) { return a & kMantMask; }
    static constexpr bool is_nan(Bits a) { return exp(a) == F::kExpMax && mant(a) != 0; }
    static constexpr bool is_snan(Bits a) { return is_nan(a) && (a & kQuietBit) != 0; }
    static constexpr bool is_inf(Bits a) { return (a & ~kSign) == kInf; }
    static constexpr bool is_zero(Bits a) { return (a & ~kSign) == 0; }
};

// Arithmetic (sf_arith.cpp). Each is the IEEE operation correctly rounded in
// env.rm; NaN operands give the default NaN (Invalid if any is signalling).
template <class F>
typename F::Bits add(typename F::Bits a, typename F::Bits b, Env& env);
template <class F>
typename F::Bits sub(typename F::Bits a, typename F::Bits b, Env& env);
template <class F>
typename F::Bits mul(typename F::Bits a, typename F::Bits b, Env& env);
template <class F>
typename F::Bits div(typename F::Bits a, typename F::Bits b, Env& env);
template <class F>
typename F::Bits sqrt(typename F::Bits a, Env& env);

// Conversions (sf_convert.cpp).
u64 f32_to_f64(u32 a, Env& env);
u32 f64_to_f32(u64 a, Env& env);
template <class F>
typename F::Bits from_i64(i64 v, Env& env);
/// Float to a signed integer of `bits` (32 or 64) width, rounding in `rm`
/// (not env.rm). NaN, infinity and out-of-range give Invalid alone and the
/// value MIPS legacy mode defines, 2^(bits-1)-1 (QEMU FP_TO_INT*_OVERFLOW).
template <class F>
i64 to_int(typename F::Bits a, Round rm, int bits, Env& env);

// Comparison (sf_compare.cpp): `cond` is the 4-bit C.cond.fmt condition
// (Vol. II-A C.cond.fmt, Table 3.4): bit 3 signalling, 2 less, 1 equal,
// 0 unordered.
template <class F>
bool compare(typename F::Bits a, typename F::Bits b, unsigned cond, Env& env);

}  // namespace disco::cpu::fpu::sf
