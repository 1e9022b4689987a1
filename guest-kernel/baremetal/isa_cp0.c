/* CP0: the identity Disco presents (QEMU's MIPS64R2-generic), EBase, RDHWR
 * in kernel mode, Count, and the Count/Compare timer interrupt taken out
 * of WAIT (Cause.TI and IP7, cleared by writing Compare). */
#include "isa.h"

void test_cp0(void) {
    CHECK("PRId", MFC0(15, 0), platform_cpu.prid);
    CHECK("Config0", MFC0(16, 0), platform_cpu.config0 | (BIG_ENDIAN_GUEST ? 0x8000 : 0));
    CHECK("Config1", MFC0(16, 1), platform_cpu.config1);
    CHECK("Config2", MFC0(16, 2), platform_cpu.config2);
    CHECK("Config3", MFC0(16, 3), platform_cpu.config3);
    CHECK("Config4", MFC0(16, 4), platform_cpu.config4);
    CHECK("EBase", MFC0(15, 1), 0x80000000);
    const int ulri = (MFC0(16, 3) & CONFIG3_ULRI) != 0;
    uint64_t r;
    __asm__ volatile("rdhwr %0, $0" : "=r"(r));
    CHECK("rdhwr CPUNum", r, MFC0(15, 1) & 0x3ff);
    __asm__ volatile("rdhwr %0, $1" : "=r"(r));
    CHECK("rdhwr SYNCI_Step", r, 32);
    __asm__ volatile("rdhwr %0, $3" : "=r"(r));
    CHECK("rdhwr CCRes", r, 2);
    const uint64_t c0 = MFC0(9, 0);
    __asm__ volatile("rdhwr %0, $2" : "=r"(r));
    CHECK("rdhwr CC is Count", (uint32_t)((uint32_t)r - (uint32_t)c0) < 10000000u, 1);
    if (ulri) {
        DMTC0(4, 2, 0xfeedface12345678ull);
        CHECK("UserLocal", DMFC0(4, 2), 0xfeedface12345678ull);
        __asm__ volatile("rdhwr %0, $29" : "=r"(r));
        CHECK("rdhwr ULR in kernel mode", r, 0xfeedface12345678ull);
    } else {
        note("no Config3.ULRI: UserLocal and RDHWR $29 not tested");
    }
    for (volatile int i = 0; i < 1000; ++i) {
    }
    CHECK("Count advances", MFC0(9, 0) != c0, 1);
    MTC0(9, 0, 0x10000);
    r = MFC0(9, 0);
    CHECK("Count is writable", r >= 0x10000 && r < 0x10000 + 10000000, 1);
    DMTC0(14, 0, 0x123456789abcdef0ull);
    CHECK("EPC holds 64 bits", DMFC0(14, 0), 0x123456789abcdef0ull);
    DMTC0(30, 0, 0xffffffff80001234ull);
    CHECK("ErrorEPC", DMFC0(30, 0), 0xffffffff80001234ull);
    DMTC0(4, 0, 0xffffffffffffffffull);
    CHECK("Context PTEBase writable, BadVPN2 not", DMFC0(4, 0) & ~0x7ffff0ull, 0xffffffffff800000ull);
    DMTC0(4, 0, 0);
}

/* Compare = Count + delta ticks (10 ns each), re-armed if Count has
 * already passed it by the time the write landed (a slow host). */
static uint32_t arm_compare(uint32_t delta) {
    for (;;) {
        const uint32_t c = (uint32_t)MFC0(9, 0);
        MTC0(11, 0, c + delta);
        if ((uint32_t)((uint32_t)MFC0(9, 0) - c) < delta / 2) return c;
    }
}

/* Polls until Cause.TI is set or Count is 4 deltas past `start`. */
static void poll_ti(uint32_t start, uint32_t delta) {
    while (!((MFC0(13, 0) >> 30) & 1) && (uint32_t)((uint32_t)MFC0(9, 0) - start) < 4 * delta) {
    }
}

void test_timer(void) {
    const uint64_t st = MFC0(12, 0);
    /* Polled: with interrupts off, Count reaching Compare sets Cause.TI and IP7. */
    poll_ti(arm_compare(100000), 100000);
    CHECK("Cause.TI when Count reaches Compare", (MFC0(13, 0) >> 30) & 1, 1);
    CHECK("Cause.IP7 when Count reaches Compare", (MFC0(13, 0) >> 15) & 1, 1);
    MTC0(11, 0, MFC0(9, 0) - 1);
    CHECK("writing Compare clears TI", (MFC0(13, 0) >> 30) & 1, 0);
    CHECK("writing Compare clears IP7", (MFC0(13, 0) >> 15) & 1, 0);
    /* Interrupt: IM7 and IE set, Compare = Count + 1 ms; WAIT until it comes.
     * EPC is the instruction after the WAIT. */
    arm_compare(100000);
    uint64_t fpc, r8, before = exc_record.count;
    RUN_FAULTING("mfc0 $9, $12\n ori $9, $9, 0x8001\n mtc0 $9, $12\n ehb", "wait", fpc, r8);
    check_exception("timer interrupt", before, fpc + 4, EXC_INT, VEC_GENERAL);
    CHECK("Cause.IP7 in the handler", (exc_record.cause >> 15) & 1, 1);
    CHECK("Cause.TI in the handler", (exc_record.cause >> 30) & 1, 1);
    CHECK("IE was set at the interrupt", exc_record.status & 1, 1);
    MTC0(11, 0, MFC0(9, 0) - 1);
    CHECK("writing Compare clears TI", (MFC0(13, 0) >> 30) & 1, 0);
    /* Cause.IV=1: the interrupt goes to EBase + 0x200. */
    MTC0(13, 0, 1ull << 23);
    arm_compare(100000);
    before = exc_record.count;
    RUN_FAULTING("mfc0 $9, $12\n ori $9, $9, 0x8001\n mtc0 $9, $12\n ehb", "wait", fpc, r8);
    check_exception("timer interrupt with IV", before, fpc + 4, EXC_INT, VEC_INTERRUPT);
    MTC0(11, 0, MFC0(9, 0) - 1);
    MTC0(13, 0, 0);
    /* A masked timer (IM7 clear) does not interrupt even with IE set. */
    MTC0(12, 0, st & ~0xff01ull);
    poll_ti(arm_compare(50000), 50000);
    __asm__ volatile("ei\n ehb\n nop\n nop\n di\n ehb" ::: "memory");
    CHECK("masked timer: no interrupt", exc_record.count, before + 1);
    MTC0(11, 0, MFC0(9, 0) - 1);
    /* Software interrupts: Cause.IP0 with IM0 and IE interrupts at once. */
    before = exc_record.count;
    RUN_FAULTING("mfc0 $9, $12\n ori $9, $9, 0x0101\n li $10, 0x100\n mtc0 $10, $13\n ehb\n mtc0 $9, $12\n ehb", "nop",
                 fpc, r8);
    CHECK("software interrupt taken", exc_record.count - before, 1);
    CHECK("software interrupt code", (exc_record.cause >> 2) & 31, EXC_INT);
    CHECK("software interrupt IP0", (exc_record.cause >> 8) & 1, 1);
    MTC0(13, 0, 0);
    MTC0(12, 0, st);
}
