/* What a test or demo needs from the machine it runs on: a console and a
 * way to end with a status. One small file per platform implements it. */
#ifndef DISCO_GUEST_PLATFORM_H
#define DISCO_GUEST_PLATFORM_H
#include <stdint.h>
void platform_putc(char c);
void platform_exit(int status) __attribute__((noreturn));
void put_str(const char* s);
void put_hex(uint64_t v);
void put_dec(uint64_t v);
#endif
