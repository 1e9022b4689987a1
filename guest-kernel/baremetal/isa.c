/* The self-checking ISA suite (issue 2): integer instructions with their
 * sign-extension rules, unaligned pairs, LL/SC, branches and delay slots,
 * RDHWR, every exception type with its vector, EPC, BadVAddr and Cause, the
 * TLB instructions with PageMask, ASID, global, valid/dirty and RI/XI, user
 * mode through ERET, and the Count/Compare interrupt. Expected values come
 * from the MIPS64 manuals (MD00087, MD00091), written so that one source
 * serves both byte orders. Prints PASS/FAIL lines; exits 0 only if all pass. */
#include "platform.h"

struct exc_record {
    uint64_t cause, epc, badvaddr, count, vector, resume, entryhi, status;
};
struct exc_record exc_record;

static unsigned checks, failures;
static void check(const char* name, uint64_t got, uint64_t want) {
    ++checks;
    if (got == want) return;
    ++failures;
    put_str("FAIL ");
    put_str(name);
    put_str(": expected ");
    put_hex(want);
    put_str(" got ");
    put_hex(got);
    put_str("\n");
}
#define CHECK(name, got, want) check(name, (uint64_t)(got), (uint64_t)(want))

#define MFC0(reg, sel) ({ uint64_t v_; __asm__ volatile("dmfc0 %0, $" #reg ", " #sel : "=r"(v_)); v_; })
#define MTC0(reg, sel, v) __asm__ volatile("dmtc0 %0, $" #reg ", " #sel "\n\tehb" ::"r"((uint64_t)(v)) : "memory")

/* Runs `insn` (after `setup`), which must raise an exception; the handler
 * resumes after it. Yields the address of insn in fault_pc and $8 in r8. */
#define RUN_FAULTING(setup, insn, fault_pc, r8)                                              \
    __asm__ volatile(".set push\n.set noreorder\n.set noat\n.set hardfloat\n"                \
                     "dla $24, 9f\n dla $25, exc_record\n sd $24, 40($25)\n" setup "\n"      \
                     "dla %0, 8f\n"                                                           \
                     "8: " insn "\n nop\n"                                                    \
                     "9: move %1, $8\n.set pop"                                               \
                     : "=&r"(fault_pc), "=&r"(r8)                                             \
                     :                                                                        \
                     : "$1", "$8", "$9", "$10", "$11", "$24", "$25", "$31", "memory")

static void check_exception(const char* name, uint64_t before, uint64_t epc, unsigned code, uint64_t vector) {
    exc_record.resume = 0;
    CHECK(name, exc_record.count - before, 1);
    CHECK(name, (exc_record.cause >> 2) & 31, code);
    CHECK(name, exc_record.epc, epc);
    CHECK(name, exc_record.vector, vector);
}
#define EXPECT_EXC(name, code, setup, insn)                               \
    do {                                                                  \
        uint64_t fpc_, r8_, before_ = exc_record.count;                   \
        RUN_FAULTING(setup, insn, fpc_, r8_);                             \
        (void)r8_;                                                        \
        check_exception(name, before_, fpc_, code, 0x180);                \
    } while (0)

/* ---- integer ---------------------------------------------------------------- */
#define OP2(insn, a, b) ({ uint64_t r_; __asm__ volatile(insn " %0, %1, %2" : "=r"(r_) : "r"((uint64_t)(a)), "r"((uint64_t)(b))); r_; })
#define OP1(insn, a) ({ uint64_t r_; __asm__ volatile(insn " %0, %1" : "=r"(r_) : "r"((uint64_t)(a))); r_; })

