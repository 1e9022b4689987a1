/* Start-up for bare-metal guests on Disco's bare-metal board
 * (guest-kernel/README.md) and QEMU's Malta: clear BEV and ERL so exceptions
 * use our vectors at EBase, enable the FPU (CU1, FR=1), give each vCPU a stack and call main();
 * main's return value is reported through the test device. vCPUs other than
 * 0 call secondary_main() when it is defined, else park in WAIT. */
#include "regdef.h"
    .set noreorder
    .set noat
    .section .text.start, "ax"
    .globl _start
_start:
    mfc0    t0, $12                 /* keep the Status we were entered with */
    lui     t1, %hi(boot_status)
    sw      t0, %lo(boot_status)(t1)
    /* A known Status whatever the boot path left: BEV and ERL clear (QEMU's
     * Malta enters with Status = BEV only: no CU0, KX, SX, UX), kernel mode, interrupts off,
     * CU0|CU1|FR|KX|SX|UX. */
    li      t0, 0x340000e0
    mtc0    t0, $12
    ehb
    mfc0    t2, $15, 1              /* EBase: CPUNum in bits 9:0 */
    andi    t2, t2, 0x3ff
    sltiu   t3, t2, MAX_CPUS
    beqz    t3, park
    nop
    dla     sp, stacks_top
    dsll    t3, t2, 14              /* 16 KiB of stack per vCPU */
    dsubu   sp, sp, t3
    bnez    t2, secondary
    nop
    jal     main
    nop
    move    a0, v0
    jal     platform_exit
    nop
park:
    wait
    b       park
    nop
secondary:
    dla     t9, secondary_main
    beqz    t9, park
    nop
    jalr    t9
    move    a0, t2
    b       park
    nop
    .weak   secondary_main

    .section .bss
    .align  2
    .globl  boot_status
boot_status:
    .space  4

    .section .bss.stacks, "aw", @nobits
    .align  4
    .space  16384 * MAX_CPUS
    .globl stacks_top
stacks_top:
