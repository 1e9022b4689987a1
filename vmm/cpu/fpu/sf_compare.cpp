// C.cond.fmt comparisons (MIPS64 Vol. II-A C.cond.fmt, Table 3.4 "FPU
// Comparisons"): unordered/equal/less predicates, Invalid for a signalling
// NaN, and for any NaN in the signalling conditions (cond bit 3).
#include <type_traits>

#include "vmm/cpu/fpu/sf_pack.hpp"

namespace disco::cpu::fpu::sf {

template <class F>
bool compare(typename F::Bits a, typename F::Bits b, unsigned cond, Env& env) {
    using T = Traits<F>;
    using Bits = typename F::Bits;
    using SBits = std::make_signed_t<Bits>;
    if (T::is_nan(a) || T::is_nan(b)) [[unlikely]] {
        if ((cond & 8) || T::is_snan(a) || T::is_snan(b)) env.raise(flag::kInvalid);
        return cond & 1;
    }
    // Sign-magnitude to a totally ordered integer (+0 and -0 both map to 0).
    auto key = [](Bits x) {
        const SBits m = static_cast<SBits>(x & ~T::kSign);
        return T::sign(x) ? -m : m;
    };
    const SBits ka = key(a), kb = key(b);
    return ((cond & 4) && ka < kb) || ((cond & 2) && ka == kb);
}

template bool compare<F32>(u32, u32, unsigned, Env&);
template bool compare<F64>(u64, u64, unsigned, Env&);

}  // namespace disco::cpu::fpu::sf
