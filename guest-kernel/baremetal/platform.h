/* What a test or demo needs from the machine it runs on: a console and a
 * way to end with a status. One small file per platform implements it
 * (platform_baremetal.c: Disco's board, platform_malta.c: QEMU's Malta,
 * platform_linux.c: a Linux process). */
#ifndef DISCO_GUEST_PLATFORM_H
#define DISCO_GUEST_PLATFORM_H
#include <stdint.h>
void platform_putc(char c);
void platform_exit(int status) __attribute__((noreturn));
/* The board's name, for the log. */
extern const char platform_name[];
/* A physical address in the device window where nothing answers, so that a
 * load raises a bus error (DBE) and a fetch IBE; 0 where the board has none
 * that reliably does (QEMU's Malta reads unassigned space as zero). */
extern const uint64_t platform_unbacked_phys;
/* The CPU identity the board's CPU presents (little-endian Config0; the
 * big-endian one adds BE, 0x8000). Disco presents its documented identity
 * (guest-kernel/README.md); QEMU 7.2's MIPS64R2-generic a leaner one. */
struct cpu_identity {
    uint32_t prid, config0, config1, config2, config3, config4, fir;
};
extern const struct cpu_identity platform_cpu;
void put_str(const char* s);
void put_hex(uint64_t v);
void put_dec(uint64_t v);
#endif
