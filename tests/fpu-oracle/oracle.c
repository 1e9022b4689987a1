/*
 * The FPU oracle: a static mips64el Linux program run under
 * `qemu-mips64el -cpu MIPS64R2-generic`. It reads test cases from stdin and,
 * for each, executes the real instruction word with the given register file
 * and FCSR, and writes the resulting register file and FCSR to stdout.
 *
 * Record in (280 bytes, little-endian):
 *   u32 insn; u32 mode (bit 0: Status.FR); u64 fcsr; u64 gpr ($3); u64 fpr[32]
 * Record out (280 bytes):
 *   u32 outcome (0 ok, 1 SIGFPE, 2 SIGILL, 3 other); u32 pad; u64 fcsr; u64 gpr ($3);
 *   u64 fpr[32]   (FR=0: the low word of each register, upper half 0)
 *
 * The instruction is patched into a copy of a small code template (QEMU
 * user mode handles self-modifying code); MOVZ/MOVN/CTC1/CFC1 cases use GPR
 * $3 as rt. Status.FR is switched with prctl(PR_SET_FP_MODE). The program
 * itself uses no floating point, so the template owns the FPU.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

struct state {
    uint64_t fpr[32];   /*   0 */
    uint64_t fcsr;      /* 256 */
    uint64_t gpr;       /* 264 */
    uint64_t fcsr_out;  /* 272 */
    uint64_t gpr_out;   /* 280 */
    uint64_t out[32];   /* 288 */
};

#define R8(op, base) \
    op " $f0,  0+" base "($4)\n" op " $f1,  8+" base "($4)\n" op " $f2, 16+" base "($4)\n" \
    op " $f3, 24+" base "($4)\n" op " $f4, 32+" base "($4)\n" op " $f5, 40+" base "($4)\n" \
    op " $f6, 48+" base "($4)\n" op " $f7, 56+" base "($4)\n"
#define R8B(op, base) \
    op " $f8,  64+" base "($4)\n" op " $f9,  72+" base "($4)\n" op " $f10, 80+" base "($4)\n" \
    op " $f11, 88+" base "($4)\n" op " $f12, 96+" base "($4)\n" op " $f13,104+" base "($4)\n" \
    op " $f14,112+" base "($4)\n" op " $f15,120+" base "($4)\n"
#define R8C(op, base) \
    op " $f16,128+" base "($4)\n" op " $f17,136+" base "($4)\n" op " $f18,144+" base "($4)\n" \
    op " $f19,152+" base "($4)\n" op " $f20,160+" base "($4)\n" op " $f21,168+" base "($4)\n" \
    op " $f22,176+" base "($4)\n" op " $f23,184+" base "($4)\n"
#define R8D(op, base) \
    op " $f24,192+" base "($4)\n" op " $f25,200+" base "($4)\n" op " $f26,208+" base "($4)\n" \
    op " $f27,216+" base "($4)\n" op " $f28,224+" base "($4)\n" op " $f29,232+" base "($4)\n" \
    op " $f30,240+" base "($4)\n" op " $f31,248+" base "($4)\n"
#define ALL(op, base) R8(op, base) R8B(op, base) R8C(op, base) R8D(op, base)

/* The template, in two variants: 64-bit (ldc1/sdc1) and 32-bit (lwc1/swc1) register transfer. */
#define TEMPLATE(name, ld, st)                                  \
    __asm__(".pushsection .text\n.set push\n.set noreorder\n"     \
            ".set hardfloat\n.set mips64r2\n"                    \
            ".globl " #name "\n" #name ":\n"                     \
            "ld $3, 264($4)\n"                                   \
            "ld $2, 256($4)\n"                                   \
            "ctc1 $2, $31\n"                                     \
            ALL(ld, "0")                                         \
            ".globl " #name "_slot\n" #name "_slot:\n"           \
            "nop\n"                                              \
            "cfc1 $2, $31\n"                                     \
            "sd $2, 272($4)\n"                                   \
            "sd $3, 280($4)\n"                                   \
            ALL(st, "288")                                       \
            "jr $31\n"                                           \
            "nop\n"                                              \
            ".globl " #name "_end\n" #name "_end:\n"             \
            ".set pop\n.popsection\n");                          \
    extern char name[], name##_slot[], name##_end[];

