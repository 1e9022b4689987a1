/* The TLB and user mode: TLBWI/TLBWR/TLBP/TLBR, Wired/Random, PageMask (4K,
 * 16K, 1M), ASID matching and the global bit, valid and dirty bits (TLBL,
 * TLBS, Mod), the refill vectors (XTLB refill for xuseg with UX=1, the
 * 32-bit one with UX=0), Context/XContext/EntryHi/BadVAddr after a TLB
 * exception, SEGBITS (42) and the address error past it, RI/XI through
 * PageGrain (TLBRI/TLBXI with IEC, TLBL without), and user mode entered by
 * ERET on mapped pages: SYSCALL back, AdEL on kernel addresses, CpU on CP0
 * instructions, RDHWR with and without HWREna, RI for 64-bit operations
 * with UX=0. */
#include "isa.h"

#define PFN(pa) (((uint64_t)(pa) >> 12) << 6)
#define LO_C (3 << 3)
#define LO_D 4
#define LO_V 2
#define LO_G 1
#define LO_RI (1ull << 63)
#define LO_XI (1ull << 62)

static void tlb_write(unsigned index, uint64_t hi, uint64_t lo0, uint64_t lo1, uint64_t mask) {
    MTC0(0, 0, index);
    DMTC0(10, 0, hi);
    DMTC0(2, 0, lo0);
    DMTC0(3, 0, lo1);
    MTC0(5, 0, mask);
    __asm__ volatile("tlbwi\n ehb" ::: "memory");
}

static uint64_t tlb_probe(uint64_t hi) {
    DMTC0(10, 0, hi);
    __asm__ volatile("tlbp\n ehb" ::: "memory");
    return MFC0(0, 0);
}

