/* Loads and stores: every width with its extension, the unaligned pairs
 * LWL/LWR/LDL/LDR/SWL/SWR/SDL/SDR alone at every byte offset (merging into
 * the register or memory they leave partly unchanged), LL/SC and LLD/SCD,
 * and SYNC/SYNCI/CACHE/PREF as no-faults.
 *
 * The expected values of the unaligned instructions come from one model
 * that serves both byte orders: number the bytes of an aligned unit of n
 * bytes by significance j (0 = least significant); byte j lives at offset
 * j (little-endian) or n-1-j (big-endian). For an address whose byte has
 * significance j0 in its unit, the "left" instruction moves memory bytes of
 * significance 0..j0 to the register's bytes n-1-j0..n-1 (the most
 * significant end) and the "right" one memory bytes j0..n-1 to register
 * bytes 0..n-1-j0. The stores move the same bytes the other way. */
#include "isa.h"

static uint8_t bytes[64] __attribute__((aligned(16)));
static uint8_t model[64] __attribute__((aligned(16)));

static unsigned offset_of(unsigned j, unsigned n) { return BIG_ENDIAN_GUEST ? n - 1 - j : j; }

/* Value of n bytes at p in the guest's byte order. */
static uint64_t load_n(const uint8_t* p, unsigned n) {
    uint64_t v = 0;
    for (unsigned j = 0; j < n; ++j) v |= (uint64_t)p[offset_of(j, n)] << (8 * j);
    return v;
}

/* The register after LWL/LDL (left=1) or LWR/LDR (left=0) at p, unit size n. */
static uint64_t model_load(const uint8_t* p, unsigned n, int left, uint64_t old) {
    const uint8_t* unit = (const uint8_t*)((uintptr_t)p & ~(uintptr_t)(n - 1));
    const unsigned j0 = offset_of((unsigned)(p - unit), n);
    uint64_t v = old;
    const unsigned lo = left ? 0 : j0, hi = left ? j0 : n - 1;
    const unsigned shift = left ? n - 1 - j0 : 0;
    const int sub = left ? 0 : (int)j0;
    for (unsigned j = lo; j <= hi; ++j) {
        const unsigned dst = left ? j + shift : j - (unsigned)sub;
        v &= ~(0xffull << (8 * dst));
        v |= (uint64_t)unit[offset_of(j, n)] << (8 * dst);
    }
    return n == 4 ? (uint64_t)(int64_t)(int32_t)(uint32_t)v : v;
}

/* Memory after SWL/SDL (left=1) or SWR/SDR (left=0) of reg at p. */
static void model_store(uint8_t* p, unsigned n, int left, uint64_t reg) {
    uint8_t* unit = (uint8_t*)((uintptr_t)p & ~(uintptr_t)(n - 1));
    const unsigned j0 = offset_of((unsigned)(p - unit), n);
    const unsigned lo = left ? 0 : j0, hi = left ? j0 : n - 1;
    for (unsigned j = lo; j <= hi; ++j) {
        const unsigned src = left ? j + (n - 1 - j0) : j - j0;
        unit[offset_of(j, n)] = (uint8_t)(reg >> (8 * src));
    }
}

static void fill(uint8_t* b) {
    for (int i = 0; i < 64; ++i) b[i] = (uint8_t)(0x81 + i * 7);
}

static int same_bytes(void) {
    for (int i = 0; i < 64; ++i)
        if (bytes[i] != model[i]) return 0;
    return 1;
}

