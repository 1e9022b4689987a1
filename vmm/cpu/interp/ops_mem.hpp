// Loads and stores, the unaligned pairs and LL/SC (MD00087 Vol. II).
#pragma once
#include "vmm/cpu/interp/common.hpp"

namespace disco::cpu::interp {

#define LOAD(name, T, conv)                                  \
    DISCO_HANDLER(name) {                                    \
        T v;                                                 \
        if (!load<BO, T>(c, d, ea(c, d), v)) return nullptr; \
        c.r[d->rt] = conv(v);                                \
        return d + 1;                                        \
    }
inline u64 as_u64(u64 v) { return v; }
LOAD(LB, u8, sext8)
LOAD(LBU, u8, as_u64)
LOAD(LH, u16, sext16)
LOAD(LHU, u16, as_u64)
LOAD(LW, u32, sext32)
LOAD(LWU, u32, as_u64)
LOAD(LD, u64, as_u64)
#undef LOAD

DISCO_HANDLER(SB) { return store<BO, u8>(c, d, ea(c, d), static_cast<u8>(c.r[d->rt])); }
DISCO_HANDLER(SH) { return store<BO, u16>(c, d, ea(c, d), static_cast<u16>(c.r[d->rt])); }
DISCO_HANDLER(SW) { return store<BO, u32>(c, d, ea(c, d), static_cast<u32>(c.r[d->rt])); }
DISCO_HANDLER(SD) { return store<BO, u64>(c, d, ea(c, d), c.r[d->rt]); }

// ---- Unaligned pairs ------------------------------------------------------
// They read (and for stores, rewrite) the aligned word that holds the
// addressed byte. k is the byte's lane counted from the word's least
// significant byte, which for a big-endian guest is the mirror of its offset;
// with that one flip the formulas are the same for both byte orders.
template <ByteOrder BO, class W>
inline unsigned lane(u64 va) {
    const unsigned k = static_cast<unsigned>(va & (sizeof(W) - 1));
    return BO == ByteOrder::Little ? k : static_cast<unsigned>(sizeof(W) - 1) - k;
}
/// The "left" part: lanes 0..k of memory become the high bytes of the register.
template <class W>
inline W merge_left(W reg, W mem, unsigned k) {
    constexpr unsigned bits = sizeof(W) * 8;
    const unsigned shift = 8 * (static_cast<unsigned>(sizeof(W)) - 1 - k);
    const W keep = shift == 0 ? 0 : static_cast<W>(~W{0} >> (bits - shift));
    return static_cast<W>((reg & keep) | static_cast<W>(mem << shift));
}
/// The "right" part: lanes k..top of memory become the low bytes of the register.
template <class W>
inline W merge_right(W reg, W mem, unsigned k) {
    const unsigned shift = 8 * k;
    const W keep = shift == 0 ? 0 : static_cast<W>(~(~W{0} >> shift));
    return static_cast<W>((reg & keep) | static_cast<W>(mem >> shift));
}
/// Store "left": the register's high bytes go to lanes 0..k.
template <class W>
inline W store_left(W mem, W reg, unsigned k) {
    const unsigned shift = 8 * (static_cast<unsigned>(sizeof(W)) - 1 - k);
    const W replace = static_cast<W>(~W{0} >> shift);
    return static_cast<W>((mem & ~replace) | (reg >> shift));
}
/// Store "right": the register's low bytes go to lanes k..top.
template <class W>
inline W store_right(W mem, W reg, unsigned k) {
    const unsigned shift = 8 * k;
    const W replace = static_cast<W>(~W{0} << shift);
    return static_cast<W>((mem & ~replace) | static_cast<W>(reg << shift));
}

template <ByteOrder BO, class W, bool Left>
inline const Decoded* load_pair(Cpu& c, const Decoded* d) {
    const u64 va = ea(c, d);
    W mem;
    if (!load<BO, W>(c, d, va & ~static_cast<u64>(sizeof(W) - 1), mem)) return nullptr;
    const W reg = static_cast<W>(c.r[d->rt]);
    const unsigned k = lane<BO, W>(va);
    const W v = Left ? merge_left<W>(reg, mem, k) : merge_right<W>(reg, mem, k);
    // LWL/LWR sign-extend their 32-bit result, as QEMU's MIPS64R2-generic does.
    c.r[d->rt] = sizeof(W) == 4 ? sext32(v) : static_cast<u64>(v);
    return d + 1;
}
template <ByteOrder BO, class W, bool Left>
inline const Decoded* store_pair(Cpu& c, const Decoded* d) {
    const u64 va = ea(c, d);
    const u64 aligned = va & ~static_cast<u64>(sizeof(W) - 1);
    W mem;
    if (!load<BO, W>(c, d, aligned, mem)) return nullptr;
    const W reg = static_cast<W>(c.r[d->rt]);
    const unsigned k = lane<BO, W>(va);
    return store<BO, W>(c, d, aligned, Left ? store_left<W>(mem, reg, k) : store_right<W>(mem, reg, k));
}
DISCO_HANDLER(LWL) { return load_pair<BO, u32, true>(c, d); }
DISCO_HANDLER(LWR) { return load_pair<BO, u32, false>(c, d); }
DISCO_HANDLER(LDL) { return load_pair<BO, u64, true>(c, d); }
DISCO_HANDLER(LDR) { return load_pair<BO, u64, false>(c, d); }
DISCO_HANDLER(SWL) { return store_pair<BO, u32, true>(c, d); }
DISCO_HANDLER(SWR) { return store_pair<BO, u32, false>(c, d); }
DISCO_HANDLER(SDL) { return store_pair<BO, u64, true>(c, d); }
DISCO_HANDLER(SDR) { return store_pair<BO, u64, false>(c, d); }

// ---- LL/SC ----------------------------------------------------------------
// LL remembers the physical address and the value it read; SC succeeds when
// the link survives (no ERET in between) and a compare-and-swap against that
// value succeeds on host memory. That makes SC atomic across vCPU threads.
template <ByteOrder BO, class T>
inline const Decoded* load_linked(Cpu& c, const Decoded* d) {
    u64 paddr;
    u8* host = c.host_for_atomic(d, ea(c, d), sizeof(T), false, paddr);
    if (!host) return nullptr;
    const T raw = __atomic_load_n(reinterpret_cast<T*>(host), __ATOMIC_ACQUIRE);
    const T v = guest_to_host<BO>(raw);
    c.llbit = true;
    c.ll_paddr = paddr;
    c.ll_value = raw;
    c.cp0.lladdr = paddr;  // LLAddr_shift 0, as QEMU's MIPS64R2-generic (MD00091 leaves it open)
    c.r[d->rt] = sizeof(T) == 4 ? sext32(v) : static_cast<u64>(v);
    return d + 1;
}
template <ByteOrder BO, class T>
inline const Decoded* store_conditional(Cpu& c, const Decoded* d) {
    const unsigned rt = d->rt;
    if (!c.llbit) {
        if (rt) c.r[rt] = 0;
        return d + 1;
    }
    u64 paddr;
    u8* host = c.host_for_atomic(d, ea(c, d), sizeof(T), true, paddr);
    if (!host) return nullptr;
    bool ok = false;
    if (paddr == c.ll_paddr) {
        T expected = static_cast<T>(c.ll_value);
        ok = __atomic_compare_exchange_n(reinterpret_cast<T*>(host), &expected,
                                         guest_to_host<BO>(static_cast<T>(c.r[rt])), false, __ATOMIC_ACQ_REL,
                                         __ATOMIC_ACQUIRE);
    }
    c.llbit = false;
    if (rt) c.r[rt] = ok ? 1 : 0;
    return d + 1;
}
DISCO_HANDLER(LL) { return load_linked<BO, u32>(c, d); }
DISCO_HANDLER(LLD) { return load_linked<BO, u64>(c, d); }
DISCO_HANDLER(SC) { return store_conditional<BO, u32>(c, d); }
DISCO_HANDLER(SCD) { return store_conditional<BO, u64>(c, d); }

// Caches are not modelled (the host keeps memory coherent), and decoded code
// is dropped by page-write tracking, so SYNCI and PREF only need to be legal.
// SYNCI still ends the block: code stored just before it must be seen next.
DISCO_HANDLER(SYNCI) { return c.exit_after(d); }
DISCO_HANDLER(PREF) { return d + 1; }
DISCO_HANDLER(CACHE) {
    if (!c.cp0_usable()) return c.raise_cpu_unusable(d, 0);
    return c.exit_after(d);
}
}  // namespace disco::cpu::interp