static void test_alu(void) {
    CHECK("addu sign-extends", OP2("addu", 0x7fffffff, 1), 0xffffffff80000000ull);
    CHECK("subu sign-extends", OP2("subu", 0, 1), ~0ull);
    CHECK("daddu", OP2("daddu", 0x7fffffff, 1), 0x80000000ull);
    CHECK("slt", OP2("slt", -1ll, 0), 1);
    CHECK("sltu", OP2("sltu", -1ll, 0), 0);
    CHECK("nor", OP2("nor", 0, 0), ~0ull);
    CHECK("sllv", OP2("sllv", 0x40000000, 1), 0xffffffff80000000ull);
    CHECK("srav", OP2("srav", 0x80000000u, 4), 0xfffffffff8000000ull);
    CHECK("rotrv", OP2("rotrv", 0x12345678, 8), 0x78123456);
    CHECK("drotrv", OP2("drotrv", 0x0123456789abcdefull, 4), 0xf0123456789abcdeull);
    CHECK("dsrav", OP2("dsrav", 0x8000000000000000ull, 63), ~0ull);
    uint64_t r;
    __asm__("rotr %0, %1, 4" : "=r"(r) : "r"(0x80000001u));
    CHECK("rotr", r, 0x18000000);
    __asm__("dsll32 %0, %1, 4" : "=r"(r) : "r"(1ull));
    CHECK("dsll32", r, 1ull << 36);
    __asm__("dsra32 %0, %1, 0" : "=r"(r) : "r"(0x8000000000000000ull));
    CHECK("dsra32", r, 0xffffffff80000000ull);
    __asm__("drotr32 %0, %1, 0" : "=r"(r) : "r"(0x1122334455667788ull));
    CHECK("drotr32", r, 0x5566778811223344ull);
    __asm__("sll %0, %1, 0" : "=r"(r) : "r"(0x00000000ffffffffull));
    CHECK("sll 0 sign-extends", r, ~0ull);
    __asm__("lui %0, 0x8000" : "=r"(r));
    CHECK("lui", r, 0xffffffff80000000ull);
    __asm__("addiu %0, %1, -1" : "=r"(r) : "r"(0ull));
    CHECK("addiu", r, ~0ull);
    __asm__("sltiu %0, %1, -1" : "=r"(r) : "r"(5ull));
    CHECK("sltiu compares with the sign-extended immediate", r, 1);
    __asm__("andi %0, %1, 0xffff" : "=r"(r) : "r"(~0ull));
    CHECK("andi zero-extends", r, 0xffff);
    CHECK("movz", ({ uint64_t d_ = 7; __asm__("movz %0, %1, %2" : "+r"(d_) : "r"(9ull), "r"(0ull)); d_; }), 9);
    CHECK("movn", ({ uint64_t d_ = 7; __asm__("movn %0, %1, %2" : "+r"(d_) : "r"(9ull), "r"(0ull)); d_; }), 7);
    /* Release 2 bit operations */
    __asm__("ext %0, %1, 4, 8" : "=r"(r) : "r"(0xabcd1234ull));
    CHECK("ext", r, 0x23);
    __asm__("dext %0, %1, 8, 32" : "=r"(r) : "r"(0x1122334455667788ull));
    CHECK("dext", r, 0x44556677);
    __asm__("dextm %0, %1, 4, 40" : "=r"(r) : "r"(0x1122334455667788ull));
    CHECK("dextm", r, 0x3445566778ull);
    __asm__("dextu %0, %1, 40, 16" : "=r"(r) : "r"(0x1122334455667788ull));
    CHECK("dextu", r, 0x2233);
    r = ~0ull;
    __asm__("ins %0, %1, 8, 8" : "+r"(r) : "r"(0ull));
    CHECK("ins sign-extends", r, 0xffffffffffff00ffull);
    r = 0;
    __asm__("dins %0, %1, 28, 8" : "+r"(r) : "r"(0xffull));
    CHECK("dins", r, 0xff0000000ull);
    r = 0;
    __asm__("dinsm %0, %1, 16, 40" : "+r"(r) : "r"(~0ull));
    CHECK("dinsm", r, 0x00ffffffffff0000ull);
    r = 0;
    __asm__("dinsu %0, %1, 48, 8" : "+r"(r) : "r"(0xabull));
    CHECK("dinsu", r, 0x00ab000000000000ull);
    CHECK("seb", OP1("seb", 0x80), 0xffffffffffffff80ull);
    CHECK("seh", OP1("seh", 0x8000), 0xffffffffffff8000ull);
    CHECK("wsbh", OP1("wsbh", 0x11223344), 0x22114433);
    CHECK("dsbh", OP1("dsbh", 0x1122334455667788ull), 0x2211443366558877ull);
    CHECK("dshd", OP1("dshd", 0x1122334455667788ull), 0x7788556633441122ull);
    CHECK("clz", OP1("clz", 0x00010000), 15);
    CHECK("clo", OP1("clo", 0xffff0000u), 16);
    CHECK("dclz", OP1("dclz", 1), 63);
    CHECK("dclo", OP1("dclo", ~0ull), 64);
    CHECK("mul", OP2("mul", 0x10000, 0x10000), 0);
    /* HI/LO */
    uint64_t hi, lo;
    __asm__("mult %2, %3\n mfhi %0\n mflo %1" : "=r"(hi), "=r"(lo) : "r"(-2ll), "r"(3ll) : "hi", "lo");
    CHECK("mult lo", lo, -6ll);
    CHECK("mult hi", hi, ~0ull);
    __asm__("multu %2, %3\n mfhi %0\n mflo %1" : "=r"(hi), "=r"(lo) : "r"(0xffffffffull), "r"(2ull) : "hi", "lo");
    CHECK("multu lo sign-extends", lo, 0xfffffffffffffffeull);
    CHECK("multu hi", hi, 1);
    __asm__("div $0, %2, %3\n mfhi %0\n mflo %1" : "=r"(hi), "=r"(lo) : "r"(7ll), "r"(-2ll) : "hi", "lo");
    CHECK("div quotient", lo, -3ll);
    CHECK("div remainder", hi, 1);
    __asm__("ddivu $0, %2, %3\n mfhi %0\n mflo %1" : "=r"(hi), "=r"(lo) : "r"(~0ull), "r"(0x10ull) : "hi", "lo");
    CHECK("ddivu", lo, 0x0fffffffffffffffull);
    CHECK("ddivu remainder", hi, 15);
    __asm__("dmult %2, %3\n mfhi %0\n mflo %1" : "=r"(hi), "=r"(lo) : "r"(-1ll), "r"(-1ll) : "hi", "lo");
    CHECK("dmult", lo, 1);
    CHECK("dmult hi", hi, 0);
    __asm__("dmultu %2, %3\n mfhi %0\n mflo %1" : "=r"(hi), "=r"(lo) : "r"(~0ull), "r"(~0ull) : "hi", "lo");
    CHECK("dmultu hi", hi, 0xfffffffffffffffeull);
    __asm__("mthi $0\n mtlo $0\n madd %2, %3\n madd %2, %3\n mfhi %0\n mflo %1"
            : "=r"(hi), "=r"(lo) : "r"(0x10000ull), "r"(0x8000ull) : "hi", "lo");
    CHECK("madd hi", hi, 1);
    CHECK("madd lo", lo, 0);
    __asm__("mthi $0\n mtlo $0\n msubu %2, %3\n mfhi %0\n mflo %1" : "=r"(hi), "=r"(lo) : "r"(1ull), "r"(1ull) : "hi", "lo");
    CHECK("msubu", lo, ~0ull);
    CHECK("msubu hi", hi, ~0ull);
}

