/* The self-checking ISA suite: framework and main(). The sections live in
 * isa_*.c; isa.h says how checks and exception expectations work. Expected
 * values come from the MIPS64 Release 2 manuals (MD00087, MD00091) and are
 * checked against QEMU's MIPS64R2-generic on its Malta board
 * (tests/guest/run-on-qemu.sh); where the manual leaves a result
 * UNPREDICTABLE the suite does not test it. One source serves both byte
 * orders: memory expectations are computed from byte arrays. */
#include "isa.h"

struct exc_record exc_record;
extern uint32_t boot_status; /* start.S */

static const char* section_name;
static unsigned checks, failures, section_checks, section_failures;

void check(const char* name, uint64_t got, uint64_t want) {
    ++checks;
    ++section_checks;
    if (got == want) return;
    ++failures;
    ++section_failures;
    put_str("FAIL ");
    put_str(section_name);
    put_str(": ");
    put_str(name);
    put_str(": expected ");
    put_hex(want);
    put_str(" got ");
    put_hex(got);
    put_str("\n");
}

void section_begin(const char* name) {
    section_name = name;
    section_checks = section_failures = 0;
}

void section_end(void) {
    put_str(section_failures ? "FAIL " : "PASS ");
    put_str(section_name);
    put_str(" (");
    if (section_failures) {
        put_dec(section_failures);
        put_str(" of ");
    }
    put_dec(section_checks);
    put_str(section_failures ? " checks failed)\n" : " checks)\n");
}

void note(const char* text) {
    put_str("note: ");
    put_str(text);
    put_str("\n");
}

void check_exception(const char* name, uint64_t before, uint64_t epc, unsigned code, uint64_t vector) {
    exc_record.resume = 0;
    const unsigned taken = (unsigned)(exc_record.count - before);
    CHECK(name, taken, 1);
    if (taken != 1) return; /* the rest would only repeat stale values */
    CHECK(name, (exc_record.cause >> 2) & 31, code);
    CHECK(name, exc_record.epc, epc);
    CHECK(name, exc_record.vector, vector);
}

#define RUN(fn, name)        \
    do {                     \
        section_begin(name); \
        fn();                \
        section_end();       \
    } while (0)

int main(void) {
    MTC0(15, 1, 0xffffffff80000000ull); /* EBase: our vectors (CPUNum is read-only) */
    put_str("ISA suite on ");
    put_str(platform_name);
    put_str(BIG_ENDIAN_GUEST ? ", big-endian; Status at entry " : ", little-endian; Status at entry ");
    put_hex(boot_status);
    put_str("\n");
    RUN(test_alu, "alu");
    RUN(test_muldiv, "muldiv");
    RUN(test_bitops, "bitops");
    RUN(test_memory, "memory");
    RUN(test_llsc, "llsc");
    RUN(test_branches, "branches");
    RUN(test_exceptions, "exceptions");
    RUN(test_privileged, "privileged");
    RUN(test_tlb, "tlb");
    RUN(test_user, "user");
    RUN(test_cp0, "cp0");
    RUN(test_timer, "timer");
    RUN(test_fpu, "fpu");
    put_str(failures ? "RESULT: FAIL (" : "RESULT: PASS (");
    put_dec(checks - failures);
    put_str(" of ");
    put_dec(checks);
    put_str(" checks passed)\n");
    return failures ? 1 : 0;
}
