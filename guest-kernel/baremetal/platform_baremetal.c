/* Disco's bare-metal board: 16550 UART at 0x1f020000 (byte registers),
 * test device at 0x1f030000; both reached through kseg1 (uncached). */
#include "platform.h"

#define UART ((volatile uint8_t*)0xffffffffbf020000ull)
#define TEST_EXIT ((volatile uint32_t*)0xffffffffbf030000ull)
#define LSR_THRE 0x20

const char platform_name[] = "disco";
/* Above 64 MiB of RAM and outside any device: a bus error on Disco's board. */
const uint64_t platform_unbacked_phys = 0x1f100000;
const struct cpu_identity platform_cpu = {.prid = 0x00010000,
                                          .config0 = 0x80004483,
                                          .config1 = 0xfe633181,
                                          .config2 = 0x80000000,
                                          .config3 = 0xa0003000,
                                          .config4 = 0x800c0000,
                                          .fir = 0x007f0000};

void platform_putc(char c) {
    while (!(UART[5] & LSR_THRE)) {
    }
    UART[0] = (uint8_t)c;
}

void platform_exit(int status) {
    *TEST_EXIT = (uint32_t)status;
    for (;;) {
    }
}