uint64_t cell = 41;

/* ---- loads and stores ----------------------------------------------------------- */
static uint8_t bytes[32] __attribute__((aligned(16)));
__attribute__((unused)) static uint64_t expect_le(const uint8_t* p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i) v = (v << 8) | p[i];
    return v;
}
__attribute__((unused)) static uint64_t expect_be(const uint8_t* p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; ++i) v = (v << 8) | p[i];
    return v;
}
static uint64_t expect_word(const uint8_t* p, int n) {
#ifdef __MIPSEL__
    return expect_le(p, n);
#else
    return expect_be(p, n);
#endif
}

static void test_memory(void) {
    for (int i = 0; i < 32; ++i) bytes[i] = (uint8_t)(0x81 + i * 7);
    uint64_t r;
    __asm__ volatile("lb %0, 0(%1)" : "=r"(r) : "r"(bytes));
    CHECK("lb sign-extends", r, (uint64_t)(int8_t)bytes[0]);
    __asm__ volatile("lbu %0, 0(%1)" : "=r"(r) : "r"(bytes));
    CHECK("lbu", r, bytes[0]);
    __asm__ volatile("lh %0, 2(%1)" : "=r"(r) : "r"(bytes));
    CHECK("lh", r, (uint64_t)(int16_t)expect_word(bytes + 2, 2));
    __asm__ volatile("lhu %0, 2(%1)" : "=r"(r) : "r"(bytes));
    CHECK("lhu", r, expect_word(bytes + 2, 2));
    __asm__ volatile("lw %0, 4(%1)" : "=r"(r) : "r"(bytes));
    CHECK("lw", r, (uint64_t)(int32_t)expect_word(bytes + 4, 4));
    __asm__ volatile("lwu %0, 4(%1)" : "=r"(r) : "r"(bytes));
    CHECK("lwu", r, expect_word(bytes + 4, 4));
    __asm__ volatile("ld %0, 8(%1)" : "=r"(r) : "r"(bytes));
    CHECK("ld", r, expect_word(bytes + 8, 8));
    /* The unaligned pairs at every offset: together they load/store the word at p. */
    for (int k = 0; k < 8; ++k) {
        const uint8_t* p = bytes + 8 + k;
#ifdef __MIPSEL__
        __asm__ volatile("lwr %0, 0(%1)\n lwl %0, 3(%1)" : "=&r"(r) : "r"(p));
        CHECK("lwl/lwr", r, (uint64_t)(int32_t)expect_word(p, 4));
        __asm__ volatile("ldr %0, 0(%1)\n ldl %0, 7(%1)" : "=&r"(r) : "r"(p));
        CHECK("ldl/ldr", r, expect_word(p, 8));
#else
        __asm__ volatile("lwl %0, 0(%1)\n lwr %0, 3(%1)" : "=&r"(r) : "r"(p));
        CHECK("lwl/lwr", r, (uint64_t)(int32_t)expect_word(p, 4));
        __asm__ volatile("ldl %0, 0(%1)\n ldr %0, 7(%1)" : "=&r"(r) : "r"(p));
        CHECK("ldl/ldr", r, expect_word(p, 8));
#endif
    }
    for (int k = 0; k < 8; ++k) {
        uint8_t* p = bytes + k;
        for (int i = 0; i < 32; ++i) bytes[i] = 0;
        const uint64_t v = 0x0102030405060708ull;
#ifdef __MIPSEL__
        __asm__ volatile("swr %0, 0(%1)\n swl %0, 3(%1)" ::"r"(v), "r"(p) : "memory");
#else
        __asm__ volatile("swl %0, 0(%1)\n swr %0, 3(%1)" ::"r"(v), "r"(p) : "memory");
#endif
        CHECK("swl/swr", expect_word(p, 4), 0x05060708);
        CHECK("swl/swr leave neighbours", bytes[k + 4] | (k ? bytes[k - 1] : 0), 0);
#ifdef __MIPSEL__
        __asm__ volatile("sdr %0, 8(%1)\n sdl %0, 15(%1)" ::"r"(v), "r"(p) : "memory");
#else
        __asm__ volatile("sdl %0, 8(%1)\n sdr %0, 15(%1)" ::"r"(v), "r"(p) : "memory");
#endif
        CHECK("sdl/sdr", expect_word(p + 8, 8), v);
    }
    /* LL/SC: success, and failure after an ERET in between (MD00087 SC). */
    uint64_t ok;
    __asm__ volatile(".set noreorder\n lld %0, 0(%2)\n daddiu %0, %0, 1\n scd %0, 0(%2)\n move %1, %0\n.set reorder"
                     : "=&r"(r), "=&r"(ok) : "r"(&cell) : "memory");
    CHECK("scd succeeds", ok, 1);
    CHECK("scd stored", cell, 42);
    uint64_t fpc, r8;
    RUN_FAULTING("dla $9, cell\n ll $8, 0($9)", "syscall", fpc, r8);
    __asm__ volatile("sc %0, 0(%1)" : "=r"(ok) : "r"(&cell), "0"(7ull) : "memory");
    CHECK("sc fails after eret", ok, 0);
    CHECK("failed sc does not store", cell, 42);
    __asm__ volatile("sync\n synci 0(%0)\n pref 0, 0(%0)\n cache 0x14, 0(%0)" ::"r"(bytes) : "memory");
}

