/* The ISA suite's framework: checks, CP0 access, and running an
 * instruction that must (or must not) raise an exception.
 *
 * Every section (isa_*.c) calls CHECK(name, got, want); a mismatch prints
 * `FAIL name: expected X got Y`, and each section ends with
 * `PASS section (N checks)` or `FAIL section (M of N checks failed)`.
 * main() prints `RESULT: PASS|FAIL` and exits with 0 only if all passed.
 *
 * Exceptions: isa_vectors.S records Cause, EPC, BadVAddr, EntryHi, Status,
 * Context, XContext and the vector's offset in exc_record and resumes at
 * exc_record.resume (kernel mode, EXL/IE clear). RUN_FAULTING sets the
 * resume address just past the instruction under test, so one macro covers
 * "raises exactly this exception here" and "raises nothing". */
#ifndef DISCO_ISA_H
#define DISCO_ISA_H
#include "platform.h"

struct exc_record {
    uint64_t cause, epc, badvaddr, count, vector, resume, entryhi, status, context, xcontext;
};
extern struct exc_record exc_record;

void check(const char* name, uint64_t got, uint64_t want);
#define CHECK(name, got, want) check(name, (uint64_t)(got), (uint64_t)(want))
void section_begin(const char* name);
void section_end(void);
void note(const char* text);

/* 32-bit CP0 registers through MFC0/MTC0 (the value zero-extended here, to
 * compare with plain constants); the 64-bit ones (EntryLo, Context, EntryHi,
 * XContext, EPC, ErrorEPC, BadVAddr, LLAddr, UserLocal) through DMFC0/DMTC0.
 * DMFC0 of a 32-bit register is UNPREDICTABLE in the manual. */
#define MFC0(reg, sel)                                            \
    ({                                                            \
        uint64_t v_;                                              \
        __asm__ volatile("mfc0 %0, $" #reg ", " #sel : "=r"(v_)); \
        (uint64_t)(uint32_t) v_;                                  \
    })
#define MTC0(reg, sel, v) __asm__ volatile("mtc0 %0, $" #reg ", " #sel "\n\tehb" ::"r"((uint64_t)(v)) : "memory")
#define DMFC0(reg, sel)                                            \
    ({                                                             \
        uint64_t v_;                                               \
        __asm__ volatile("dmfc0 %0, $" #reg ", " #sel : "=r"(v_)); \
        v_;                                                        \
    })
#define DMTC0(reg, sel, v) __asm__ volatile("dmtc0 %0, $" #reg ", " #sel "\n\tehb" ::"r"((uint64_t)(v)) : "memory")
#define CONFIG3_ULRI (1u << 13)
#define CONFIG3_RXI (1u << 12)

/* Exception codes (Cause.ExcCode). */
enum {
    EXC_INT = 0,
    EXC_MOD = 1,
    EXC_TLBL = 2,
    EXC_TLBS = 3,
    EXC_ADEL = 4,
    EXC_ADES = 5,
    EXC_IBE = 6,
    EXC_DBE = 7,
    EXC_SYS = 8,
    EXC_BP = 9,
    EXC_RI = 10,
    EXC_CPU = 11,
    EXC_OV = 12,
    EXC_TR = 13,
    EXC_FPE = 15,
    EXC_TLBRI = 19,
    EXC_TLBXI = 20,
};
/* Vector offsets from EBase. */
enum { VEC_REFILL = 0x000, VEC_XREFILL = 0x080, VEC_GENERAL = 0x180, VEC_INTERRUPT = 0x200 };

/* Runs `setup` then `insn` (at local label 8), which is followed by a nop;
 * an exception resumes at label 9 just after that nop. Yields the address of
 * insn in fault_pc and $8 (after the exception or the nop) in r8. setup and
 * insn may use $1, $8-$11, $24, $25, $31. */
#define RUN_FAULTING(setup, insn, fault_pc, r8)                           \
    __asm__ volatile(                                                     \
        ".set push\n.set noreorder\n.set noat\n.set hardfloat\n"          \
        "dla $24, 9f\n dla $25, exc_record\n sd $24, 40($25)\n" setup     \
        "\n"                                                              \
        "dla %0, 8f\n"                                                    \
        "8: " insn                                                        \
        "\n nop\n"                                                        \
        "9: move %1, $8\n dla $25, exc_record\n sd $0, 40($25)\n.set pop" \
        : "=&r"(fault_pc), "=&r"(r8)                                      \
        :                                                                 \
        : "$1", "$8", "$9", "$10", "$11", "$24", "$25", "$31", "memory")

/* Checks that exactly one exception was taken since `before`, with this code,
 * EPC and vector. */
void check_exception(const char* name, uint64_t before, uint64_t epc, unsigned code, uint64_t vector);

/* `insn` raises `code` through the general vector with EPC = insn. */
#define EXPECT_EXC(name, code, setup, insn)                      \
    do {                                                         \
        uint64_t fpc_, r8_, before_ = exc_record.count;          \
        RUN_FAULTING(setup, insn, fpc_, r8_);                    \
        (void)r8_;                                               \
        check_exception(name, before_, fpc_, code, VEC_GENERAL); \
    } while (0)

/* `insn` raises nothing; yields $8 afterwards. */
#define EXPECT_NO_EXC(name, setup, insn)                              \
    ({                                                                \
        uint64_t fpc_, r8_, before_ = exc_record.count;               \
        RUN_FAULTING(setup, insn, fpc_, r8_);                         \
        (void)fpc_;                                                   \
        CHECK(name " (no exception)", exc_record.count - before_, 0); \
        r8_;                                                          \
    })

static inline volatile uint32_t* kseg0_word(uint64_t pa) { return (volatile uint32_t*)(0xffffffff80000000ull + pa); }

#ifdef __MIPSEL__
#define BIG_ENDIAN_GUEST 0
#else
#define BIG_ENDIAN_GUEST 1
#endif

void test_alu(void);
void test_muldiv(void);
void test_bitops(void);
void test_memory(void);
void test_llsc(void);
void test_branches(void);
void test_exceptions(void);
void test_privileged(void);
void test_tlb(void);
void test_user(void);
void test_cp0(void);
void test_timer(void);
void test_fpu(void);
#endif
