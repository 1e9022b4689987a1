/* The same demos as static Linux programs (n64), for QEMU's user-mode
 * emulator: the peer that tools/bench compares against. Raw syscalls, no libc. */
#include "platform.h"

static long syscall3(long n, long a, long b, long c) {
    register long v0 __asm__("$2") = n;
    register long a0 __asm__("$4") = a;
    register long a1 __asm__("$5") = b;
    register long a2 __asm__("$6") = c;
    register long a3 __asm__("$7");
    __asm__ volatile("syscall"
                     : "+r"(v0), "=r"(a3)
                     : "r"(a0), "r"(a1), "r"(a2)
                     : "memory", "$1", "$3", "$8", "$9", "$10", "$11", "$12", "$13", "$14", "$15", "$24", "$25", "hi",
                       "lo");
    return v0;
}

const char platform_name[] = "linux";
const uint64_t platform_unbacked_phys = 0;

const struct cpu_identity platform_cpu;

void platform_putc(char c) { syscall3(5001 /* write */, 1, (long)&c, 1); }

void platform_exit(int status) {
    syscall3(5205 /* exit_group */, status, 0, 0);
    for (;;) {
    }
}

int main(void);
void __start(void) __attribute__((noreturn));
void __start(void) { platform_exit(main()); }