#define LOAD(insn, off)                                                                \
    ({                                                                                 \
        uint64_t r_;                                                                   \
        __asm__ volatile(insn " %0, " #off "(%1)" : "=r"(r_) : "r"(bytes) : "memory"); \
        r_;                                                                            \
    })
#define MERGE(insn, p, old)                                                 \
    ({                                                                      \
        uint64_t r_ = (old);                                                \
        __asm__ volatile(insn " %0, 0(%1)" : "+r"(r_) : "r"(p) : "memory"); \
        r_;                                                                 \
    })
#define STORE(insn, p, v) __asm__ volatile(insn " %0, 0(%1)" ::"r"((uint64_t)(v)), "r"(p) : "memory")

void test_memory(void) {
    fill(bytes);
    CHECK("lb sign-extends", LOAD("lb", 0), (uint64_t)(int8_t)bytes[0]);
    CHECK("lb positive", LOAD("lb", 5), (uint64_t)(int8_t)bytes[5]);
    CHECK("lbu", LOAD("lbu", 0), bytes[0]);
    CHECK("lh", LOAD("lh", 2), (uint64_t)(int16_t)load_n(bytes + 2, 2));
    CHECK("lhu", LOAD("lhu", 2), load_n(bytes + 2, 2));
    CHECK("lh 6", LOAD("lh", 6), (uint64_t)(int16_t)load_n(bytes + 6, 2));
    CHECK("lw", LOAD("lw", 4), (uint64_t)(int64_t)(int32_t)load_n(bytes + 4, 4));
    CHECK("lwu", LOAD("lwu", 4), load_n(bytes + 4, 4));
    CHECK("ld", LOAD("ld", 8), load_n(bytes + 8, 8));
    CHECK("ld negative offset", ({
              uint64_t r_;
              __asm__ volatile("ld %0, -8(%1)" : "=r"(r_) : "r"(bytes + 16));
              r_;
          }),
          load_n(bytes + 8, 8));
    /* stores of every width, checked byte by byte */
    fill(bytes);
    fill(model);
    STORE("sb", bytes + 3, 0x1234567890abcdefull);
    model[3] = 0xef;
    STORE("sh", bytes + 6, 0x1234567890abcdefull);
    model[6 + offset_of(0, 2)] = 0xef;
    model[6 + offset_of(1, 2)] = 0xcd;
    STORE("sw", bytes + 12, 0x1234567890abcdefull);
    for (unsigned j = 0; j < 4; ++j) model[12 + offset_of(j, 4)] = (uint8_t)(0x90abcdefu >> (8 * j));
    STORE("sd", bytes + 16, 0x1234567890abcdefull);
    for (unsigned j = 0; j < 8; ++j) model[16 + offset_of(j, 8)] = (uint8_t)(0x1234567890abcdefull >> (8 * j));
    CHECK("sb/sh/sw/sd bytes", same_bytes(), 1);
    /* the unaligned loads alone, at every offset, merging into a register */
    const uint64_t old = 0xa5a5a5a5a5a5a5a5ull, old2 = 0x5a5a5a5a5a5a5a5aull;
    fill(bytes);
    for (int k = 0; k < 16; ++k) {
        const uint8_t* p = bytes + 16 + k;
        CHECK("lwl", MERGE("lwl", p, old), model_load(p, 4, 1, old));
        CHECK("lwl", MERGE("lwl", p, old2), model_load(p, 4, 1, old2));
        CHECK("lwr", MERGE("lwr", p, old), model_load(p, 4, 0, old));
        CHECK("lwr", MERGE("lwr", p, old2), model_load(p, 4, 0, old2));
        CHECK("ldl", MERGE("ldl", p, old), model_load(p, 8, 1, old));
        CHECK("ldr", MERGE("ldr", p, old), model_load(p, 8, 0, old));
    }
    /* the pairs: an unaligned word or doubleword at every offset */
    for (int k = 0; k < 8; ++k) {
        const uint8_t* p = bytes + 8 + k;
        uint64_t r;
        if (BIG_ENDIAN_GUEST)
            __asm__ volatile("lwl %0, 0(%1)\n lwr %0, 3(%1)" : "=&r"(r) : "r"(p));
        else
            __asm__ volatile("lwr %0, 0(%1)\n lwl %0, 3(%1)" : "=&r"(r) : "r"(p));
        CHECK("lwl/lwr pair", r, (uint64_t)(int64_t)(int32_t)load_n(p, 4));
        if (BIG_ENDIAN_GUEST)
            __asm__ volatile("ldl %0, 0(%1)\n ldr %0, 7(%1)" : "=&r"(r) : "r"(p));
        else
            __asm__ volatile("ldr %0, 0(%1)\n ldl %0, 7(%1)" : "=&r"(r) : "r"(p));
        CHECK("ldl/ldr pair", r, load_n(p, 8));
    }
    /* the unaligned stores alone, at every offset */
    const uint64_t v = 0x0102030405060708ull;
    static const struct {
        const char* name;
        unsigned n;
        int left;
    } stores[] = {{"swl", 4, 1}, {"swr", 4, 0}, {"sdl", 8, 1}, {"sdr", 8, 0}};
    for (int s = 0; s < 4; ++s)
        for (int k = 0; k < 16; ++k) {
            fill(bytes);
            fill(model);
            uint8_t* p = bytes + 16 + k;
            switch (s) {
                case 0:
                    STORE("swl", p, v);
                    break;
                case 1:
                    STORE("swr", p, v);
                    break;
                case 2:
                    STORE("sdl", p, v);
                    break;
                default:
                    STORE("sdr", p, v);
                    break;
            }
            model_store(model + 16 + k, stores[s].n, stores[s].left, v);
            CHECK(stores[s].name, same_bytes(), 1);
        }
    /* the store pairs */
    for (int k = 0; k < 8; ++k) {
        uint8_t* p = bytes + 8 + k;
        fill(bytes);
        if (BIG_ENDIAN_GUEST)
            __asm__ volatile("swl %0, 0(%1)\n swr %0, 3(%1)" ::"r"(v), "r"(p) : "memory");
        else
            __asm__ volatile("swr %0, 0(%1)\n swl %0, 3(%1)" ::"r"(v), "r"(p) : "memory");
        CHECK("swl/swr pair", load_n(p, 4), 0x05060708);
        CHECK("swl/swr pair leaves neighbours",
              p[-1] == (uint8_t)(0x81 + (8 + k - 1) * 7) && p[4] == (uint8_t)(0x81 + (8 + k + 4) * 7), 1);
        if (BIG_ENDIAN_GUEST)
            __asm__ volatile("sdl %0, 16(%1)\n sdr %0, 23(%1)" ::"r"(v), "r"(p) : "memory");
        else
            __asm__ volatile("sdr %0, 16(%1)\n sdl %0, 23(%1)" ::"r"(v), "r"(p) : "memory");
        CHECK("sdl/sdr pair", load_n(p + 16, 8), v);
    }
    __asm__ volatile(
        "sync\n sync 0x10\n synci 0(%0)\n pref 0, 0(%0)\n pref 1, 64(%0)\n cache 0x14, 0(%0)\n cache 0x19, 0(%0)" ::"r"(
            bytes)
        : "memory");
    CHECK("sync/synci/pref/cache do not fault", exc_record.count == exc_record.count, 1);
}

uint64_t cell = 41;
int32_t cell32;

void test_llsc(void) {
    uint64_t r, ok;
    cell = 41;
    __asm__ volatile(".set noreorder\n lld %0, 0(%2)\n daddiu %0, %0, 1\n scd %0, 0(%2)\n move %1, %0\n.set reorder"
                     : "=&r"(r), "=&r"(ok)
                     : "r"(&cell)
                     : "memory");
    CHECK("scd succeeds", ok, 1);
    CHECK("scd stored", cell, 42);
    cell32 = -2;
    __asm__ volatile(".set noreorder\n ll %0, 0(%2)\n addiu %0, %0, 1\n sc %0, 0(%2)\n move %1, %0\n.set reorder"
                     : "=&r"(r), "=&r"(ok)
                     : "r"(&cell32)
                     : "memory");
    CHECK("sc succeeds", ok, 1);
    CHECK("sc stored", cell32, -1);
    __asm__ volatile("ll %0, 0(%1)" : "=r"(r) : "r"(&cell32));
    CHECK("ll sign-extends", r, ~0ull);
    /* An ERET between LL and SC clears LLbit: the SC fails and stores nothing. */
    uint64_t fpc, r8;
    RUN_FAULTING("dla $9, cell32\n ll $8, 0($9)", "syscall", fpc, r8);
    __asm__ volatile("sc %0, 0(%1)" : "=r"(ok) : "r"(&cell32), "0"(7ull) : "memory");
    CHECK("sc fails after eret", ok, 0);
    CHECK("failed sc does not store", cell32, -1);
    RUN_FAULTING("dla $9, cell\n lld $8, 0($9)", "syscall", fpc, r8);
    __asm__ volatile("scd %0, 0(%1)" : "=r"(ok) : "r"(&cell), "0"(7ull) : "memory");
    CHECK("scd fails after eret", ok, 0);
    CHECK("failed scd does not store", cell, 42);
    /* LLAddr: QEMU's MIPS64R2-generic reads back the physical address
     * itself (LLAddr_shift 0); MD00091 leaves the bits implementation-dependent. */
    __asm__ volatile("lld %0, 0(%1)" : "=r"(r) : "r"(&cell));
    CHECK("LLAddr", DMFC0(17, 0), (uint64_t)&cell & 0x1fffffff);
    __asm__ volatile("scd %0, 0(%1)" : "=r"(ok) : "r"(&cell), "0"(43ull) : "memory");
    CHECK("scd after lld", ok, 1);
}
