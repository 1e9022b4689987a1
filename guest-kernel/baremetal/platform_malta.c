/* QEMU's Malta board (-M malta -cpu MIPS64R2-generic -kernel FILE -no-reboot),
 * the independent reference the ISA suite is checked against: the 16550 of
 * the Malta's southbridge at ISA I/O 0x3f8 (physical 0x180003f8, byte
 * registers), and the FPGA's software-reset register (physical 0x1f000500):
 * writing 0x42 resets the board, which -no-reboot turns into QEMU exiting.
 * QEMU's exit status does not carry ours, so the result is the last line. */
#include "platform.h"

#define UART ((volatile uint8_t*)0xffffffffb80003f8ull)
#define SOFTRES ((volatile uint32_t*)0xffffffffbf000500ull)
#define LSR_THRE 0x20

const char platform_name[] = "malta";
/* Physical addresses a load from which must raise a bus error: none that
 * QEMU's Malta reliably reports (its unassigned space reads as 0), so 0. */
const uint64_t platform_unbacked_phys = 0;
/* What QEMU 7.2's MIPS64R2-generic presents: K0 = 2 (uncached) after reset,
 * bigger caches, PC/WR/EP in Config1, Config3 = LPA only (no ULRI, no RXI,
 * no M: Config4 reads 0), and paired-single/3D in FIR. */
const struct cpu_identity platform_cpu = {.prid = 0x00010000,
                                          .config0 = 0x80004482,
                                          .config1 = 0xfea3519b,
                                          .config2 = 0x80000000,
                                          .config3 = 0x00000080,
                                          .config4 = 0x00000000,
                                          .fir = 0x007f0000};

void platform_putc(char c) {
    if (c == '\n') platform_putc('\r');
    while (!(UART[5] & LSR_THRE)) {
    }
    UART[0] = (uint8_t)c;
}

void platform_exit(int status) {
    put_str(status ? "exit status 1\n" : "exit status 0\n");
    *SOFTRES = 0x42;
    for (;;) {
    }
}
