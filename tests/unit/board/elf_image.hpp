// Test support: small ELF64 MIPS executables built in memory from <elf.h>'s
// structs, in either byte order, and handed to the loader through a memfd (a
// path under /proc/self/fd, so that nothing is left in /tmp).
#pragma once
#include <elf.h>
#include <sys/mman.h>
#include <unistd.h>

#include <bit>
#include <cstring>
#include <string>
#include <vector>

#include "vmm/mem/endian.hpp"
#include "vmm/util/types.hpp"

namespace disco::test {

struct ElfSegment {
    u32 type = PT_LOAD;
    u64 vaddr = 0;
    u64 paddr = 0;
    std::vector<u8> bytes = {};  // the p_filesz part
    u64 memsz = 0;               // 0: same as bytes.size()
};

struct ElfSpec {
    bool big_endian = false;
    u16 type = ET_EXEC;
    u16 machine = EM_MIPS;
    u64 entry = 0;
    std::vector<ElfSegment> segments = {};
};

/// A field in the file's byte order.
template <class T>
T file_order(T v, bool big_endian) {
    const bool host_big = std::endian::native == std::endian::big;
    return host_big == big_endian ? v : byteswap_any(v);
}

/// Layout: ELF header, program headers, then each segment's bytes in order.
inline std::vector<u8> build_elf(const ElfSpec& spec) {
    const bool be = spec.big_endian;
    const usize phoff = sizeof(Elf64_Ehdr);
    usize data_off = phoff + spec.segments.size() * sizeof(Elf64_Phdr);
    usize total = data_off;
    for (const auto& s : spec.segments) total += s.bytes.size();
    std::vector<u8> out(total, 0);

    Elf64_Ehdr eh{};
    std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
    eh.e_ident[EI_CLASS] = ELFCLASS64;
    eh.e_ident[EI_DATA] = be ? ELFDATA2MSB : ELFDATA2LSB;
    eh.e_ident[EI_VERSION] = EV_CURRENT;
    eh.e_type = file_order<u16>(spec.type, be);
    eh.e_machine = file_order<u16>(spec.machine, be);
    eh.e_version = file_order<u32>(EV_CURRENT, be);
    eh.e_entry = file_order<u64>(spec.entry, be);
    eh.e_phoff = file_order<u64>(spec.segments.empty() ? 0 : phoff, be);
    eh.e_ehsize = file_order<u16>(sizeof(Elf64_Ehdr), be);
    eh.e_phentsize = file_order<u16>(sizeof(Elf64_Phdr), be);
    eh.e_phnum = file_order<u16>(static_cast<u16>(spec.segments.size()), be);
    std::memcpy(out.data(), &eh, sizeof eh);

    for (usize i = 0; i < spec.segments.size(); ++i) {
        const ElfSegment& s = spec.segments[i];
        Elf64_Phdr ph{};
        ph.p_type = file_order<u32>(s.type, be);
        ph.p_flags = file_order<u32>(PF_R | PF_W | PF_X, be);
        ph.p_offset = file_order<u64>(data_off, be);
        ph.p_vaddr = file_order<u64>(s.vaddr, be);
        ph.p_paddr = file_order<u64>(s.paddr, be);
        ph.p_filesz = file_order<u64>(s.bytes.size(), be);
        ph.p_memsz = file_order<u64>(s.memsz ? s.memsz : s.bytes.size(), be);
        ph.p_align = file_order<u64>(4096, be);
        std::memcpy(out.data() + phoff + i * sizeof(Elf64_Phdr), &ph, sizeof ph);
        if (!s.bytes.empty()) std::memcpy(out.data() + data_off, s.bytes.data(), s.bytes.size());
        data_off += s.bytes.size();
    }
    return out;
}

/// Overwrites a field at offset with v in the file's byte order.
template <class T>
void patch(std::vector<u8>& image, usize offset, T v, bool big_endian) {
    v = file_order(v, big_endian);
    std::memcpy(image.data() + offset, &v, sizeof v);
}

/// Offset of program header i's field, e.g. phdr_field(0, offsetof(Elf64_Phdr, p_offset)).
constexpr usize phdr_field(usize i, usize field) { return sizeof(Elf64_Ehdr) + i * sizeof(Elf64_Phdr) + field; }

/// Bytes in an anonymous in-memory file, reachable by path while this lives.
class MemFile {
public:
    explicit MemFile(const std::vector<u8>& bytes) : fd_(memfd_create("elf-test", MFD_CLOEXEC)) {
        usize done = 0;
        while (fd_ >= 0 && done < bytes.size()) {
            const ssize_t n = ::write(fd_, bytes.data() + done, bytes.size() - done);
            if (n <= 0) break;
            done += static_cast<usize>(n);
        }
    }
    ~MemFile() {
        if (fd_ >= 0) ::close(fd_);
    }
    MemFile(const MemFile&) = delete;
    MemFile& operator=(const MemFile&) = delete;
    std::string path() const { return "/proc/self/fd/" + std::to_string(fd_); }

private:
    int fd_;
};
}  // namespace disco::test
