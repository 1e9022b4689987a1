/* Exception vectors of the ISA suite. Every vector records Cause, EPC,
 * BadVAddr, EntryHi, Status, Context, XContext and its own offset in
 * exc_record (isa.h), counts the exception, then resumes at
 * exc_record.resume in kernel mode with EXL, KSU and IE cleared (the resume
 * address is one-shot). With no resume address set the exception was not
 * expected: report it and fail. */
#include "regdef.h"
    .set noreorder
    .set noat
    .section .vectors, "ax"
    .globl vectors_base
vectors_base:
#define VECTOR(off)                 \
    .org off;                       \
    lui     k0, %hi(exc_record);    \
    addiu   k0, k0, %lo(exc_record);\
    li      k1, off;                \
    b       exc_common;             \
    sd      k1, 32(k0)
    VECTOR(0x000)
    VECTOR(0x080)
    VECTOR(0x100)                   /* cache error: never expected */
    VECTOR(0x180)
    VECTOR(0x200)
exc_common:
    mfc0    k1, $13
    sd      k1, 0(k0)               /* cause */
    dmfc0   k1, $14
    sd      k1, 8(k0)               /* epc */
    dmfc0   k1, $8
    sd      k1, 16(k0)              /* badvaddr */
    ld      k1, 24(k0)
    daddiu  k1, k1, 1
    sd      k1, 24(k0)              /* count */
    dmfc0   k1, $10
    sd      k1, 48(k0)              /* entryhi */
    mfc0    k1, $12
    sd      k1, 56(k0)              /* status at the exception */
    dmfc0   k1, $4
    sd      k1, 64(k0)              /* context */
    dmfc0   k1, $20
    sd      k1, 72(k0)              /* xcontext */
    ld      k1, 40(k0)              /* resume address */
    beqz    k1, 1f
    nop
    sd      zero, 40(k0)
    dmtc0   k1, $14
    mfc0    k1, $12
    ori     k1, k1, 0x19            /* KSU (bits 4:3) and IE ... */
    xori    k1, k1, 0x19            /* ... cleared: resume in kernel mode, interrupts off */
    mtc0    k1, $12
    ehb
    eret
1:  lui     sp, %hi(stacks_top)
    addiu   sp, sp, %lo(stacks_top)
    mfc0    a0, $13
    dmfc0   a1, $14
    dmfc0   a2, $8
    jal     unexpected_exception
    nop
2:  b       2b
    nop
