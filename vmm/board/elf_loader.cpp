#include "vmm/board/elf_loader.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <gelf.h>
#include <libelf.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

namespace disco::board {
namespace {
struct FdCloser {
    int fd;
    ~FdCloser() {
        if (fd >= 0) ::close(fd);
    }
};
struct ElfCloser {
    void operator()(Elf* e) const { elf_end(e); }
};
}  // namespace

Result<u64, LoadError> unmapped_to_physical(u64 a) {
    if (a >= 0xFFFFFFFF80000000ull && a < 0xFFFFFFFFC0000000ull) return a & 0x1FFFFFFFull;  // kseg0, kseg1
    if ((a >> 62) == 2) return a & ((1ull << 36) - 1);                                      // xkphys
    if (a < 0x80000000ull) return a;                                                        // physical
    return fail(LoadError{fmt::format("address {:#x} is not in an unmapped segment", a)});
}

Result<LoadedKernel, LoadError> load_kernel_elf(const std::string& path, GuestRam& ram) {
    auto error = [&](const std::string& what) { return fail(LoadError{fmt::format("kernel {}: {}", path, what)}); };
    FdCloser file{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
    if (file.fd < 0) return error(std::strerror(errno));
    struct stat st {};
    if (fstat(file.fd, &st) != 0) return error(std::strerror(errno));
    if (!S_ISREG(st.st_mode)) return error("not a regular file");
    if (st.st_size == 0) return error("file is empty");
    // Read the whole file: it is parsed from memory with every range checked.
    std::vector<u8> bytes(static_cast<usize>(st.st_size));
    usize got = 0;
    while (got < bytes.size()) {
        const ssize_t n = ::read(file.fd, bytes.data() + got, bytes.size() - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return error(n < 0 ? std::strerror(errno) : "file shrank while reading");
        got += static_cast<usize>(n);
    }
    if (bytes.size() < EI_NIDENT || std::memcmp(bytes.data(), ELFMAG, SELFMAG) != 0) return error("not an ELF file");
    if (bytes.size() < sizeof(Elf64_Ehdr)) return error("truncated ELF header");
    if (bytes[EI_CLASS] != ELFCLASS64) return error("not a 64-bit ELF (MIPS64 kernels are ELFCLASS64)");
    if (bytes[EI_DATA] != ELFDATA2LSB && bytes[EI_DATA] != ELFDATA2MSB) return error("unknown ELF byte order");

    elf_version(EV_CURRENT);
    std::unique_ptr<Elf, ElfCloser> elf(elf_memory(reinterpret_cast<char*>(bytes.data()), bytes.size()));
    if (!elf) return error(fmt::format("unreadable ELF ({})", elf_errmsg(-1)));
    GElf_Ehdr eh;
    if (!gelf_getehdr(elf.get(), &eh)) return error("truncated ELF header");
    if (eh.e_machine != EM_MIPS) return error(fmt::format("not a MIPS ELF (e_machine {})", eh.e_machine));
    if (eh.e_type != ET_EXEC) return error("not an executable ELF (ET_EXEC)");
    size_t phnum = 0;
    if (elf_getphdrnum(elf.get(), &phnum) != 0) return error("truncated program header table");

    LoadedKernel k;
    k.entry = eh.e_entry;
    k.byte_order = bytes[EI_DATA] == ELFDATA2LSB ? ByteOrder::Little : ByteOrder::Big;
    k.phys_low = ~0ull;
    bool any = false;
    for (size_t i = 0; i < phnum; ++i) {
        GElf_Phdr ph;
        if (!gelf_getphdr(elf.get(), static_cast<int>(i), &ph))
            return error(fmt::format("program header {} is truncated", i));
        if (ph.p_type != PT_LOAD || ph.p_memsz == 0) continue;
        if (ph.p_filesz > ph.p_memsz) return error(fmt::format("segment {} has p_filesz > p_memsz", i));
        if (ph.p_offset > bytes.size() || ph.p_filesz > bytes.size() - ph.p_offset)
            return error(fmt::format("segment {} lies outside the file", i));
        auto pa = unmapped_to_physical(ph.p_paddr ? ph.p_paddr : ph.p_vaddr);
        if (!pa) return error(fmt::format("segment {}: {}", i, pa.error().message));
        if (*pa + ph.p_memsz < *pa) return error(fmt::format("segment {} wraps around the address space", i));
        auto span = ram.host_span(GuestPhysAddr(*pa), ph.p_memsz);
        if (!span) return error(fmt::format("segment {} ({:#x}+{:#x}) does not fit in guest RAM", i, *pa, ph.p_memsz));
        std::memcpy(span->data(), bytes.data() + ph.p_offset, ph.p_filesz);
        std::memset(span->data() + ph.p_filesz, 0, ph.p_memsz - ph.p_filesz);  // .bss
        k.phys_low = std::min(k.phys_low, *pa);
        k.phys_high = std::max(k.phys_high, *pa + ph.p_memsz);
        any = true;
    }
    if (!any) return error("no loadable segments");
    return k;
}
}  // namespace disco::board
