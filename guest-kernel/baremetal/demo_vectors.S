#include "regdef.h"
    .set noreorder
    .set noat
/* Exception vectors at EBase (0xffffffff80000000): every exception that a
 * demo guest does not expect reports itself and fails. */
    .section .vectors, "ax"
    .globl  vectors_base
vectors_base:
    .org    0x000
    b       unexpected
    nop
    .org    0x080
    b       unexpected
    nop
    .org    0x180
    b       unexpected
    nop
    .org    0x200
    b       unexpected
    nop
unexpected:
    dla     sp, stacks_top
    mfc0    a0, $13                 /* Cause */
    dmfc0   a1, $14                 /* EPC */
    dmfc0   a2, $8                  /* BadVAddr */
    jal     unexpected_exception
    nop
1:  b       1b
    nop