/* ---- branches ------------------------------------------------------------------- */
static void test_branches(void) {
    uint64_t r = 0, link, here;
    __asm__ volatile(".set noreorder\n beql $0, %1, 1f\n addiu %0, %0, 1\n 1:\n.set reorder" : "+r"(r) : "r"(1ull));
    CHECK("branch-likely annuls its slot", r, 0);
    __asm__ volatile(".set noreorder\n beq $0, $0, 1f\n addiu %0, %0, 1\n addiu %0, %0, 10\n 1:\n.set reorder" : "+r"(r));
    CHECK("delay slot runs, branch skips", r, 1);
    __asm__ volatile(".set noreorder\n bal 1f\n nop\n 1: move %0, $31\n dla %1, 1b\n.set reorder" : "=r"(link), "=r"(here) :: "$31");
    CHECK("bal links past the delay slot", link, here);
    __asm__ volatile(".set noreorder\n dla $9, 1f\n jalr $10, $9\n nop\n 1: move %0, $10\n dla %1, 1b\n.set reorder"
                     : "=r"(link), "=r"(here) :: "$9", "$10");
    CHECK("jalr rd", link, here);
    r = 0;
    __asm__ volatile(".set noreorder\n bltzall %1, 1f\n addiu %0, %0, 1\n 1:\n.set reorder" : "+r"(r) : "r"(1ull) : "$31");
    CHECK("bltzall not taken annuls", r, 0);
    r = 0;
    __asm__ volatile(".set noreorder\n bgezal %1, 1f\n addiu %0, %0, 1\n addiu %0, %0, 5\n 1:\n.set reorder" : "+r"(r) : "r"(0ull) : "$31");
    CHECK("bgezal taken", r, 1);
}

/* ---- exceptions ----------------------------------------------------------------- */
static void test_exceptions(void) {
    EXPECT_EXC("syscall", 8, "", "syscall");
    EXPECT_EXC("break", 9, "", "break");
    EXPECT_EXC("teq", 13, "", "teq $0, $0");
    EXPECT_EXC("tge", 13, "li $9, 5", "tge $9, $0");
    EXPECT_EXC("tltiu", 13, "", "tltiu $0, 1");
    EXPECT_EXC("tnei", 13, "li $9, 1", "tnei $9, 0");
    EXPECT_EXC("reserved instruction", 10, "", ".word 0xec000000");
    EXPECT_EXC("add overflow", 12, "li $9, 0x7fffffff", "add $8, $9, $9");
    EXPECT_EXC("daddi overflow", 12, "dli $9, 0x7fffffffffffffff", "daddi $8, $9, 1");
    EXPECT_EXC("misaligned lw", 4, "dla $9, bytes", "lw $8, 1($9)");
    CHECK("AdEL BadVAddr", exc_record.badvaddr, (uint64_t)bytes + 1);
    EXPECT_EXC("misaligned sd", 5, "dla $9, bytes", "sd $8, 4($9)");
    EXPECT_EXC("cop2 unusable", 11, "", "lwc2 $1, 0($0)");
    CHECK("CpU CE=2", (exc_record.cause >> 28) & 3, 2);
    EXPECT_EXC("bus error on load", 7, "dli $9, 0xffffffffbf100000", "lw $8, 0($9)");
    /* A fault in a delay slot: EPC is the branch, Cause.BD set. */
    EXPECT_EXC("overflow in delay slot", 12, "li $9, 0x7fffffff", "b 9f\n add $8, $9, $9");
    CHECK("Cause.BD", (exc_record.cause >> 31) & 1, 1);
    /* Instruction bus error: EPC is the unfetchable address. */
    uint64_t fpc, r8, before = exc_record.count;
    RUN_FAULTING("dli $9, 0xffffffffbf100000", "jr $9", fpc, r8);
    check_exception("instruction bus error", before, 0xffffffffbf100000ull, 6, 0x180);
    /* FPU: unusable with CU1=0 (CE=1), and an enabled Invalid raises FPE. */
    const uint64_t st = MFC0(12, 0);
    MTC0(12, 0, st & ~(1ull << 29));
    EXPECT_EXC("cop1 unusable", 11, "", "add.s $f0, $f0, $f0");
    CHECK("CpU CE=1", (exc_record.cause >> 28) & 3, 1);
    MTC0(12, 0, st);
    EXPECT_EXC("fpe invalid", 15, "dli $8, 0xbff0000000000000\n dmtc1 $8, $f2\n li $9, 0x800\n ctc1 $9, $31",
               "sqrt.d $f0, $f2");
    uint64_t fcsr;
    __asm__ volatile(".set hardfloat\n cfc1 %0, $31\n ctc1 $0, $31" : "=r"(fcsr));
    CHECK("FCSR cause V", (fcsr >> 16) & 1, 1);
    /* EXL: EPC holds the first exception's address. */
    CHECK("Status.EXL set in handler", (exc_record.status >> 1) & 1, 1);
}

