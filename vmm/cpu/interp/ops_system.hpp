// System instructions: exceptions on purpose (SYSCALL, BREAK, traps), CP0
// access, the TLB instructions, ERET, WAIT, RDHWR and the absent COP2
// (MD00087 Vol. II; MD00091 for the privileged side).
#pragma once
#include "vmm/cpu/interp/common.hpp"

namespace disco::cpu::interp {

DISCO_HANDLER(SYSCALL) { return c.raise(d, Exc::Sys); }
DISCO_HANDLER(BREAK) { return c.raise(d, Exc::Bp); }
// The host's memory model is at least as strong as MIPS SYNC needs once the
// compiler is fenced; a full fence keeps guest SMP code correct on any host.
DISCO_HANDLER(SYNC) {
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    return d + 1;
}
DISCO_HANDLER(SYNC_T) {
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    return d + 1;
}

#define TRAP(name, cond)                                           \
    DISCO_HANDLER(name) {                                          \
        [[maybe_unused]] const u64 s = c.r[d->rs], t = c.r[d->rt]; \
        [[maybe_unused]] const u64 imm = static_cast<u64>(d->imm); \
        return (cond) ? c.raise(d, Exc::Tr) : d + 1;               \
    }
TRAP(TGE, static_cast<i64>(s) >= static_cast<i64>(t))
TRAP(TGEU, s >= t)
TRAP(TLT, static_cast<i64>(s) < static_cast<i64>(t))
TRAP(TLTU, s < t)
TRAP(TEQ, s == t)
TRAP(TNE, s != t)
TRAP(TGEI, static_cast<i64>(s) >= static_cast<i64>(imm))
TRAP(TGEIU, s >= imm)
TRAP(TLTI, static_cast<i64>(s) < static_cast<i64>(imm))
TRAP(TLTIU, s < imm)
TRAP(TEQI, s == imm)
TRAP(TNEI, s != imm)
#undef TRAP

// ---- CP0 (privileged unless Status.CU0) -----------------------------------
#define PRIVILEGED()                  \
    if (!c.cp0_usable()) [[unlikely]] \
    return c.raise_cpu_unusable(d, 0)
// rd of MFC0/MTC0 names a CP0 register; the decoder leaves it unremapped
// (operand 'k'), so field_rd of raw is the register number.
inline unsigned cp0_reg_of(const Decoded* d) { return ((d->raw >> 11) & 31) * 8 + (d->raw & 7); }
DISCO_HANDLER(MFC0) {
    PRIVILEGED();
    c.r[d->rt] = sext32(c.read_cp0(cp0_reg_of(d)));
    return d + 1;
}
DISCO_HANDLER(DMFC0) {
    PRIVILEGED();
    c.r[d->rt] = c.read_cp0(cp0_reg_of(d));
    return d + 1;
}
// Every CP0 write may change translation, interrupts or the timer, so the
// handler returns to the run loop, which re-reads what it caches.
DISCO_HANDLER(MTC0) {
    PRIVILEGED();
    c.write_cp0(cp0_reg_of(d), c.r[d->rt]);
    return c.exit_after(d);
}
DISCO_HANDLER(DMTC0) {
    PRIVILEGED();
    c.write_cp0(cp0_reg_of(d), c.r[d->rt]);
    return c.exit_after(d);
}
// No shadow register sets (SRSCtl.HSS = 0): the previous set is the current one.
DISCO_HANDLER(RDPGPR) {
    PRIVILEGED();
    c.r[d->rd] = c.r[d->rt];
    return d + 1;
}
DISCO_HANDLER(WRPGPR) {
    PRIVILEGED();
    c.r[d->rd] = c.r[d->rt];
    return d + 1;
}
DISCO_HANDLER(DI) {
    PRIVILEGED();
    c.r[d->rt] = sext32(c.cp0.status);
    c.cp0.status &= ~status::IE;
    return c.exit_after(d);
}
DISCO_HANDLER(EI) {
    PRIVILEGED();
    c.r[d->rt] = sext32(c.cp0.status);
    c.cp0.status |= status::IE;
    return c.exit_after(d);
}
DISCO_HANDLER(TLBR) {
    PRIVILEGED();
    c.tlbr();
    return c.exit_after(d);
}
DISCO_HANDLER(TLBWI) {
    PRIVILEGED();
    c.tlbwi();
    return c.exit_after(d);
}
DISCO_HANDLER(TLBWR) {
    PRIVILEGED();
    c.tlbwr();
    return c.exit_after(d);
}
DISCO_HANDLER(TLBP) {
    PRIVILEGED();
    c.tlbp();
    return d + 1;
}
DISCO_HANDLER(ERET) {
    PRIVILEGED();
    if (c.in_delay) return c.raise(d, Exc::RI);
    c.eret();
    return nullptr;
}
DISCO_HANDLER(WAIT) {
    PRIVILEGED();
    const Decoded* r = c.exit_after(d);
    c.wait_for_interrupt();
    return r;
}
// DMFC0/DMTC0 where 64-bit operations are disabled (handlers.cpp).
DISCO_HANDLER(Cop0Move64Disabled) {
    PRIVILEGED();
    return c.raise(d, Exc::RI);
}
#undef PRIVILEGED

// ---- RDHWR (MD00087 RDHWR; enabled per register by HWREna in user mode) ----
DISCO_HANDLER(RDHWR) {
    const unsigned reg = (d->raw >> 11) & 31;
    if (!c.cp0_usable() && !((c.cp0.hwrena >> reg) & 1)) return c.raise(d, Exc::RI);
    switch (reg) {
        case 0:
            c.r[d->rt] = c.cp0.cpu_num;
            break;  // CPUNum
        case 1:
            c.r[d->rt] = 32;
            break;  // SYNCI_Step: 32-byte lines
        case 2:
            c.r[d->rt] = sext32(c.read_cp0(cp0::Count));
            break;  // CC
        case 3:
            c.r[d->rt] = 2;
            break;  // CCRes: Count ticks every 2 cycles
        case 29:
            c.r[d->rt] = c.cp0.userlocal;
            break;  // ULR (Config3.ULRI)
        default:
            return c.raise(d, Exc::RI);
    }
    return d + 1;
}

// ---- Coprocessor 2 is absent (Config1.C2 = 0) ------------------------------
DISCO_HANDLER(COP2) { return c.raise_cpu_unusable(d, 2); }
DISCO_HANDLER(LWC2) { return c.raise_cpu_unusable(d, 2); }
DISCO_HANDLER(LDC2) { return c.raise_cpu_unusable(d, 2); }
DISCO_HANDLER(SWC2) { return c.raise_cpu_unusable(d, 2); }
DISCO_HANDLER(SDC2) { return c.raise_cpu_unusable(d, 2); }

DISCO_HANDLER(Invalid) { return c.raise(d, Exc::RI); }
}  // namespace disco::cpu::interp
