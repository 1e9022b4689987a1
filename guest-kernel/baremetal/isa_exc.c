/* Synchronous exceptions with their vector, EPC, BadVAddr and Cause
 * (ExcCode, BD, CE): SYSCALL, BREAK, every trap (taken and not), reserved
 * instructions, coprocessor unusable, address errors, bus errors, faults in
 * delay slots; and the privileged mechanics: EI/DI, EXL in the handler,
 * ERET, ERL with ErrorEPC (and the unmapped kuseg while ERL=1), WAIT. */
#include "isa.h"

static uint64_t aligned_buf[4];

/* $9 = the board's unbacked physical address seen through kseg1 */
#define UNBACKED_KSEG1_TO_9 "dla $9, platform_unbacked_phys\n ld $9, 0($9)\n lui $10, 0xa000\n or $9, $9, $10"
#define TRAP_TAKEN(name, setup, insn) EXPECT_EXC(name, EXC_TR, setup, insn)
#define TRAP_NOT_TAKEN(name, setup, insn) (void)EXPECT_NO_EXC(name, setup, insn)

void test_exceptions(void) {
    EXPECT_EXC("syscall", EXC_SYS, "", "syscall");
    CHECK("syscall BD clear", exc_record.cause >> 31, 0);
    CHECK("EXL set in the handler", (exc_record.status >> 1) & 1, 1);
    EXPECT_EXC("syscall code", EXC_SYS, "", "syscall 0x1234");
    EXPECT_EXC("break", EXC_BP, "", "break");
    EXPECT_EXC("break code", EXC_BP, "", "break 7");
    /* traps, register forms */
    TRAP_TAKEN("teq", "", "teq $0, $0");
    TRAP_NOT_TAKEN("teq not taken", "li $9, 1", "teq $9, $0");
    TRAP_TAKEN("tne", "li $9, 1", "tne $9, $0");
    TRAP_NOT_TAKEN("tne not taken", "", "tne $0, $0");
    TRAP_TAKEN("tge", "li $9, 5", "tge $9, $0");
    TRAP_TAKEN("tge equal", "", "tge $0, $0");
    TRAP_NOT_TAKEN("tge not taken", "li $9, -5", "tge $9, $0");
    TRAP_TAKEN("tgeu", "li $9, -5", "tgeu $9, $0");
    TRAP_NOT_TAKEN("tgeu not taken", "li $9, 5\n li $10, -1", "tgeu $9, $10");
    TRAP_TAKEN("tlt", "li $9, -5", "tlt $9, $0");
    TRAP_NOT_TAKEN("tlt not taken", "", "tlt $0, $0");
    TRAP_TAKEN("tltu", "li $9, -1", "tltu $0, $9");
    TRAP_NOT_TAKEN("tltu not taken", "li $9, -1", "tltu $9, $0");
    TRAP_TAKEN("tlt 64-bit", "dli $9, 0x8000000000000000", "tlt $9, $0");
    /* traps, immediate forms (the immediate is sign-extended) */
    TRAP_TAKEN("teqi", "li $9, -3", "teqi $9, -3");
    TRAP_NOT_TAKEN("teqi not taken", "", "teqi $0, 1");
    TRAP_TAKEN("tnei", "li $9, 1", "tnei $9, 0");
    TRAP_NOT_TAKEN("tnei not taken", "li $9, 9", "tnei $9, 9");
    TRAP_TAKEN("tgei", "", "tgei $0, -1");
    TRAP_NOT_TAKEN("tgei not taken", "li $9, -2", "tgei $9, -1");
    TRAP_TAKEN("tgeiu", "li $9, -1", "tgeiu $9, -1");
    TRAP_NOT_TAKEN("tgeiu not taken", "li $9, 100", "tgeiu $9, -1");
    TRAP_TAKEN("tlti", "li $9, -5", "tlti $9, -4");
    TRAP_NOT_TAKEN("tlti not taken", "", "tlti $0, 0");
    TRAP_TAKEN("tltiu", "", "tltiu $0, 1");
    TRAP_TAKEN("tltiu sign-extended immediate", "li $9, 100", "tltiu $9, -1");
    TRAP_NOT_TAKEN("tltiu not taken", "li $9, -1", "tltiu $9, 5");
    /* reserved instructions */
    EXPECT_EXC("reserved opcode", EXC_RI, "", ".word 0xec000000");
    EXPECT_EXC("reserved special", EXC_RI, "", ".word 0x0000000e");
    EXPECT_EXC("reserved special 0x39", EXC_RI, "", ".word 0x00000039");
    EXPECT_EXC("reserved regimm", EXC_RI, "", ".word 0x04050000");
    EXPECT_EXC("reserved special3", EXC_RI, "", ".word 0x7c000009");
    /* coprocessor unusable: CE says which */
    EXPECT_EXC("cop2 unusable", EXC_CPU, "", "lwc2 $1, 0($0)");
    CHECK("CpU CE=2", (exc_record.cause >> 28) & 3, 2);
    EXPECT_EXC("cop2 sdc2 unusable", EXC_CPU, "", "sdc2 $1, 0($0)");
    CHECK("CpU CE=2 for sdc2", (exc_record.cause >> 28) & 3, 2);
    /* COP2-opcode instructions (MFC2...) raise RI on QEMU 7.2 (it decodes
     * them as Loongson multimedia), CpU in the manual: not tested. */
    /* address errors; BadVAddr is the address */
    uint64_t buf = (uint64_t)aligned_buf;
    EXPECT_EXC("misaligned lw", EXC_ADEL, "dla $9, aligned_buf", "lw $8, 1($9)");
    CHECK("lw AdEL BadVAddr", exc_record.badvaddr, buf + 1);
    EXPECT_EXC("misaligned lh", EXC_ADEL, "dla $9, aligned_buf", "lh $8, 3($9)");
    CHECK("lh AdEL BadVAddr", exc_record.badvaddr, buf + 3);
    EXPECT_EXC("misaligned lhu", EXC_ADEL, "dla $9, aligned_buf", "lhu $8, 1($9)");
    EXPECT_EXC("misaligned lwu", EXC_ADEL, "dla $9, aligned_buf", "lwu $8, 2($9)");
    EXPECT_EXC("misaligned ld", EXC_ADEL, "dla $9, aligned_buf", "ld $8, 4($9)");
    CHECK("ld AdEL BadVAddr", exc_record.badvaddr, buf + 4);
    EXPECT_EXC("misaligned ll", EXC_ADEL, "dla $9, aligned_buf", "ll $8, 2($9)");
    EXPECT_EXC("misaligned lld", EXC_ADEL, "dla $9, aligned_buf", "lld $8, 4($9)");
    EXPECT_EXC("misaligned sw", EXC_ADES, "dla $9, aligned_buf", "sw $8, 2($9)");
    CHECK("sw AdES BadVAddr", exc_record.badvaddr, buf + 2);
    EXPECT_EXC("misaligned sh", EXC_ADES, "dla $9, aligned_buf", "sh $8, 1($9)");
    EXPECT_EXC("misaligned sd", EXC_ADES, "dla $9, aligned_buf", "sd $8, 4($9)");
    CHECK("sd AdES BadVAddr", exc_record.badvaddr, buf + 4);
    /* Misaligned SC/SCD: AdES in the manual; QEMU 7.2 makes them fail
     * (rt = 0) without an exception, so neither is tested. */
    CHECK("misaligned stores write nothing", aligned_buf[0] | aligned_buf[1], 0);
    /* A fault in a delay slot: EPC is the branch, Cause.BD set, BadVAddr the data address. */
    EXPECT_EXC("overflow in delay slot", EXC_OV, "li $9, 0x7fffffff", "b 9f\n add $8, $9, $9");
    CHECK("Cause.BD", (exc_record.cause >> 31) & 1, 1);
    EXPECT_EXC("AdEL in a jr delay slot", EXC_ADEL, "dla $9, aligned_buf\n dla $10, 9f", "jr $10\n lw $8, 2($9)");
    CHECK("AdEL in slot BD", (exc_record.cause >> 31) & 1, 1);
    CHECK("AdEL in slot BadVAddr", exc_record.badvaddr, buf + 2);
    EXPECT_EXC("syscall in a not-taken branch's slot", EXC_SYS, "li $9, 1", "beq $9, $0, 9f\n syscall");
    CHECK("BD for a not-taken branch", (exc_record.cause >> 31) & 1, 1);
    EXPECT_EXC("trap in a bal slot", EXC_TR, "", "bal 9f\n teq $0, $0");
    CHECK("trap in slot BD", (exc_record.cause >> 31) & 1, 1);
    /* A misaligned jump target: AdEL with EPC and BadVAddr the target. */
    uint64_t fpc, r8, before = exc_record.count;
    RUN_FAULTING("dla $9, 8f\n daddiu $9, $9, 10", "jr $9", fpc, r8);
    check_exception("misaligned jump target", before, fpc + 10, EXC_ADEL, VEC_GENERAL);
    CHECK("fetch AdEL BadVAddr", exc_record.badvaddr, fpc + 10);
    CHECK("fetch AdEL BD clear", exc_record.cause >> 31, 0);
    /* bus errors, where the board has an address that raises them */
    if (platform_unbacked_phys) {
        before = exc_record.count;
        RUN_FAULTING(UNBACKED_KSEG1_TO_9, "lw $8, 0($9)", fpc, r8);
        check_exception("bus error on load", before, fpc, EXC_DBE, VEC_GENERAL);
        before = exc_record.count;
        RUN_FAULTING(UNBACKED_KSEG1_TO_9, "jr $9", fpc, r8);
        check_exception("bus error on fetch", before, 0xffffffffa0000000ull | platform_unbacked_phys, EXC_IBE,
                        VEC_GENERAL);
    } else {
        note("no bus-error address on this board: DBE/IBE not tested");
    }
}

