// libFuzzer target: the kernel loader must load or reject any bytes, never crash.
//   clang++ -std=c++2b -g -O1 -fsanitize=fuzzer,address,undefined -I. tests/fuzz/fuzz_elf_loader.cpp \
//     vmm/board/elf_loader.cpp vmm/mem/guest_ram.cpp -lelf -lfmt -o fuzz_elf_loader
#include <sys/mman.h>
#include <unistd.h>

#include <string>

#include "vmm/board/elf_loader.hpp"

using namespace disco;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static GuestRam ram = [] {
        GuestRam r;
        (void)r.add_region(GuestPhysAddr(0), 4 << 20);
        return r;
    }();
    const int fd = memfd_create("kernel", 0);
    if (fd < 0) return 0;
    if (::write(fd, data, size) == static_cast<ssize_t>(size))
        (void)board::load_kernel_elf("/proc/self/fd/" + std::to_string(fd), ram);
    ::close(fd);
    return 0;
}
