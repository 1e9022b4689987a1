/*
 * Harness for the differential tests (tests/diff/README.md).
 *
 * One source, two variants:
 *   - default:           a static Linux n64 program for qemu-user (qemu-mips64[el]);
 *   - DIFF_BAREMETAL:    a bare-metal kernel for `disco run --kernel` (kseg0,
 *                        16550 UART, test/exit device).
 *
 * The generated file (gen_sequences) provides `diff_run_all`, which runs every
 * sequence and then jumps to `diff_done`, and `diff_states`, the table of initial
 * states (one record of DIFF_REC_SIZE bytes per sequence). Each sequence calls
 * `diff_load_state` first and `diff_dump_state` last (with jal).
 *
 * Register conventions while the sequences run:
 *   $30 (s8)  base of diff_buf, never written by a sequence;
 *   $26 (k0)  scratch for this harness (and the JR/JALR targets of sequences);
 *   $27 (k1)  the normalised return address (see gen_sequences.cpp);
 *   $29 (sp)  untouched; $31 (ra) written by BAL/JAL, never read as data.
 *
 * Output: one line per sequence, "@D <index> v v v ..." where every v is 16 hex
 * digits, in the order of dump_table below; then "@END <count>".
 */
        .set    noreorder
        .set    noat

/* Layout of the area that $30 points to (offsets from $30). */
#define BUF_SIZE    128             /* data buffer the sequences load from and store to */
#define CTL_RECPTR  (BUF_SIZE + 0)  /* next initial-state record */
#define CTL_SEQIDX  (BUF_SIZE + 8)  /* index of the running sequence */
#define CTL_RA      (BUF_SIZE + 16) /* dump routine's return address */
#define CTL_SAVE    (BUF_SIZE + 24) /* 32 GPRs */
#define CTL_HI      (CTL_SAVE + 256)
#define CTL_LO      (CTL_HI + 8)
#define CTL_FCSR    (CTL_LO + 8)
#define CTL_FPR     (CTL_FCSR + 8)  /* 32 FPRs */
#define CTL_LINE    (CTL_FPR + 256) /* output line buffer */
#define LINE_SIZE   2048
#define AREA_SIZE   (CTL_LINE + LINE_SIZE)

/* Initial-state record (written by gen_sequences; keep in sync with it). */
#define REC_BUF     0               /* 16 dwords */
#define REC_FCSR    128
#define REC_HI      136
#define REC_LO      144
#define REC_FPR     152             /* 32 dwords */
#define REC_GPR     408             /* 26 dwords: $1..$25, $28 */
#define REC_SIZE    616

#if defined(DIFF_MALTA)
/* Developer check of the bare-metal variant under qemu-system-mips64el -M malta
   -no-reboot: COM1 through the GT-64120 I/O window; SOFTRES resets (= exits). */
#define DIFF_BAREMETAL 1
#define UART_BASE   0xFFFFFFFFB80003F8
#define EXIT_BASE   0xFFFFFFFFBF000500
#elif defined(DIFF_BAREMETAL)
#define UART_BASE   0xFFFFFFFFBF020000
#define EXIT_BASE   0xFFFFFFFFBF030000
#endif

        .text
        .globl  __start
        .globl  _start
__start:
_start:
#ifdef DIFF_BAREMETAL
        /* Kernel mode, 64-bit segments, CU0|CU1|FR, BEV cleared. */
        lui     $8, 0x3400              /* CU1 (29) | CU0 (28) | FR (26) */
        ori     $8, $8, 0x00E0          /* KX | SX | UX */
        mtc0    $8, $12
        ehb
        /* Exception vectors (BEV=0): a jump to exc_handler at each. */
        dla     $9, vec_stub
        lw      $10, 0($9)
        lw      $11, 4($9)
        dli     $12, 0xFFFFFFFF80000000
        sw      $10, 0x000($12)
        sw      $11, 0x004($12)
        sw      $10, 0x080($12)
        sw      $11, 0x084($12)
        sw      $10, 0x100($12)
        sw      $11, 0x104($12)
        sw      $10, 0x180($12)
        sw      $11, 0x184($12)
        sw      $10, 0x200($12)
        sw      $11, 0x204($12)
        sync
        dla     $29, bm_stack_top