/* ---- TLB -------------------------------------------------------------------------- */
#define PFN(pa) (((uint64_t)(pa) >> 12) << 6)
#define LO_C (3 << 3)
#define LO_D 4
#define LO_V 2
#define LO_G 1
static void tlb_write(unsigned index, uint64_t hi, uint64_t lo0, uint64_t lo1, uint64_t mask) {
    MTC0(0, 0, index);
    MTC0(10, 0, hi);
    MTC0(2, 0, lo0);
    MTC0(3, 0, lo1);
    MTC0(5, 0, mask);
    __asm__ volatile("tlbwi\n ehb" ::: "memory");
}
static volatile uint32_t* kseg0(uint64_t pa) { return (volatile uint32_t*)(0xffffffff80000000ull + pa); }

static void test_tlb(void) {
    for (unsigned i = 0; i < 64; ++i) tlb_write(i, 0xffffffff80000000ull + (i << 13), 0, 0, 0);  /* harmless */
    MTC0(10, 0, 5);  /* ASID 5 */
    tlb_write(1, 0x10000000 | 5, PFN(0x400000) | LO_C | LO_D | LO_V, PFN(0x401000) | LO_C | LO_V, 0);
    *(volatile uint32_t*)0x10000000ull = 0xdeadbeef;
    CHECK("mapped store reaches memory", *kseg0(0x400000), 0xdeadbeef);
    *kseg0(0x401000) = 0x600df00d;
    CHECK("odd page", *(volatile uint32_t*)0x10001000ull, 0x600df00d);
    EXPECT_EXC("store to clean page", 1, "li $9, 0x10001000", "sw $0, 0($9)");
    CHECK("Mod BadVAddr", exc_record.badvaddr, 0x10001000);
    CHECK("Mod EntryHi VPN2", exc_record.entryhi, 0x10000000 | 5);
    MTC0(10, 0, 0x10000000 | 5);
    __asm__ volatile("tlbp\n ehb");
    CHECK("tlbp finds", MFC0(0, 0), 1);
    MTC0(10, 0, 0x20000000 | 5);
    __asm__ volatile("tlbp\n ehb");
    CHECK("tlbp misses", MFC0(0, 0) >> 31, 1);
    MTC0(0, 0, 1);
    __asm__ volatile("tlbr\n ehb");
    CHECK("tlbr EntryLo0", MFC0(2, 0), PFN(0x400000) | LO_C | LO_D | LO_V);
    CHECK("tlbr EntryHi", MFC0(10, 0), 0x10000000 | 5);
    /* Refill: through the XTLB vector when UX=1, the 32-bit one when UX=0. */
    uint64_t fpc, r8, before = exc_record.count;
    RUN_FAULTING("li $9, 0x30000000", "lw $8, 0($9)", fpc, r8);
    check_exception("refill (UX=1)", before, fpc, 2, 0x080);
    CHECK("refill Context BadVPN2", (MFC0(4, 0) >> 4) & 0x7ffff, 0x30000000 >> 13);
    CHECK("refill XContext BadVPN2", (MFC0(20, 0) >> 4) & 0x1fffffff, 0x30000000 >> 13);
    const uint64_t st = MFC0(12, 0);
    MTC0(12, 0, st & ~(1ull << 5));
    before = exc_record.count;
    RUN_FAULTING("li $9, 0x30000000", "sw $8, 0($9)", fpc, r8);
    check_exception("refill (UX=0)", before, fpc, 3, 0x000);
    MTC0(12, 0, st);
    /* ASID: a non-global entry does not match another ASID; a global one does. */
    MTC0(10, 0, 6);
    before = exc_record.count;
    RUN_FAULTING("li $9, 0x10000000", "lw $8, 0($9)", fpc, r8);
    check_exception("other ASID misses", before, fpc, 2, 0x080);
    tlb_write(1, 0x10000000 | 5, PFN(0x400000) | LO_C | LO_D | LO_V | LO_G, PFN(0x401000) | LO_C | LO_V | LO_G, 0);
    MTC0(10, 0, 6);
    CHECK("global entry matches any ASID", *(volatile uint32_t*)0x10000000ull, 0xdeadbeef);
    /* Invalid entry: TLBL through the general vector. */
    tlb_write(2, 0x20000000 | 6, 0, 0, 0);
    EXPECT_EXC("invalid entry", 2, "li $9, 0x20000000", "lw $8, 0($9)");
    /* 16 KiB pages (PageMask 0x6000). */
    tlb_write(3, 0x40000000 | 6, PFN(0x500000) | LO_C | LO_D | LO_V, PFN(0x504000) | LO_C | LO_D | LO_V, 0x6000);
    *kseg0(0x504000 + 0x1234 * 0 + 0x10) = 0x16161616;
    CHECK("16K odd page", *(volatile uint32_t*)(0x40004010ull), 0x16161616);
    *(volatile uint32_t*)0x40003ffcull = 0x77;
    CHECK("16K even page end", *kseg0(0x503ffc), 0x77);
    /* RI/XI with PageGrain.RIE|XIE|IEC. */
    MTC0(5, 1, (1ull << 31) | (1ull << 30) | (1ull << 27));
    tlb_write(4, 0x50000000 | 6, PFN(0x510000) | LO_C | LO_D | LO_V | (1ull << 63), PFN(0x511000) | LO_C | LO_D | LO_V | (1ull << 62), 0);
    EXPECT_EXC("read-inhibit", 19, "li $9, 0x50000000", "lw $8, 0($9)");
    *kseg0(0x511000) = 0x03e00008; /* jr ra */
    *kseg0(0x511004) = 0;
    before = exc_record.count;
    RUN_FAULTING("li $9, 0x50001000", "jalr $9", fpc, r8);
    check_exception("execute-inhibit", before, 0x50001000, 20, 0x180);
    MTC0(5, 1, 0);
    /* User mode: ERET to mapped user code; SYSCALL, AdEL on kernel addresses,
     * CpU on CP0, RDHWR with and without HWREna. */
    tlb_write(5, 0x00600000 | 6, PFN(0x600000) | LO_C | LO_D | LO_V, 0, 0);
    volatile uint32_t* user = kseg0(0x600000);
    user[0] = 0x0000000c;               /* syscall */
    user[1] = 0x3c098000;               /* lui $9, 0x8000 */
    user[2] = 0x8d280000;               /* lw $8, 0($9) */
    user[3] = 0x40086000;               /* mfc0 $8, $12 */
    user[4] = 0x7c08e83b;               /* rdhwr $8, $29 */
    user[5] = 0x0000000c;               /* syscall */
/* User mode without CU0, so that CP0 and RDHWR are really privileged. */
#define ENTER_USER(pc) "dli $8, " #pc "\n dmtc0 $8, $14\n mfc0 $9, $12\n ori $9, $9, 0x12\n li $10, ~(1 << 28)\n and $9, $9, $10\n mtc0 $9, $12\n ehb"
    before = exc_record.count;
    RUN_FAULTING(ENTER_USER(0x600000), "eret", fpc, r8);
    check_exception("user syscall", before, 0x600000, 8, 0x180);
    CHECK("user mode at the exception", (exc_record.status >> 3) & 3, 2);
    before = exc_record.count;
    RUN_FAULTING(ENTER_USER(0x600004), "eret", fpc, r8);
    check_exception("user access to kseg0", before, 0x600008, 4, 0x180);
    CHECK("user AdEL BadVAddr", exc_record.badvaddr, 0xffffffff80000000ull);
    before = exc_record.count;
    RUN_FAULTING(ENTER_USER(0x60000c), "eret", fpc, r8);
    check_exception("user CP0 access", before, 0x60000c, 11, 0x180);
    before = exc_record.count;
    RUN_FAULTING(ENTER_USER(0x600010), "eret", fpc, r8);
    check_exception("user rdhwr disabled", before, 0x600010, 10, 0x180);
    MTC0(7, 0, 1ull << 29);  /* HWREna.ULR */
    MTC0(4, 2, 0x1234abcd);  /* UserLocal */
    before = exc_record.count;
    RUN_FAULTING(ENTER_USER(0x600010), "eret", fpc, r8);
    check_exception("user rdhwr enabled", before, 0x600014, 8, 0x180);
    CHECK("rdhwr ULR", r8, 0x1234abcd);
    MTC0(7, 0, 0);
    MTC0(10, 0, 0);
}