void test_privileged(void) {
    uint64_t old, st = MFC0(12, 0);
    __asm__ volatile("di %0\n ehb" : "=r"(old));
    CHECK("di returns the old Status", old, st);
    CHECK("di clears IE", MFC0(12, 0) & 1, 0);
    __asm__ volatile("ei %0\n ehb" : "=r"(old));
    CHECK("ei returns the old Status", old, st & ~1ull);
    CHECK("ei sets IE", MFC0(12, 0) & 1, 1);
    __asm__ volatile("di\n ehb");
    CHECK("di without rt", MFC0(12, 0) & 1, 0);
    /* ERET with EXL returns to EPC and clears EXL. */
    uint64_t r;
    __asm__ volatile(
        ".set push\n.set noreorder\n dla $9, 1f\n dmtc0 $9, $14\n mfc0 $9, $12\n ori $9, $9, 2\n mtc0 $9, $12\n ehb\n"
        " eret\n li %0, 1\n b 2f\n nop\n 1: mfc0 %0, $12\n 2:\n.set pop"
        : "=r"(r)::"$9");
    CHECK("eret clears EXL and jumps to EPC", (r >> 1) & 1, 0);
    /* ERET with ERL returns to ErrorEPC and clears only ERL; while ERL=1 the
     * low 2 GiB (kuseg) is unmapped: address = physical. */
    *kseg0_word(0x3000) = 0x13572468;
    uint64_t seen, status_after;
    __asm__ volatile(
        ".set push\n.set noreorder\n dla $9, 1f\n dmtc0 $9, $30\n mfc0 $9, $12\n ori $9, $9, 4\n mtc0 $9, $12\n ehb\n"
        " li $10, 0x3000\n lw %0, 0($10)\n"
        " eret\n li %1, 1\n b 2f\n nop\n 1: mfc0 %1, $12\n 2:\n.set pop"
        : "=&r"(seen), "=&r"(status_after)::"$9", "$10");
    CHECK("ERL: kuseg is unmapped", seen, 0x13572468);
    CHECK("eret clears ERL", (status_after >> 2) & 1, 0);
    CHECK("eret with ERL leaves EXL", (status_after >> 1) & 1, 0);
    /* WAIT with nothing pending and IE=0 is still an instruction that completes
     * once an interrupt is pending: tested with the timer (isa_cp0.c). */
}