TEMPLATE(tpl64, "ldc1", "sdc1")
TEMPLATE(tpl32, "lwc1", "swc1")

static struct state st;
static sigjmp_buf jb;
static int cur_fr = 1;

static void grab_after_trap(void) {
    uint32_t f;
    __asm__ volatile(".set push\n.set hardfloat\ncfc1 %0, $31\n.set pop" : "=r"(f));
    st.fcsr_out = f;
    st.gpr_out = st.gpr;
    if (cur_fr) {
        __asm__ volatile(".set push\n.set hardfloat\nmove $4, %0\n" ALL("sdc1", "288") ".set pop"
                         : : "r"(&st) : "$4", "memory");
    } else {
        __asm__ volatile(".set push\n.set hardfloat\nmove $4, %0\n" ALL("swc1", "288") ".set pop"
                         : : "r"(&st) : "$4", "memory");
    }
}

static void on_signal(int sig) {
    grab_after_trap();
    siglongjmp(jb, sig);
}

int main(void) {
    static unsigned char in[280], out[280];
    size_t len64 = (size_t)(tpl64_end - tpl64), len32 = (size_t)(tpl32_end - tpl32);
    char* code = mmap(0, 65536, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (code == MAP_FAILED) return 2;
    /* Two copies, one per page, so patching one does not flush the other. */
    char* c64 = code;
    char* c32 = code + 32768;
    memcpy(c64, tpl64, len64);
    memcpy(c32, tpl32, len32);
    uint32_t* slot64 = (uint32_t*)(c64 + (tpl64_slot - tpl64));
    uint32_t* slot32 = (uint32_t*)(c32 + (tpl32_slot - tpl32));
    __builtin___clear_cache(code, code + 65536);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_NODEFER;
    sigaction(SIGFPE, &sa, 0);
    sigaction(SIGILL, &sa, 0);
    sigaction(SIGTRAP, &sa, 0);

    while (fread(in, sizeof in, 1, stdin) == 1) {
        uint32_t insn, mode;
        memcpy(&insn, in, 4);
        memcpy(&mode, in + 4, 4);
        memcpy(&st.fcsr, in + 8, 8);
        memcpy(&st.gpr, in + 16, 8);
        memcpy(st.fpr, in + 24, 256);
        memset(st.out, 0, sizeof st.out);
        int fr = mode & 1;
        if (fr != cur_fr) {
            if (prctl(45 /* PR_SET_FP_MODE */, fr ? 1 : 0, 0, 0, 0) != 0) return 3;
            cur_fr = fr;
        }
        uint32_t* slot = fr ? slot64 : slot32;
        char* entry = fr ? c64 : c32;
        if (*slot != insn) {
            *slot = insn;
            __builtin___clear_cache((char*)slot, (char*)(slot + 1));
        }
        uint32_t outcome = 0;
        int sig = sigsetjmp(jb, 1);
        if (sig == 0) {
            ((void (*)(struct state*))entry)(&st);
        } else {
            outcome = sig == SIGFPE ? 1 : sig == SIGILL ? 2 : 3;
        }
        uint32_t fcsr32 = (uint32_t)st.fcsr_out, pad = 0;
        uint64_t fcsr64 = fcsr32;
        memcpy(out, &outcome, 4);
        memcpy(out + 4, &pad, 4);
        memcpy(out + 8, &fcsr64, 8);
        memcpy(out + 16, &st.gpr_out, 8);
        memcpy(out + 24, st.out, 256);
        if (fwrite(out, sizeof out, 1, stdout) != 1) return 4;
    }
    fflush(stdout);
    return 0;
}
