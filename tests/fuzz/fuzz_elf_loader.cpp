// libFuzzer target: the kernel loader must load or reject any bytes, never
// crash, hang or touch memory it does not own. The bytes go to a memfd and
// reach the loader by path, the way a kernel file does.
//
// Not part of the meson build (it needs clang's libFuzzer). From the
// repository root, with a clang whose C++23 mode can use libstdc++'s
// <expected> (clang 16 or later):
//   clang++ -std=c++2b -O1 -g -fsanitize=fuzzer,address,undefined -I. \
//     tests/fuzz/fuzz_elf_loader.cpp vmm/board/elf_loader.cpp vmm/mem/guest_ram.cpp \
//     -lelf -lfmt -o fuzz_elf_loader
//   ./fuzz_elf_loader -max_len=4096 CORPUS_DIR   # seed CORPUS_DIR with build/guest-kernel/*.elf
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "vmm/board/elf_loader.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    // 4 MiB at physical 0, plus a region above a hole, as the board has.
    static disco::GuestRam ram = [] {
        disco::GuestRam r;
        (void)r.add_region(disco::GuestPhysAddr(0), 4 << 20);
        (void)r.add_region(disco::GuestPhysAddr(0x20000000), 1 << 20);
        return r;
    }();
    const int fd = memfd_create("fuzz-kernel", MFD_CLOEXEC);
    if (fd < 0) return 0;
    size_t done = 0;
    while (done < size) {
        const ssize_t n = ::write(fd, data + done, size - done);
        if (n <= 0) break;
        done += static_cast<size_t>(n);
    }
    if (done == size) (void)disco::board::load_kernel_elf("/proc/self/fd/" + std::to_string(fd), ram);
    ::close(fd);
    return 0;
}
