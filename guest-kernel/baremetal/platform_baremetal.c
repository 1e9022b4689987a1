/* Disco's bare-metal board: 16550 UART at 0x1f020000 (byte registers),
 * test device at 0x1f030000; both reached through kseg1 (uncached). */
#include "platform.h"

#define UART ((volatile uint8_t*)0xffffffffbf020000ull)
#define TEST_EXIT ((volatile uint32_t*)0xffffffffbf030000ull)
#define LSR_THRE 0x20

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

void unexpected_exception(uint64_t cause, uint64_t epc, uint64_t badvaddr) {
    put_str("unexpected exception: cause ");
    put_hex(cause);
    put_str(" epc ");
    put_hex(epc);
    put_str(" badvaddr ");
    put_hex(badvaddr);
    put_str("\n");
    platform_exit(1);
}
