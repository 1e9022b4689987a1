/* Branches and jumps: every conditional branch taken and not taken, the
 * branch-likely forms (delay slot annulled when not taken), the linking
 * forms (the link is written whether or not the branch is taken), J, JAL,
 * JR, JALR (with rd), JR.HB, JALR.HB, and delay-slot semantics: the slot
 * runs before the target, the branch reads its registers before the slot
 * writes them, and the slot sees the link register already written. */
#include "isa.h"

/* Result bits: 1 = delay slot ran, 2 = fell through (not taken). */
#define BR2(insn, a, b)                                                              \
    ({                                                                               \
        uint64_t r_ = 0;                                                             \
        __asm__ volatile(".set push\n.set noreorder\n" insn                          \
                         " %1, %2, 1f\n ori %0, %0, 1\n ori %0, %0, 2\n1:\n.set pop" \
                         : "+r"(r_)                                                  \
                         : "r"((uint64_t)(a)), "r"((uint64_t)(b))                    \
                         : "$31");                                                   \
        r_;                                                                          \
    })
#define BR1(insn, a)                                                                                                \
    ({                                                                                                              \
        uint64_t r_ = 0;                                                                                            \
        __asm__ volatile(".set push\n.set noreorder\n" insn " %1, 1f\n ori %0, %0, 1\n ori %0, %0, 2\n1:\n.set pop" \
                         : "+r"(r_)                                                                                 \
                         : "r"((uint64_t)(a))                                                                       \
                         : "$31");                                                                                  \
        r_;                                                                                                         \
    })
enum { TAKEN = 1, NOT_TAKEN = 3, LIKELY_NOT_TAKEN = 2 };

/* A linking branch: returns $31 minus the address of the branch (8 expected). */
#define LINK1(insn, a)                                                            \
    ({                                                                            \
        uint64_t l_, h_;                                                          \
        __asm__ volatile(".set push\n.set noreorder\n 2: " insn                   \
                         " %2, 1f\n nop\n 1: move %0, $31\n dla %1, 2b\n.set pop" \
                         : "=r"(l_), "=r"(h_)                                     \
                         : "r"((uint64_t)(a))                                     \
                         : "$31");                                                \
        l_ - h_;                                                                  \
    })

