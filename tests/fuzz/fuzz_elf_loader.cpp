// libFuzzer target: the kernel loader must load or reject any bytes, never
// crash, hang or touch memory it does not own. The bytes go to a memfd and
// reach the loader by path, the way a kernel file does.
// Built by the meson build with -Dfuzz=true and clang 16 (tests/fuzz/meson.build);
// tools/setup --test runs it for a bounded time.
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
