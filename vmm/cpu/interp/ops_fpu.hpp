// The FPU's side of the CPU: Coprocessor Unusable checks, moves between GPRs
// and FPRs, FPU loads/stores and BC1 branches. The arithmetic itself lives in
// vmm/cpu/fpu/ (MD00087 ch. 3 and the COP1/COP1X instruction pages).
#pragma once
#include "vmm/cpu/fpu/fpu.hpp"
#include "vmm/cpu/interp/common.hpp"

namespace disco::cpu::interp {

#define NEED_FPU()                                  \
    if (!(c.cp0.status & status::CU1)) [[unlikely]] \
    return c.raise_cpu_unusable(d, 1)

inline unsigned fs_of(const Decoded* d) { return (d->raw >> 11) & 31; }
inline unsigned ft_of(const Decoded* d) { return (d->raw >> 16) & 31; }
inline unsigned fd_of(const Decoded* d) { return (d->raw >> 6) & 31; }
inline unsigned cc_of(const Decoded* d) { return (d->raw >> 18) & 7; }

DISCO_HANDLER(MFC1) {
    NEED_FPU();
    c.r[d->rt] = sext32(c.fpu.read_w(fs_of(d)));
    return d + 1;
}
DISCO_HANDLER(DMFC1) {
    NEED_FPU();
    c.r[d->rt] = c.fpu.read_d(fs_of(d));
    return d + 1;
}
DISCO_HANDLER(MFHC1) {
    NEED_FPU();
    c.r[d->rt] = sext32(c.fpu.read_hi(fs_of(d)));
    return d + 1;
}
DISCO_HANDLER(CFC1) {
    NEED_FPU();
    c.r[d->rt] = sext32(fpu::read_control(c.fpu, fs_of(d)));
    return d + 1;
}
DISCO_HANDLER(MTC1) {
    NEED_FPU();
    c.fpu.write_w(fs_of(d), static_cast<u32>(c.r[d->rt]));
    return d + 1;
}
DISCO_HANDLER(DMTC1) {
    NEED_FPU();
    c.fpu.write_d(fs_of(d), c.r[d->rt]);
    return d + 1;
}
DISCO_HANDLER(MTHC1) {
    NEED_FPU();
    c.fpu.write_hi(fs_of(d), static_cast<u32>(c.r[d->rt]));
    return d + 1;
}
// DMFC1/DMTC1 where 64-bit operations are disabled (handlers.cpp).
DISCO_HANDLER(Cop1Move64Disabled) {
    NEED_FPU();
    return c.raise(d, Exc::RI);
}

inline const Decoded* fpu_outcome(Cpu& c, const Decoded* d, fpu::Outcome o) {
    switch (o) {
        case fpu::Outcome::Ok:
            return d + 1;
        case fpu::Outcome::FloatingPointException:
            return c.raise(d, Exc::FPE);
        case fpu::Outcome::ReservedInstruction:
            break;
    }
    return c.raise(d, Exc::RI);
}
DISCO_HANDLER(CTC1) {
    NEED_FPU();
    return fpu_outcome(c, d, fpu::write_control(c.fpu, fs_of(d), static_cast<u32>(c.r[d->rt])));
}

#define FPU_ARITH(name)                                                                  \
    DISCO_HANDLER(name) {                                                                \
        NEED_FPU();                                                                      \
        return fpu_outcome(c, d, fpu::execute(c.fpu, d->raw, c.r[(d->raw >> 16) & 31])); \
    }
FPU_ARITH(FPU_S)
FPU_ARITH(FPU_D)
FPU_ARITH(FPU_W)
FPU_ARITH(FPU_L)
FPU_ARITH(FPU_PS)
FPU_ARITH(FPU_MADD)
FPU_ARITH(FPU_MSUB)
FPU_ARITH(FPU_NMADD)
FPU_ARITH(FPU_NMSUB)
#undef FPU_ARITH

#define BC1(name, want, likely)                                                                      \
    DISCO_HANDLER(name) {                                                                            \
        NEED_FPU();                                                                                  \
        return branch<likely>(c, d, fpu::condition(c.fpu, cc_of(d)) == (want), branch_target(c, d)); \
    }
BC1(BC1F, false, false)
BC1(BC1T, true, false)
BC1(BC1FL, false, true)
BC1(BC1TL, true, true)
#undef BC1

// Loads and stores: base+offset (LWC1...) and base+index (COP1X) forms.
inline u64 indexed_ea(const Cpu& c, const Decoded* d) { return c.r[d->rs] + c.r[(d->raw >> 16) & 31]; }
template <ByteOrder BO, class T>
inline const Decoded* fpu_load(Cpu& c, const Decoded* d, u64 va, unsigned fr) {
    T v;
    if (!load<BO, T>(c, d, va, v)) return nullptr;
    if constexpr (sizeof(T) == 4)
        c.fpu.write_w(fr, v);
    else
        c.fpu.write_d(fr, v);
    return d + 1;
}
template <ByteOrder BO, class T>
inline const Decoded* fpu_store(Cpu& c, const Decoded* d, u64 va, unsigned fr) {
    if constexpr (sizeof(T) == 4)
        return store<BO, u32>(c, d, va, c.fpu.read_w(fr));
    else
        return store<BO, u64>(c, d, va, c.fpu.read_d(fr));
}
DISCO_HANDLER(LWC1) {
    NEED_FPU();
    return fpu_load<BO, u32>(c, d, ea(c, d), ft_of(d));
}
DISCO_HANDLER(LDC1) {
    NEED_FPU();
    return fpu_load<BO, u64>(c, d, ea(c, d), ft_of(d));
}
DISCO_HANDLER(SWC1) {
    NEED_FPU();
    return fpu_store<BO, u32>(c, d, ea(c, d), ft_of(d));
}
DISCO_HANDLER(SDC1) {
    NEED_FPU();
    return fpu_store<BO, u64>(c, d, ea(c, d), ft_of(d));
}
DISCO_HANDLER(LWXC1) {
    NEED_FPU();
    return fpu_load<BO, u32>(c, d, indexed_ea(c, d), fd_of(d));
}
DISCO_HANDLER(LDXC1) {
    NEED_FPU();
    return fpu_load<BO, u64>(c, d, indexed_ea(c, d), fd_of(d));
}
// The unaligned forms ignore the low three address bits (MD00087 LUXC1).
DISCO_HANDLER(LUXC1) {
    NEED_FPU();
    return fpu_load<BO, u64>(c, d, indexed_ea(c, d) & ~7ull, fd_of(d));
}
DISCO_HANDLER(SWXC1) {
    NEED_FPU();
    return fpu_store<BO, u32>(c, d, indexed_ea(c, d), fs_of(d));
}
DISCO_HANDLER(SDXC1) {
    NEED_FPU();
    return fpu_store<BO, u64>(c, d, indexed_ea(c, d), fs_of(d));
}
DISCO_HANDLER(SUXC1) {
    NEED_FPU();
    return fpu_store<BO, u64>(c, d, indexed_ea(c, d) & ~7ull, fs_of(d));
}
DISCO_HANDLER(PREFX) {
    NEED_FPU();
    return d + 1;
}

// MOVF/MOVT on GPRs test an FPU condition code, so they need CP1 too.
DISCO_HANDLER(MOVF) {
    NEED_FPU();
    if (!fpu::condition(c.fpu, cc_of(d))) c.r[d->rd] = c.r[d->rs];
    return d + 1;
}
DISCO_HANDLER(MOVT) {
    NEED_FPU();
    if (fpu::condition(c.fpu, cc_of(d))) c.r[d->rd] = c.r[d->rs];
    return d + 1;
}
#undef NEED_FPU
}  // namespace disco::cpu::interp
