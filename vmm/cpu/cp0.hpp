// Coprocessor 0 state (MIPS64 PRA, MD00091 chapter 9) and the identity values
// the guest probes. Values follow ../shared/reference/guest-board.md and
// QEMU's MIPS64R2-generic where the architecture leaves a choice.
#pragma once
#include "vmm/util/types.hpp"

namespace disco::cpu {

/// Names a CP0 register by (number, select), as MFC0 encodes it.
constexpr unsigned cp0_reg(unsigned reg, unsigned sel) { return reg * 8 + sel; }

namespace cp0 {
constexpr unsigned Index = cp0_reg(0, 0), Random = cp0_reg(1, 0), EntryLo0 = cp0_reg(2, 0), EntryLo1 = cp0_reg(3, 0),
                   Context = cp0_reg(4, 0), UserLocal = cp0_reg(4, 2), PageMask = cp0_reg(5, 0),
                   PageGrain = cp0_reg(5, 1), Wired = cp0_reg(6, 0), HWREna = cp0_reg(7, 0), BadVAddr = cp0_reg(8, 0),
                   Count = cp0_reg(9, 0), EntryHi = cp0_reg(10, 0), Compare = cp0_reg(11, 0), Status = cp0_reg(12, 0),
                   IntCtl = cp0_reg(12, 1), SRSCtl = cp0_reg(12, 2), Cause = cp0_reg(13, 0), EPC = cp0_reg(14, 0),
                   PRId = cp0_reg(15, 0), EBase = cp0_reg(15, 1), CMGCRBase = cp0_reg(15, 3), Config0 = cp0_reg(16, 0),
                   Config1 = cp0_reg(16, 1), Config2 = cp0_reg(16, 2), Config3 = cp0_reg(16, 3),
                   Config4 = cp0_reg(16, 4), Config5 = cp0_reg(16, 5), Config7 = cp0_reg(16, 7),
                   LLAddr = cp0_reg(17, 0), XContext = cp0_reg(20, 0), ErrorEPC = cp0_reg(30, 0),
                   KScratch2 = cp0_reg(31, 2), KScratch7 = cp0_reg(31, 7);
}  // namespace cp0

/// Status register bits (MD00091 §9.29).
namespace status {
constexpr u64 IE = 1u << 0, EXL = 1u << 1, ERL = 1u << 2, KSU_SHIFT = 3, KSU = 3u << 3, UX = 1u << 5, SX = 1u << 6,
              KX = 1u << 7, IM = 0xFFu << 8, NMI = 1u << 19, SR = 1u << 20, BEV = 1u << 22, FR = 1u << 26,
              RP = 1u << 27, CU0 = 1u << 28, CU1 = 1u << 29, CU2 = 1u << 30, XX = 1u << 31;
/// The bits a guest may change; all others read as their fixed value.
constexpr u64 kWritable = IE | EXL | ERL | KSU | UX | SX | KX | IM | SR | BEV | FR | CU0 | CU1 | XX;
}  // namespace status

/// Cause register bits (MD00091 §9.31).
namespace cause {
constexpr u64 EXC_SHIFT = 2, EXC_MASK = 0x1Fu << 2, IP_SHIFT = 8, IP_SW = 3u << 8, IP = 0xFFu << 8, IV = 1u << 23,
              CE_SHIFT = 28, CE = 3u << 28, TI = 1u << 30, BD = 1u << 31;
}

/// Fixed geometry of the MMU (MD00091 §4.3: SEGBITS/PABITS are implementation choices).
constexpr unsigned kSegBits = 42;  // QEMU MIPS64R2-generic; >= 40 as Linux's TASK_SIZE64 needs
constexpr unsigned kPaBits = 36;
constexpr unsigned kTlbEntries = 64;

/// Identity values (guest-board.md §1.1–1.4).
namespace ident {
constexpr u32 PRId = 0x00010000;         // MIPS, "generic" implementation
constexpr u32 Config0Base = 0x80004483;  // M, AT=2 (MIPS64), AR=1 (R2), MT=1 (TLB), K0=3
constexpr u32 Config0BE = 1u << 15;
constexpr u32 Config1 = 0xFE633181;  // M, 64 TLB entries, 16 KiB 4-way 32 B I/D, FP
constexpr u32 Config2 = 0x80000000;
constexpr u32 Config3 = 0xA0003000;  // M, CMGCR, ULRI, RXI (RI/XI page protection)
constexpr u32 Config4 = 0x800C0000;  // M, KScratch 2 and 3
constexpr u32 Config5 = 0;
constexpr u32 Config7 = 0x80010400;  // WII, AR, IAR
constexpr u32 IntCtl = 0xFC000000;   // IPTI = IPPCI = 7
}  // namespace ident

struct Cp0State {
    u64 index = 0, random = kTlbEntries - 1, entrylo0 = 0, entrylo1 = 0, context = 0, userlocal = 0;
    u64 pagemask = 0, pagegrain = 0, wired = 0, hwrena = 0, badvaddr = 0, entryhi = 0, compare = 0;
    u64 status = status::BEV | status::ERL, cause = 0, epc = 0, ebase = 0xFFFFFFFF80000000ull;
    u64 config0 = ident::Config0Base, lladdr = 0, xcontext = 0, errorepc = 0;
    u64 kscratch[8] = {};
    u32 cpu_num = 0;
    u64 cmgcr_base = 0;
    /// Count = (host monotonic ticks + count_offset) mod 2^32; see Cpu::read_count().
    u64 count_offset = 0;
};
}  // namespace disco::cpu
