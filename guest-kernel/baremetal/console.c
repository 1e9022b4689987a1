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
