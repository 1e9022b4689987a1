/* Console output helpers shared by every platform. */
#include "platform.h"

void put_str(const char* s) {
    while (*s) platform_putc(*s++);
}

void put_hex(uint64_t v) {
    put_str("0x");
    for (int shift = 60; shift >= 0; shift -= 4) platform_putc("0123456789abcdef"[(v >> shift) & 15]);
}

void put_dec(uint64_t v) {
    char buf[24];
    int n = 0;
    do {
        buf[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n) platform_putc(buf[--n]);
}

/* Called by the exception vectors of bare-metal guests for an exception
 * nobody expected: report it and fail. */
void unexpected_exception(uint64_t cause, uint64_t epc, uint64_t badvaddr);
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
