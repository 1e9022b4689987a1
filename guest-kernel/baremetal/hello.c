/* The demo guest: prints a greeting with what it finds about its CPU, exits 0. */
#include "platform.h"

static uint32_t read_prid(void) {
    uint32_t v;
    __asm__ volatile("mfc0 %0, $15" : "=r"(v));
    return v;
}

int main(void) {
    put_str("Hello from the disco bare-metal guest\n");
    put_str("PRId ");
    put_hex(read_prid());
    put_str(", running on Disco's software MIPS64 Release 2 CPU\n");
    return 0;
}