void test_branches(void) {
    CHECK("beq taken", BR2("beq", 5, 5), TAKEN);
    CHECK("beq not taken", BR2("beq", 5, 6), NOT_TAKEN);
    CHECK("beq compares 64 bits", BR2("beq", 1, 1ull | (1ull << 32)), NOT_TAKEN);
    CHECK("bne taken", BR2("bne", 5, 6), TAKEN);
    CHECK("bne not taken", BR2("bne", 5, 5), NOT_TAKEN);
    CHECK("beql taken", BR2("beql", 5, 5), TAKEN);
    CHECK("beql not taken annuls", BR2("beql", 5, 6), LIKELY_NOT_TAKEN);
    CHECK("bnel taken", BR2("bnel", 5, 6), TAKEN);
    CHECK("bnel not taken annuls", BR2("bnel", 5, 5), LIKELY_NOT_TAKEN);
    CHECK("blez taken (0)", BR1("blez", 0), TAKEN);
    CHECK("blez taken (<0)", BR1("blez", -1ll), TAKEN);
    CHECK("blez not taken", BR1("blez", 1), NOT_TAKEN);
    CHECK("blez 64-bit", BR1("blez", 1ull << 40), NOT_TAKEN);
    CHECK("bgtz taken", BR1("bgtz", 1ull << 40), TAKEN);
    CHECK("bgtz not taken (0)", BR1("bgtz", 0), NOT_TAKEN);
    CHECK("bgtz not taken (<0)", BR1("bgtz", 0x8000000000000000ull), NOT_TAKEN);
    CHECK("bltz taken", BR1("bltz", 0x8000000000000000ull), TAKEN);
    CHECK("bltz not taken", BR1("bltz", 0), NOT_TAKEN);
    CHECK("bltz 64-bit sign", BR1("bltz", 0x80000000ull), NOT_TAKEN);
    CHECK("bgez taken (0)", BR1("bgez", 0), TAKEN);
    CHECK("bgez not taken", BR1("bgez", -5ll), NOT_TAKEN);
    CHECK("blezl taken", BR1("blezl", 0), TAKEN);
    CHECK("blezl not taken annuls", BR1("blezl", 1), LIKELY_NOT_TAKEN);
    CHECK("bgtzl taken", BR1("bgtzl", 1), TAKEN);
    CHECK("bgtzl not taken annuls", BR1("bgtzl", 0), LIKELY_NOT_TAKEN);
    CHECK("bltzl taken", BR1("bltzl", -1ll), TAKEN);
    CHECK("bltzl not taken annuls", BR1("bltzl", 0), LIKELY_NOT_TAKEN);
    CHECK("bgezl taken", BR1("bgezl", 0), TAKEN);
    CHECK("bgezl not taken annuls", BR1("bgezl", -1ll), LIKELY_NOT_TAKEN);
    CHECK("bltzal taken", BR1("bltzal", -1ll), TAKEN);
    CHECK("bltzal not taken", BR1("bltzal", 1), NOT_TAKEN);
    CHECK("bgezal taken", BR1("bgezal", 0), TAKEN);
    CHECK("bgezal not taken", BR1("bgezal", -1ll), NOT_TAKEN);
    CHECK("bltzall taken", BR1("bltzall", -1ll), TAKEN);
    CHECK("bltzall not taken annuls", BR1("bltzall", 1), LIKELY_NOT_TAKEN);
    CHECK("bgezall taken", BR1("bgezall", 1), TAKEN);
    CHECK("bgezall not taken annuls", BR1("bgezall", -1ll), LIKELY_NOT_TAKEN);
    CHECK("bltzal links when taken", LINK1("bltzal", -1ll), 8);
    CHECK("bltzal links when not taken", LINK1("bltzal", 1), 8);
    CHECK("bgezal links when not taken", LINK1("bgezal", -1ll), 8);
    CHECK("bgezall links when not taken", LINK1("bgezall", -1ll), 8);
    CHECK("bltzall links", LINK1("bltzall", -1ll), 8);

    uint64_t link, here, r;
    __asm__ volatile(".set noreorder\n bal 1f\n nop\n 1: move %0, $31\n dla %1, 1b\n.set reorder"
                     : "=r"(link), "=r"(here)::"$31");
    CHECK("bal links past the delay slot", link, here);
    __asm__ volatile(".set noreorder\n jal 1f\n nop\n 1: move %0, $31\n dla %1, 1b\n.set reorder"
                     : "=r"(link), "=r"(here)::"$31");
    CHECK("jal", link, here);
    r = 0;
    __asm__ volatile(".set noreorder\n j 1f\n ori %0, %0, 1\n ori %0, %0, 2\n 1:\n.set reorder" : "+r"(r));
    CHECK("j", r, 1);
    r = 0;
    __asm__ volatile(".set noreorder\n dla $9, 1f\n jr $9\n ori %0, %0, 1\n ori %0, %0, 2\n 1:\n.set reorder"
                     : "+r"(r)::"$9");
    CHECK("jr", r, 1);
    r = 0;
    __asm__ volatile(".set noreorder\n dla $9, 1f\n jr.hb $9\n ori %0, %0, 1\n ori %0, %0, 2\n 1:\n.set reorder"
                     : "+r"(r)::"$9");
    CHECK("jr.hb", r, 1);
    __asm__ volatile(".set noreorder\n dla $9, 1f\n jalr $9\n nop\n 1: move %0, $31\n dla %1, 1b\n.set reorder"
                     : "=r"(link), "=r"(here)::"$9", "$31");
    CHECK("jalr", link, here);
    __asm__ volatile(".set noreorder\n dla $9, 1f\n jalr $10, $9\n nop\n 1: move %0, $10\n dla %1, 1b\n.set reorder"
                     : "=r"(link), "=r"(here)::"$9", "$10");
    CHECK("jalr rd", link, here);
    __asm__ volatile(".set noreorder\n dla $9, 1f\n jalr.hb $10, $9\n nop\n 1: move %0, $10\n dla %1, 1b\n.set reorder"
                     : "=r"(link), "=r"(here)::"$9", "$10");
    CHECK("jalr.hb", link, here);
    /* delay-slot semantics */
    r = 0;
    __asm__ volatile(
        ".set noreorder\n li $9, 0\n beq $9, $0, 1f\n li $9, 1\n ori %0, %0, 2\n 1: or %0, %0, $9\n.set reorder"
        : "+r"(r)::"$9");
    CHECK("branch reads rs before its slot writes it", r, 1);
    r = 0;
    __asm__ volatile(
        ".set noreorder\n dla $9, 1f\n dla $10, 2f\n jr $9\n move $9, $10\n 1: ori %0, %0, 1\n 2:\n.set reorder"
        : "+r"(r)::"$9", "$10");
    CHECK("jr reads rs before its slot writes it", r, 1);
    __asm__ volatile(".set noreorder\n dla $9, 1f\n jalr $10, $9\n move %0, $10\n 1: dla %1, 1b\n.set reorder"
                     : "=r"(link), "=r"(here)::"$9", "$10");
    CHECK("the slot sees jalr's link", link, here);
    __asm__ volatile(".set noreorder\n bal 1f\n move %0, $31\n 1: dla %1, 1b\n.set reorder"
                     : "=r"(link), "=r"(here)::"$31");
    CHECK("the slot sees bal's link", link, here);
    r = 0;
    __asm__ volatile(".set noreorder\n b 1f\n ori %0, %0, 4\n ori %0, %0, 2\n 1: ori %0, %0, 1\n.set reorder"
                     : "+r"(r));
    CHECK("slot runs, then the target", r, 5);
    /* a short loop counted by a branch whose slot does the work */
    r = 0;
    __asm__ volatile(".set noreorder\n li $9, 10\n 1: addiu $9, $9, -1\n bnez $9, 1b\n daddiu %0, %0, 3\n.set reorder"
                     : "+r"(r)::"$9");
    CHECK("loop with work in the slot", r, 30);
}