/* ---- CP0 identity, RDHWR in kernel mode, the timer ------------------------------------- */
static void test_cp0(void) {
    CHECK("PRId", MFC0(15, 0), 0x00010000);
    CHECK("Config1", MFC0(16, 1), 0xfe633181);
    CHECK("Config0 AT/AR/MT", MFC0(16, 0) & 0x7f80, 0x4480);
    uint64_t r;
    __asm__ volatile("rdhwr %0, $1" : "=r"(r));
    CHECK("rdhwr SYNCI_Step", r, 32);
    __asm__ volatile("rdhwr %0, $3" : "=r"(r));
    CHECK("rdhwr CCRes", r, 2);
    __asm__ volatile("rdhwr %0, $0" : "=r"(r));
    CHECK("rdhwr CPUNum", r, MFC0(15, 1) & 0x3ff);
    const uint64_t c0 = MFC0(9, 0);
    for (volatile int i = 0; i < 1000; ++i) {
    }
    CHECK("Count advances", MFC0(9, 0) != c0, 1);
    uint64_t old;
    __asm__ volatile("di %0\n ehb" : "=r"(old));
    CHECK("di returns Status", old, MFC0(12, 0));
    /* Count/Compare: Compare = Count + 50 us; WAIT until the interrupt. */
    MTC0(11, 0, MFC0(9, 0) + 5000);
    uint64_t fpc, r8, before = exc_record.count;
    RUN_FAULTING("mfc0 $9, $12\n ori $9, $9, 0x8001\n mtc0 $9, $12\n ehb", "wait", fpc, r8);
    check_exception("timer interrupt", before, fpc + 4, 0, 0x180);
    CHECK("Cause.IP7", (exc_record.cause >> 15) & 1, 1);
    CHECK("Cause.TI", (exc_record.cause >> 30) & 1, 1);
    MTC0(11, 0, MFC0(9, 0) - 1);
    CHECK("writing Compare clears TI", (MFC0(13, 0) >> 30) & 1, 0);
}

int main(void) {
    MTC0(15, 1, 0xffffffff80000000ull);  /* EBase: our vectors */
    test_alu();
    test_memory();
    test_branches();
    test_exceptions();
    test_tlb();
    test_cp0();
    put_str(failures ? "RESULT: FAIL (" : "RESULT: PASS (");
    put_dec(checks - failures);
    put_str(" of ");
    put_dec(checks);
    put_str(" checks passed)\n");
    return failures ? 1 : 0;
}
