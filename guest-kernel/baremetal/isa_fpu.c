/* A small FPU section in hard-float assembly (the C code is soft-float):
 * FIR, FR=1 and FR=0 register files (FR=0 pairs even/odd registers for
 * doubles), moves, ADD.D/MUL.S/DIV.D/SQRT.D, conversions with the rounding
 * mode, compares with BC1T/BC1F/BC1TL, FCSR flags, loads and stores,
 * coprocessor-unusable with CE=1, and FPE with Invalid enabled. */
#include "isa.h"

#define FP(body, ...) __asm__ volatile(".set push\n.set hardfloat\n.set noreorder\n" body "\n.set pop" __VA_ARGS__)
#define STATUS_FR (1ull << 26)
#define STATUS_CU1 (1ull << 29)

static union {
    uint64_t d[4];
    uint32_t w[8];
} fpmem;

void test_fpu(void) {
    const uint64_t st = MFC0(12, 0);
    uint64_t r, r2;
    MTC0(12, 0, st | STATUS_CU1 | STATUS_FR);
    FP("cfc1 %0, $0", : "=r"(r));
    CHECK("FIR", r, platform_cpu.fir);
    FP("ctc1 $0, $31\n cfc1 %0, $31", : "=r"(r));
    CHECK("FCSR cleared", r, 0);
    /* FR=1: 32 independent 64-bit registers */
    FP("dmtc1 %2, $f2\n add.d $f4, $f2, $f2\n dmfc1 %0, $f4\n mul.d $f6, $f4, $f4\n dmfc1 %1, $f6",
       : "=r"(r), "=r"(r2)
       : "r"(0x3ff0000000000000ull));
    CHECK("add.d 1+1", r, 0x4000000000000000ull);
    CHECK("mul.d 2*2", r2, 0x4010000000000000ull);
    FP("mtc1 %2, $f6\n mtc1 %3, $f7\n mul.s $f8, $f6, $f7\n mfc1 %0, $f8\n cvt.d.s $f10, $f6\n dmfc1 %1, $f10",
       : "=r"(r), "=r"(r2)
       : "r"(0x40400000ull), "r"(0x40000000ull));
    CHECK("mul.s 3*2", r, 0x40c00000);
    CHECK("cvt.d.s 3", r2, 0x4008000000000000ull);
    FP("dmtc1 %1, $f0\n mtc1 %2, $f1\n dmfc1 %0, $f0", : "=r"(r) : "r"(0x1122334455667788ull), "r"(0x99ull));
    CHECK("FR=1: $f1 is not the top of $f0", r, 0x1122334455667788ull);
    FP("mtc1 $0, $f4\n mthc1 %1, $f4\n dmfc1 %0, $f4\n", : "=r"(r) : "r"(0x3ff00000ull));
    CHECK("mthc1", r, 0x3ff0000000000000ull);
    FP("mfhc1 %0, $f4", : "=r"(r));
    CHECK("mfhc1", r, 0x3ff00000);
    FP("mtc1 %1, $f0\n mfc1 %0, $f0", : "=r"(r) : "r"(0x80000000ull));
    CHECK("mfc1 sign-extends", r, 0xffffffff80000000ull);
    /* conversions: round to nearest even, truncation, rounding-mode field */
    FP("dmtc1 %1, $f2\n cvt.w.d $f4, $f2\n mfc1 %0, $f4", : "=r"(r) : "r"(0x4004000000000000ull)); /* 2.5 */
    CHECK("cvt.w.d 2.5 rounds to even", r, 2);
    FP("dmtc1 %1, $f2\n cvt.w.d $f4, $f2\n mfc1 %0, $f4", : "=r"(r) : "r"(0x400c000000000000ull)); /* 3.5 */
    CHECK("cvt.w.d 3.5 rounds to even", r, 4);
    FP("dmtc1 %1, $f2\n trunc.w.d $f4, $f2\n mfc1 %0, $f4", : "=r"(r) : "r"(0xc00599999999999aull)); /* -2.7 */
    CHECK("trunc.w.d -2.7", r, -2ll);
    FP("li $8, 2\n ctc1 $8, $31\n dmtc1 %1, $f2\n cvt.w.d $f4, $f2\n mfc1 %0, $f4\n ctc1 $0, $31",
       : "=r"(r)
       : "r"(0x4004000000000000ull)
       : "$8");
    CHECK("cvt.w.d toward +inf (RM=2)", r, 3);
    FP("li $8, 7\n mtc1 $8, $f2\n cvt.s.w $f4, $f2\n mfc1 %0, $f4", : "=r"(r)::"$8");
    CHECK("cvt.s.w 7", r, 0x40e00000);
    FP("dmtc1 %1, $f2\n cvt.d.l $f4, $f2\n cvt.l.d $f6, $f4\n dmfc1 %0, $f6", : "=r"(r) : "r"(-(1ll << 40)));
    CHECK("cvt.d.l/cvt.l.d", r, -(1ll << 40));
    /* compares and branches on the condition */
    FP("dmtc1 %1, $f2\n dmtc1 %2, $f4\n li %0, 0\n c.lt.d $f2, $f4\n bc1t 1f\n ori %0, %0, 1\n ori %0, %0, 2\n 1:",
       : "=&r"(r)
       : "r"(0x3ff0000000000000ull), "r"(0x4000000000000000ull));
    CHECK("c.lt.d 1<2, bc1t taken", r, 1);
    FP("mtc1 %1, $f2\n mtc1 %2, $f4\n li %0, 0\n c.eq.s $f2, $f4\n bc1f 1f\n ori %0, %0, 1\n ori %0, %0, 2\n 1:",
       : "=&r"(r)
       : "r"(0x3f800000ull), "r"(0x40000000ull));
    CHECK("c.eq.s 1!=2, bc1f taken", r, 1);
    FP("mtc1 %1, $f2\n li %0, 0\n c.eq.s $f2, $f2\n bc1tl 1f\n ori %0, %0, 1\n ori %0, %0, 2\n 1:",
       : "=&r"(r)
       : "r"(0x3f800000ull));
    CHECK("bc1tl taken", r, 1);
    FP("mtc1 %1, $f2\n li %0, 0\n c.lt.s $f2, $f2\n bc1tl 1f\n ori %0, %0, 1\n ori %0, %0, 2\n 1:",
       : "=&r"(r)
       : "r"(0x3f800000ull));
    CHECK("bc1tl not taken annuls", r, 2);
    FP("dmtc1 %1, $f2\n li %0, 0\n c.un.d $f2, $f2\n bc1t 1f\n ori %0, %0, 1\n ori %0, %0, 2\n 1:",
       : "=&r"(r)
       : "r"(0x7ff8000000000000ull));
    CHECK("c.un.d NaN", r, 1);
    FP("ctc1 $0, $31\n mtc1 %1, $f2\n mtc1 %2, $f4\n c.le.s $fcc3, $f2, $f4\n cfc1 %0, $25",
       : "=r"(r)
       : "r"(0x3f800000ull), "r"(0x3f800000ull));
    CHECK("c.le.s into $fcc3 (FCCR)", r, 1 << 3);
    FP("li %0, 5\n li $8, 9\n movt %0, $8, $fcc3", : "=&r"(r)::"$8");
    CHECK("movt on $fcc3", r, 9);
    /* flags: 1/0 sets Z (not enabled: no exception) */
    FP("ctc1 $0, $31\n dmtc1 %2, $f2\n dmtc1 $0, $f4\n div.d $f6, $f2, $f4\n dmfc1 %0, $f6\n cfc1 %1, $31",
       : "=r"(r), "=r"(r2)
       : "r"(0x3ff0000000000000ull));
    CHECK("div.d 1/0 = +inf", r, 0x7ff0000000000000ull);
    CHECK("FCSR cause and flag Z", r2 & 0x3f07c, (1 << 15) | (1 << 5));
    FP("ctc1 $0, $31", );
    /* loads and stores */
    fpmem.d[0] = 0x400921fb54442d18ull;
    FP("ldc1 $f2, 0(%1)\n sdc1 $f2, 8(%1)\n lwc1 $f4, 0(%1)\n swc1 $f4, 16(%1)\n ld %0, 8(%1)",
       : "=r"(r)
       : "r"(&fpmem)
       : "memory");
    CHECK("ldc1/sdc1", r, 0x400921fb54442d18ull);
    CHECK("lwc1/swc1", fpmem.w[4], fpmem.w[0]);
    FP("dmtc1 %1, $f2\n sqrt.d $f4, $f2\n dmfc1 %0, $f4", : "=r"(r) : "r"(0x4010000000000000ull));
    CHECK("sqrt.d 4", r, 0x4000000000000000ull);
    /* FR=0: doubles live in even/odd pairs (low word in the even register) */
    MTC0(12, 0, (st | STATUS_CU1) & ~STATUS_FR);
    FP("mtc1 $0, $f0\n mtc1 %2, $f1\n add.d $f2, $f0, $f0\n mfc1 %0, $f3\n mfc1 %1, $f2",
       : "=r"(r), "=r"(r2)
       : "r"(0x3ff00000ull));
    CHECK("FR=0: add.d on the pair, high word", r, 0x40000000);
    CHECK("FR=0: add.d on the pair, low word", r2, 0);
    FP("mfhc1 %0, $f2", : "=r"(r));
    CHECK("FR=0: mfhc1 reads the odd register", r, 0x40000000);
    FP("dmtc1 %1, $f4\n mfc1 %0, $f5", : "=r"(r) : "r"(0x4008000000000000ull));
    CHECK("FR=0: dmtc1 fills the pair", r, 0x40080000);
    FP("ldc1 $f6, 0(%1)\n mfc1 %0, $f7", : "=r"(r) : "r"(&fpmem) : "memory");
    CHECK("FR=0: ldc1 fills the pair", r, 0x400921fb);
    MTC0(12, 0, st | STATUS_CU1 | STATUS_FR);
    /* exceptions: CpU with CE=1 when CU1=0; FPE for an enabled Invalid */
    MTC0(12, 0, st & ~STATUS_CU1);
    EXPECT_EXC("cop1 unusable", EXC_CPU, "", "add.s $f0, $f0, $f0");
    CHECK("CpU CE=1", (exc_record.cause >> 28) & 3, 1);
    EXPECT_EXC("cop1 unusable for mfc1", EXC_CPU, "", "mfc1 $8, $f0");
    EXPECT_EXC("cop1 unusable for ldc1", EXC_CPU, "dla $9, fpmem", "ldc1 $f0, 0($9)");
    MTC0(12, 0, st | STATUS_CU1 | STATUS_FR);
    EXPECT_EXC("fpe invalid", EXC_FPE, "dli $8, 0xbff0000000000000\n dmtc1 $8, $f2\n li $9, 0x800\n ctc1 $9, $31",
               "sqrt.d $f0, $f2");
    FP("cfc1 %0, $31\n ctc1 $0, $31", : "=r"(r));
    CHECK("FCSR cause V", (r >> 16) & 1, 1);
    EXPECT_EXC("fpe on ctc1 with cause and enable", EXC_FPE, "li $9, (1 << 14) | (1 << 9)", "ctc1 $9, $31");
    FP("ctc1 $0, $31", );
    MTC0(12, 0, st);
}