#endif
        dla     $30, diff_area
        dla     $8, diff_states
        sd      $8, CTL_RECPTR($30)
        sd      $0, CTL_SEQIDX($30)
        jal     diff_run_all
        nop
        /* not reached: diff_run_all ends with j diff_done */

        .globl  diff_done
diff_done:
        /* "@END <count>\n" */
        daddiu  $16, $30, CTL_LINE
        dla     $4, str_end
        jal     copy_str
        nop
        ld      $4, CTL_SEQIDX($30)
        jal     put_hex64
        nop
        li      $8, 10
        sb      $8, 0($16)
        daddiu  $16, $16, 1
        daddiu  $4, $30, CTL_LINE
        jal     out_bytes
        dsubu   $5, $16, $4
        b       sys_exit
        move    $4, $0

/*
 * diff_load_state: load the next initial-state record into the data buffer,
 * FCSR, HI/LO, FPRs and the GPRs $1..$25, $28. Clobbers k0, k1.
 */
        .globl  diff_load_state
diff_load_state:
        ld      $26, CTL_RECPTR($30)
        .irp    i, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
        ld      $27, REC_BUF+8*\i($26)
        sd      $27, 8*\i($30)
        .endr
        ld      $27, REC_FCSR($26)
        ctc1    $27, $31
        ld      $27, REC_HI($26)
        mthi    $27
        ld      $27, REC_LO($26)
        mtlo    $27
        .irp    i, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
        ldc1    $f\i, REC_FPR+8*\i($26)
        .endr
        .irp    r, 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25
        ld      $\r, REC_GPR+8*(\r-1)($26)
        .endr
        ld      $28, REC_GPR+8*25($26)
        daddiu  $27, $26, REC_SIZE
        jr      $31
        sd      $27, CTL_RECPTR($30)

/*
 * diff_dump_state: save the architectural state and print it as one line.
 */
        .globl  diff_dump_state
diff_dump_state:
        .irp    r, 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
        sd      $\r, CTL_SAVE+8*\r($30)
        .endr
        sd      $31, CTL_RA($30)
        mfhi    $8
        sd      $8, CTL_HI($30)
        mflo    $8
        sd      $8, CTL_LO($30)
        cfc1    $8, $31
        dext    $8, $8, 0, 32
        sd      $8, CTL_FCSR($30)
        .irp    i, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
        sdc1    $f\i, CTL_FPR+8*\i($30)
        .endr
        /* "@D <index>" */
        daddiu  $16, $30, CTL_LINE
        dla     $4, str_d
        jal     copy_str
        nop
        ld      $4, CTL_SEQIDX($30)
        jal     put_hex64
        nop
        /* the values, in dump_table order */
        dla     $17, dump_table
1:      lh      $18, 0($17)
        bltz    $18, 2f
        daddiu  $17, $17, 2
        li      $8, 0x20
        sb      $8, 0($16)
        daddiu  $16, $16, 1
        daddu   $18, $18, $30
        jal     put_hex64
        ld      $4, 0($18)
        b       1b
        nop
2:      li      $8, 10
        sb      $8, 0($16)
        daddiu  $16, $16, 1
        daddiu  $4, $30, CTL_LINE
        jal     out_bytes
        dsubu   $5, $16, $4
        ld      $8, CTL_SEQIDX($30)
        daddiu  $8, $8, 1
        sd      $8, CTL_SEQIDX($30)
        ld      $31, CTL_RA($30)
        jr      $31
        nop

/* put_hex64: write $4 as 16 hex digits at $16, advance $16. Clobbers $8-$10. */
put_hex64:
        li      $9, 60