/* A refill (or other TLB) exception from `insn` at address in $9. */
#define EXPECT_TLB(name, code, vector, addr, insn)                      \
    do {                                                                \
        uint64_t fpc_, r8_, before_ = exc_record.count;                 \
        __asm__ volatile("" ::: "memory");                              \
        RUN_FAULTING("dli $9, " #addr, insn, fpc_, r8_);                \
        (void)r8_;                                                      \
        check_exception(name, before_, fpc_, code, vector);             \
        CHECK(name " BadVAddr", exc_record.badvaddr, (uint64_t)(addr)); \
    } while (0)

void test_tlb(void) {
    MTC0(6, 0, 0); /* Wired */
    for (unsigned i = 0; i < 64; ++i)
        tlb_write(i, 0xffffffff80000000ull + ((uint64_t)i << 13), 0, 0, 0); /* never match */
    /* EntryHi: VPN2 is SEGBITS-13 bits, R and ASID kept, the rest reads 0. */
    DMTC0(10, 0, ~0ull);
    CHECK("EntryHi write mask", DMFC0(10, 0), 0xc00003ffffffe0ffull);
    MTC0(5, 0, 0x1fe000);
    CHECK("PageMask 1M reads back", MFC0(5, 0), 0x1fe000);
    DMTC0(2, 0, 0x3fffffff);
    CHECK("EntryLo0 PFN is PABITS-12 bits", DMFC0(2, 0), 0x3fffffff);

    DMTC0(10, 0, 5); /* ASID 5 */
    tlb_write(1, 0x10000000 | 5, PFN(0x400000) | LO_C | LO_D | LO_V, PFN(0x401000) | LO_C | LO_V, 0);
    *(volatile uint32_t*)0x10000000ull = 0xdeadbeef;
    CHECK("mapped store reaches memory", *kseg0_word(0x400000), 0xdeadbeef);
    *kseg0_word(0x401000) = 0x600df00d;
    CHECK("odd page", *(volatile uint32_t*)0x10001000ull, 0x600df00d);
    CHECK("page offset", ({
              *kseg0_word(0x400ffc) = 0x1234;
              *(volatile uint32_t*)0x10000ffcull;
          }),
          0x1234);
    EXPECT_TLB("store to clean page", EXC_MOD, VEC_GENERAL, 0x10001000, "sw $0, 0($9)");
    CHECK("Mod EntryHi", exc_record.entryhi, 0x10000000 | 5);
    CHECK("clean page not written", *kseg0_word(0x401000), 0x600df00d);
    CHECK("tlbp finds", tlb_probe(0x10000000 | 5), 1);
    CHECK("tlbp misses: Index.P", (tlb_probe(0x20000000 | 5) >> 31) & 1, 1);
    DMTC0(10, 0, 0);
    DMTC0(2, 0, 0);
    DMTC0(3, 0, 0);
    MTC0(5, 0, 0x6000);
    MTC0(0, 0, 1);
    __asm__ volatile("tlbr\n ehb" ::: "memory");
    CHECK("tlbr EntryLo0", DMFC0(2, 0), PFN(0x400000) | LO_C | LO_D | LO_V);
    CHECK("tlbr EntryLo1", DMFC0(3, 0), PFN(0x401000) | LO_C | LO_V);
    CHECK("tlbr EntryHi", DMFC0(10, 0), 0x10000000 | 5);
    CHECK("tlbr PageMask", MFC0(5, 0), 0);
    DMTC0(10, 0, 5);

    /* Refill: through the XTLB vector when UX=1, the 32-bit one when UX=0;
     * Context, XContext and EntryHi describe the missing page. */
    EXPECT_TLB("refill (UX=1)", EXC_TLBL, VEC_XREFILL, 0x30002000, "lw $8, 0($9)");
    CHECK("refill Context BadVPN2", (exc_record.context >> 4) & 0x7ffff, 0x30002000 >> 13);
    CHECK("refill XContext BadVPN2", (exc_record.xcontext >> 4) & 0x1fffffff, 0x30002000 >> 13);
    CHECK("refill XContext R", (exc_record.xcontext >> 33) & 3, 0);
    CHECK("refill EntryHi", exc_record.entryhi, 0x30002000 | 5);
    EXPECT_TLB("refill (xuseg, 64-bit address)", EXC_TLBS, VEC_XREFILL, 0x0000012345678000, "sw $0, 0($9)");
    CHECK("64-bit refill XContext BadVPN2", (exc_record.xcontext >> 4) & 0x1fffffff, 0x0000012345678000ull >> 13);
    CHECK("64-bit refill EntryHi", exc_record.entryhi, 0x0000012345678000ull | 5);
    CHECK("64-bit refill Context BadVPN2", (exc_record.context >> 4) & 0x7ffff,
          (0x0000012345678000ull >> 13) & 0x7ffff);
    EXPECT_TLB("xuseg past SEGBITS", EXC_ADEL, VEC_GENERAL, 0x0000040000000000, "lw $8, 0($9)");
    const uint64_t st = MFC0(12, 0);
    MTC0(12, 0, st & ~(1ull << 5));
    EXPECT_TLB("refill (UX=0)", EXC_TLBS, VEC_REFILL, 0x30000000, "sw $8, 0($9)");
    MTC0(12, 0, st);
    /* ASID: a non-global entry does not match another ASID; a global one does. */
    DMTC0(10, 0, 6);
    EXPECT_TLB("other ASID misses", EXC_TLBL, VEC_XREFILL, 0x10000000, "lw $8, 0($9)");
    CHECK("miss EntryHi has the current ASID", exc_record.entryhi & 0xff, 6);
    tlb_write(1, 0x10000000 | 5, PFN(0x400000) | LO_C | LO_D | LO_V | LO_G, PFN(0x401000) | LO_C | LO_V | LO_G, 0);
    DMTC0(10, 0, 6);
    CHECK("global entry matches any ASID", *(volatile uint32_t*)0x10000000ull, 0xdeadbeef);
    CHECK("tlbp finds a global entry with another ASID", tlb_probe(0x10000000 | 9), 1);
    DMTC0(10, 0, 6);
    /* Invalid entries: TLBL/TLBS through the general vector. */
    tlb_write(2, 0x20000000 | 6, 0, PFN(0x402000) | LO_C | LO_D | LO_V, 0);
    EXPECT_TLB("load from invalid entry", EXC_TLBL, VEC_GENERAL, 0x20000000, "lw $8, 0($9)");
    EXPECT_TLB("store to invalid entry", EXC_TLBS, VEC_GENERAL, 0x20000008, "sw $8, 0($9)");
    CHECK("invalid EntryHi", exc_record.entryhi, 0x20000000 | 6);
    *kseg0_word(0x402010) = 0x0dd;
    CHECK("valid odd half of the same entry", *(volatile uint32_t*)0x20001010ull, 0x0dd);
    /* 16 KiB pages (PageMask 0x6000). */
    tlb_write(3, 0x40000000 | 6, PFN(0x500000) | LO_C | LO_D | LO_V, PFN(0x504000) | LO_C | LO_D | LO_V, 0x6000);
    *kseg0_word(0x504010) = 0x16161616;
    CHECK("16K odd page", *(volatile uint32_t*)(0x40004010ull), 0x16161616);
    *(volatile uint32_t*)0x40003ffcull = 0x77;
    CHECK("16K even page end", *kseg0_word(0x503ffc), 0x77);
    CHECK("tlbp finds a 16K page by any address in it", tlb_probe(0x40006000 | 6), 3);
    /* 1 MiB pages (PageMask 0x1fe000): physical 16 MiB and 17 MiB. */
    tlb_write(4, 0x60000000 | 6, PFN(0x1000000) | LO_C | LO_D | LO_V, PFN(0x1100000) | LO_C | LO_D | LO_V, 0x1fe000);
    *(volatile uint32_t*)0x600abcd0ull = 0x1111;
    CHECK("1M even page", *kseg0_word(0x10abcd0), 0x1111);
    *kseg0_word(0x11fff00) = 0x2222;
    CHECK("1M odd page", *(volatile uint32_t*)0x601fff00ull, 0x2222);
    MTC0(0, 0, 4);
    __asm__ volatile("tlbr\n ehb" ::: "memory");
    CHECK("tlbr PageMask 1M", MFC0(5, 0), 0x1fe000);
    CHECK("tlbr 1M EntryHi", DMFC0(10, 0), 0x60000000 | 6);
    DMTC0(10, 0, 6);
    if (MFC0(16, 3) & CONFIG3_RXI) {
        /* RI/XI: with PageGrain.RIE|XIE|IEC the codes are TLBRI/TLBXI; without IEC both are TLBL. */
        MTC0(5, 1, (1ull << 31) | (1ull << 30) | (1ull << 27));
        tlb_write(5, 0x50000000 | 6, PFN(0x510000) | LO_C | LO_D | LO_V | LO_RI,
                  PFN(0x511000) | LO_C | LO_D | LO_V | LO_XI, 0);
        MTC0(0, 0, 5);
        __asm__ volatile("tlbr\n ehb" ::: "memory");
        CHECK("tlbr RI", DMFC0(2, 0) >> 62, 2);
        CHECK("tlbr XI", DMFC0(3, 0) >> 62, 1);
        DMTC0(10, 0, 6);
        EXPECT_TLB("read-inhibit", EXC_TLBRI, VEC_GENERAL, 0x50000000, "lw $8, 0($9)");
        *kseg0_word(0x510000) = 0x5a5a;
        (void)EXPECT_NO_EXC("store to a read-inhibited page", "li $9, 0x50000004\n li $8, 0x66", "sw $8, 0($9)");
        CHECK("store to a read-inhibited page lands", *kseg0_word(0x510004), 0x66);
        *kseg0_word(0x511000) = 0x03e00008; /* jr ra */
        *kseg0_word(0x511004) = 0;
        *kseg0_word(0x511008) = 0x5a5a;
        CHECK("load from an execute-inhibited page", *(volatile uint32_t*)0x50001008ull, 0x5a5a);
        uint64_t fpc, r8, before = exc_record.count;
        RUN_FAULTING("li $9, 0x50001000", "jalr $9", fpc, r8);
        check_exception("execute-inhibit", before, 0x50001000, EXC_TLBXI, VEC_GENERAL);
        CHECK("execute-inhibit BadVAddr", exc_record.badvaddr, 0x50001000);
        MTC0(5, 1, (1ull << 31) | (1ull << 30));
        EXPECT_TLB("read-inhibit without IEC", EXC_TLBL, VEC_GENERAL, 0x50000000, "lw $8, 0($9)");
        before = exc_record.count;
        RUN_FAULTING("li $9, 0x50001000", "jalr $9", fpc, r8);
        check_exception("execute-inhibit without IEC", before, 0x50001000, EXC_TLBL, VEC_GENERAL);
        MTC0(5, 1, 0);
    } else {
        note("no Config3.RXI: RI/XI not tested");
    }
    /* TLBWR writes an entry at Random, which stays in [Wired, 63]. */
    MTC0(6, 0, 16);
    CHECK("Wired reads back", MFC0(6, 0), 16);
    for (int i = 0; i < 8; ++i) {
        const uint64_t rnd = MFC0(1, 0);
        CHECK("Random in [Wired, 63]", rnd >= 16 && rnd <= 63, 1);
    }
    DMTC0(10, 0, 0x70000000 | 6);
    DMTC0(2, 0, PFN(0x520000) | LO_C | LO_D | LO_V);
    DMTC0(3, 0, PFN(0x521000) | LO_C | LO_D | LO_V);
    MTC0(5, 0, 0);
    __asm__ volatile("tlbwr\n ehb" ::: "memory");
    const uint64_t idx = tlb_probe(0x70000000 | 6);
    CHECK("tlbwr entry found at or above Wired", idx >= 16 && idx <= 63, 1);
    *kseg0_word(0x521040) = 0xabc;
    CHECK("tlbwr mapping works", *(volatile uint32_t*)0x70001040ull, 0xabc);
    MTC0(6, 0, 0);
}

/* User programs at virtual = physical 0x600000 (the syscall at the end of
 * each returns to the kernel). */
static const uint32_t user_code[] = {
    0x0000000c, /* 0x00: syscall */
    0x3c098000, /* 0x04: lui $9, 0x8000 */
    0x8d280000, /* 0x08: lw $8, 0($9)      AdEL */
    0x40086000, /* 0x0c: mfc0 $8, $12      CpU */
    0x7c08e83b, /* 0x10: rdhwr $8, $29     RI unless HWREna.ULR */
    0x0000000c, /* 0x14: syscall */
    0x0108402d, /* 0x18: daddu $8, $8, $8  RI when UX=0 */
    0x0000000c, /* 0x1c: syscall */
    0x3c090060, /* 0x20: lui $9, 0x60 */
    0x34080077, /* 0x24: ori $8, $0, 0x77 */
    0xad280100, /* 0x28: sw $8, 0x100($9) */
    0x0000000c, /* 0x2c: syscall */
    0x42000018, /* 0x30: eret             CpU */
    0x7c08103b, /* 0x34: rdhwr $8, $2     CC */
    0x0000000c, /* 0x38: syscall */
    0x3c091000, /* 0x3c: lui $9, 0x1000 */
    0x8d280000, /* 0x40: lw $8, 0($9)     through the global entry */
    0x0000000c, /* 0x44: syscall */
    0x3c093000, /* 0x48: lui $9, 0x3000 */
    0x8d280000, /* 0x4c: lw $8, 0($9)     TLB refill: unmapped */
};

/* Enter user mode at pc (EXL=1, KSU=user, CU0 clear and the Status bits in
 * `clear` too) by ERET. */
#define ENTER_USER(pc, clear)                                                                           \
    "dli $8, " #pc "\n dmtc0 $8, $14\n mfc0 $9, $12\n ori $9, $9, 0x12\n li $10, ~((1 << 28) | " #clear \
    ")\n and $9, $9, $10\n mtc0 $9, $12\n ehb"
#define USER_RUN_VEC(name, pc, clear, epc, code, vec)                 \
    do {                                                              \
        before = exc_record.count;                                    \
        RUN_FAULTING(ENTER_USER(pc, clear), "eret", fpc, r8);         \
        check_exception(name, before, epc, code, vec);                \
        CHECK(name " in user mode", (exc_record.status >> 3) & 3, 2); \
        MTC0(12, 0, st);                                              \
    } while (0)
#define USER_RUN(name, pc, clear, epc, code) USER_RUN_VEC(name, pc, clear, epc, code, VEC_GENERAL)

void test_user(void) {
    const uint64_t st = MFC0(12, 0);
    uint64_t fpc, r8, before;
    DMTC0(10, 0, 6);
    tlb_write(6, 0x00600000 | 6, PFN(0x600000) | LO_C | LO_D | LO_V, 0, 0);
    for (unsigned i = 0; i < sizeof user_code / sizeof user_code[0]; ++i) kseg0_word(0x600000)[i] = user_code[i];
    __asm__ volatile("synci 0(%0)\n synci 32(%0)\n synci 64(%0)\n sync" ::"r"(0xffffffff80600000ull) : "memory");
    USER_RUN("user syscall", 0x600000, 0, 0x600000, EXC_SYS);
    USER_RUN("user access to kseg0", 0x600004, 0, 0x600008, EXC_ADEL);
    CHECK("user AdEL BadVAddr", exc_record.badvaddr, 0xffffffff80000000ull);
    USER_RUN("user CP0 access", 0x60000c, 0, 0x60000c, EXC_CPU);
    CHECK("user CP0 CE=0", (exc_record.cause >> 28) & 3, 0);
    USER_RUN("user eret", 0x600030, 0, 0x600030, EXC_CPU);
    MTC0(7, 0, 0);
    USER_RUN("user rdhwr disabled", 0x600010, 0, 0x600010, EXC_RI);
    if (MFC0(16, 3) & CONFIG3_ULRI) {
        MTC0(7, 0, 1ull << 29);  /* HWREna.ULR */
        DMTC0(4, 2, 0x1234abcd); /* UserLocal */
        USER_RUN("user rdhwr enabled", 0x600010, 0, 0x600014, EXC_SYS);
        CHECK("user rdhwr ULR", r8, 0x1234abcd);
    }
    MTC0(7, 0, 1ull << 2); /* HWREna.CC */
    const uint64_t c0 = MFC0(9, 0);
    USER_RUN("user rdhwr CC", 0x600034, 0, 0x600038, EXC_SYS);
    CHECK("user rdhwr CC follows Count", (uint32_t)(r8 - c0) < 100000000u, 1);
    MTC0(7, 0, 0);
    USER_RUN("user 64-bit op with UX=1", 0x600018, 0, 0x60001c, EXC_SYS);
    USER_RUN("user 64-bit op with UX=0", 0x600018, 0x20, 0x600018, EXC_RI);
    *kseg0_word(0x600100) = 0;
    USER_RUN("user store to a mapped page", 0x600020, 0, 0x60002c, EXC_SYS);
    CHECK("user store landed", *kseg0_word(0x600100), 0x77);
    USER_RUN("user load through a global mapping", 0x60003c, 0, 0x600044, EXC_SYS);
    CHECK("user load value", r8, (uint64_t)(int32_t)0xdeadbeef);
    /* A user-mode TLB miss: the XTLB refill vector with UX=1, the 32-bit one with UX=0. */
    USER_RUN_VEC("user refill (UX=1)", 0x600048, 0, 0x60004c, EXC_TLBL, VEC_XREFILL);
    CHECK("user refill BadVAddr", exc_record.badvaddr, 0x30000000);
    USER_RUN_VEC("user refill (UX=0)", 0x600048, 0x20, 0x60004c, EXC_TLBL, VEC_REFILL);
    CHECK("user refill (UX=0) EntryHi", exc_record.entryhi, 0x30000000 | 6);
    MTC0(12, 0, st);
    DMTC0(10, 0, 0);
}
