// FPR views under Status.FR (MIPS64 Vol. I-A 6.4 "FPU register models";
// Vol. III, Status.FR). With FR=0 a 64-bit value occupies an even/odd pair,
// low word in the even register, as QEMU models it (the register number's
// low bit is ignored). Every write deposits only the bits it names.
#include "vmm/cpu/fpu/fpu.hpp"

namespace disco::cpu::fpu {
namespace {
constexpr u64 kLow = 0xFFFFFFFFull;
constexpr u64 kHigh = ~kLow;
}  // namespace

u64 FpuState::read_d(unsigned r) const {
    if (fr) return fpr[r];
    return (fpr[r | 1] << 32) | (fpr[r & ~1u] & kLow);
}

void FpuState::write_d(unsigned r, u64 v) {
    if (fr) {
        fpr[r] = v;
        return;
    }
    fpr[r & ~1u] = (fpr[r & ~1u] & kHigh) | (v & kLow);
    fpr[r | 1] = (fpr[r | 1] & kHigh) | (v >> 32);
}

u32 FpuState::read_hi(unsigned r) const { return fr ? static_cast<u32>(fpr[r] >> 32) : static_cast<u32>(fpr[r | 1]); }

void FpuState::write_hi(unsigned r, u32 v) {
    if (fr) {
        fpr[r] = (fpr[r] & kLow) | (u64(v) << 32);
    } else {
        fpr[r | 1] = (fpr[r | 1] & kHigh) | v;
    }
}

}  // namespace disco::cpu::fpu