1:      dsrlv   $8, $4, $9
        andi    $8, $8, 15
        sltiu   $10, $8, 10
        bnez    $10, 2f
        daddiu  $8, $8, 0x30
        daddiu  $8, $8, 0x27            /* 'a' - '0' - 10 */
2:      sb      $8, 0($16)
        daddiu  $16, $16, 1
        bnez    $9, 1b
        addiu   $9, $9, -4
        jr      $31
        nop

/* copy_str: copy the NUL-terminated string at $4 to $16, advance $16. */
copy_str:
1:      lbu     $8, 0($4)
        beqz    $8, 2f
        daddiu  $4, $4, 1
        sb      $8, 0($16)
        b       1b
        daddiu  $16, $16, 1
2:      jr      $31
        nop

#ifndef DIFF_BAREMETAL
/* out_bytes(a0 = buffer, a1 = length): write(1, ...). */
out_bytes:
        move    $6, $5
        move    $5, $4
        li      $4, 1
        li      $2, 5001                /* n64 write */
        syscall
        jr      $31
        nop

/* sys_exit(a0 = status) */
sys_exit:
        li      $2, 5205                /* n64 exit_group */
        syscall
        b       sys_exit
        nop
#else
/* out_bytes(a0 = buffer, a1 = length): poll LSR.THRE, write THR. */
out_bytes:
        dli     $9, UART_BASE
        beqz    $5, 3f
        daddu   $5, $5, $4
1:      lbu     $10, 5($9)
        andi    $10, $10, 0x20
        beqz    $10, 1b
        nop
        lbu     $10, 0($4)
        sb      $10, 0($9)
        daddiu  $4, $4, 1
        bne     $4, $5, 1b
        nop
3:      jr      $31
        nop

/* sys_exit(a0 = status): the test/exit device. */
sys_exit:
        dli     $9, EXIT_BASE
#ifdef DIFF_MALTA
        li      $4, 0x42
#endif
        sw      $4, 0($9)
        sync
1:      b       1b
        nop

/* Copied to the exception vectors. */
vec_stub:
        j       exc_handler
        nop

/* "@EXC <seq> <cause> <epc> <badvaddr> <status>", then exit with status 3. */
exc_handler:
        dla     $30, diff_area
        dla     $29, bm_stack_top
        daddiu  $16, $30, CTL_LINE
        dla     $4, str_exc
        jal     copy_str
        nop
        ld      $4, CTL_SEQIDX($30)
        jal     put_hex64
        nop
        .irp    reg, 13, 14, 8, 12
        li      $8, 0x20
        sb      $8, 0($16)
        daddiu  $16, $16, 1
        jal     put_hex64
        dmfc0   $4, $\reg
        .endr
        li      $8, 10
        sb      $8, 0($16)
        daddiu  $16, $16, 1
        daddiu  $4, $30, CTL_LINE
        jal     out_bytes
        dsubu   $5, $16, $4
        b       sys_exit
        li      $4, 3
#endif

        .section .rodata
str_d:  .asciz  "@D "
str_end: .asciz "@END "
#ifdef DIFF_BAREMETAL
str_exc: .asciz "@EXC "
#endif
        .balign 2
/* Dump order: GPRs $1..$25, $28, the normalised ra ($27), HI, LO, FPRs, FCSR, buffer. */
dump_table:
        .irp    r, 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,28,27
        .hword  CTL_SAVE+8*\r
        .endr
        .hword  CTL_HI, CTL_LO
        .irp    i, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
        .hword  CTL_FPR+8*\i
        .endr
        .hword  CTL_FCSR
        .irp    i, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
        .hword  8*\i
        .endr
        .hword  -1

        .data
        .balign 64
diff_area:
        .space  AREA_SIZE
#ifdef DIFF_BAREMETAL
        .balign 16
        .space  4096
bm_stack_top:
#endif
