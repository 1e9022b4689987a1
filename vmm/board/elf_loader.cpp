#include "vmm/board/elf_loader.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <gelf.h>
#include <libelf.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

namespace disco::board {
namespace {
using Kind = LoadError::Kind;

/// Builds the one-line error for this file.
class Problem {
public:
    explicit Problem(const std::string& path) : path_(path) {}
    std::unexpected<LoadError> operator()(Kind kind, const std::string& what) const {
        return std::unexpected(LoadError{kind, fmt::format("kernel {}: {}", path_, what)});
    }

private:
    const std::string& path_;
};

struct Fd {
    int fd = -1;
    ~Fd() {
        if (fd >= 0) ::close(fd);
    }
};
struct ElfEnd {
    void operator()(Elf* e) const { elf_end(e); }
};

/// A PT_LOAD segment that passed every check and only needs copying.
struct Segment {
    u64 file_offset, file_size, mem_size, phys;
};

/// Reads exactly out.size() bytes at offset; false on error or end of file
/// (the file shrank after it was checked).
bool pread_all(int fd, u64 offset, std::span<u8> out) {
    usize done = 0;
    while (done < out.size()) {
        const ssize_t n = ::pread(fd, out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        done += static_cast<usize>(n);
    }
    return true;
}

/// e_ident checks done on raw bytes, before libelf, so that each gets its own message.
Result<ByteOrder, LoadError> check_ident(int fd, u64 file_size, const Problem& problem) {
    u8 head[sizeof(Elf64_Ehdr)] = {};
    const u64 got = std::min<u64>(file_size, sizeof head);
    if (!pread_all(fd, 0, std::span<u8>(head, got))) return problem(Kind::Unreadable, "cannot read the ELF header");
    if (got < SELFMAG || std::memcmp(head, ELFMAG, SELFMAG) != 0) return problem(Kind::NotElf, "not an ELF file");
    if (got <= EI_CLASS || head[EI_CLASS] != ELFCLASS64)
        return problem(Kind::NotElf64, "not a 64-bit ELF (MIPS64 kernels are ELFCLASS64)");
    if (got < sizeof(Elf64_Ehdr)) return problem(Kind::Truncated, "truncated ELF header");
    if (head[EI_DATA] != ELFDATA2LSB && head[EI_DATA] != ELFDATA2MSB)
        return problem(Kind::BadIdent, fmt::format("unknown ELF byte order (EI_DATA {})", head[EI_DATA]));
    if (head[EI_VERSION] != EV_CURRENT)
        return problem(Kind::BadIdent, fmt::format("unknown ELF version (EI_VERSION {})", head[EI_VERSION]));
    return head[EI_DATA] == ELFDATA2LSB ? ByteOrder::Little : ByteOrder::Big;
}

/// The program header table, after checking that it lies inside the file
/// (libelf converts every field to host order).
Result<std::vector<GElf_Phdr>, LoadError> program_headers(Elf* elf, const GElf_Ehdr& eh, u64 file_size,
                                                          const Problem& problem) {
    // e_phnum itself, not elf_getphdrnum's answer, which libelf may quietly
    // shorten to what fits in the file; only PN_XNUM needs libelf (the real
    // count is then in section 0).
    size_t count = eh.e_phnum;
    if (eh.e_phnum == PN_XNUM && elf_getphdrnum(elf, &count) != 0)
        return problem(Kind::BadProgramHeaders, fmt::format("unreadable program header count ({})", elf_errmsg(-1)));
    if (count == 0) return problem(Kind::NoLoadSegments, "no PT_LOAD segments");
    if (eh.e_phentsize != sizeof(Elf64_Phdr))
        return problem(Kind::BadProgramHeaders,
                       fmt::format("e_phentsize is {}, not {}", eh.e_phentsize, sizeof(Elf64_Phdr)));
    // count < 2^32 (PN_XNUM extension at most), so the product cannot overflow.
    const u64 table_size = static_cast<u64>(count) * sizeof(Elf64_Phdr);
    if (eh.e_phoff > file_size || table_size > file_size - eh.e_phoff)
        return problem(Kind::Truncated, "truncated program header table: it lies outside the file");
    std::vector<GElf_Phdr> headers(count);
    for (size_t i = 0; i < count; ++i) {
        if (!gelf_getphdr(elf, static_cast<int>(i), &headers[i]))
            return problem(Kind::BadProgramHeaders,
                           fmt::format("program header {} is unreadable ({})", i, elf_errmsg(-1)));
    }
    return headers;
}

/// Checks one PT_LOAD against the file and RAM; where it goes if it passes.
Result<Segment, LoadError> plan_segment(usize i, const GElf_Phdr& ph, u64 file_size, const GuestRam& ram,
                                        const Problem& problem) {
    if (ph.p_filesz > ph.p_memsz)
        return problem(Kind::FileSizeExceedsMemSize,
                       fmt::format("segment {} has p_filesz > p_memsz ({:#x} > {:#x})", i, ph.p_filesz, ph.p_memsz));
    if (ph.p_offset > file_size || ph.p_filesz > file_size - ph.p_offset)
        return problem(
            Kind::SegmentOutsideFile,
            fmt::format("segment {} (offset {:#x}, size {:#x}) lies outside the file", i, ph.p_offset, ph.p_filesz));
    if (ph.p_memsz == 0) return Segment{ph.p_offset, 0, 0, 0};  // occupies no memory: nothing to place
    const u64 addr = ph.p_paddr ? ph.p_paddr : ph.p_vaddr;
    const auto phys = unmapped_to_physical(addr);
    if (!phys)
        return problem(Kind::SegmentNotUnmapped,
                       fmt::format("segment {} address {:#x} is not in an unmapped segment", i, addr));
    // The last byte must be in the same unmapped segment, physically
    // contiguous with the first: a segment may not wrap around or run from
    // kseg0 into kseg1 (which would alias low memory).
    const u64 span = ph.p_memsz - 1;
    const auto phys_last = span <= ~0ull - addr ? unmapped_to_physical(addr + span) : std::nullopt;
    if (!phys_last || *phys_last < *phys || *phys_last - *phys != span)
        return problem(Kind::SegmentNotUnmapped,
                       fmt::format("segment {} ({:#x}, size {:#x}) runs past the end of its unmapped segment", i, addr,
                                   ph.p_memsz));
    if (!ram.is_ram(GuestPhysAddr(*phys), ph.p_memsz))
        return problem(
            Kind::SegmentOutsideRam,
            fmt::format("segment {} (physical {:#x}-{:#x}) does not fit in guest RAM", i, *phys, *phys_last));
    return Segment{ph.p_offset, ph.p_filesz, ph.p_memsz, *phys};
}

/// e_entry must be inside the virtual range of some loaded segment, or the
/// first instruction would be fetched from wherever.
bool entry_is_loaded(u64 entry, const std::vector<GElf_Phdr>& headers) {
    return std::ranges::any_of(headers, [entry](const GElf_Phdr& ph) {
        return ph.p_type == PT_LOAD && ph.p_memsz != 0 && entry >= ph.p_vaddr && entry - ph.p_vaddr < ph.p_memsz;
    });
}

void init_libelf() {
    // elf_version must precede any other libelf call; once per process.
    static const bool ready = elf_version(EV_CURRENT) != EV_NONE;
    (void)ready;
}
}  // namespace

std::optional<u64> unmapped_to_physical(u64 a) {
    // MIPS64 PRA (MD00091), "Address Space": kseg0 and kseg1, the sign-extended
    // compatibility segments, map 512 MiB each onto physical 0; xkphys (bits
    // 63:62 = 10) holds the physical address in its low bits (36 here, this
    // board's PABITS) below a cache attribute.
    if (a >= 0xFFFFFFFF80000000ull && a <= 0xFFFFFFFFBFFFFFFFull) return a & 0x1FFFFFFFull;
    if ((a >> 62) == 2) return a & ((1ull << 36) - 1);
    if (a < 0x80000000ull) return a;  // already physical (linked for the physical address)
    return std::nullopt;
}

Result<LoadedKernel, LoadError> load_kernel_elf(const std::string& path, GuestRam& ram) {
    const Problem problem(path);
    Fd file{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
    if (file.fd < 0) return problem(Kind::Unreadable, std::strerror(errno));
    struct stat st {};
    if (::fstat(file.fd, &st) != 0) return problem(Kind::Unreadable, std::strerror(errno));
    if (!S_ISREG(st.st_mode)) return problem(Kind::Unreadable, "not a regular file");
    if (st.st_size <= 0) return problem(Kind::Empty, "file is empty");
    const u64 file_size = static_cast<u64>(st.st_size);

    LoadedKernel kernel;
    kernel.byte_order = DISCO_TRY(check_ident(file.fd, file_size, problem));

    // ELF_C_READ reads lazily through the descriptor: only the headers are
    // read, never sections the loader does not need (debug info, say).
    init_libelf();
    std::unique_ptr<Elf, ElfEnd> elf(elf_begin(file.fd, ELF_C_READ, nullptr));
    if (!elf || elf_kind(elf.get()) != ELF_K_ELF)
        return problem(Kind::NotElf, fmt::format("unreadable ELF ({})", elf_errmsg(-1)));
    GElf_Ehdr eh;
    if (!gelf_getehdr(elf.get(), &eh))
        return problem(Kind::Truncated, fmt::format("bad ELF header ({})", elf_errmsg(-1)));
    if (eh.e_machine != EM_MIPS)
        return problem(Kind::NotMips, fmt::format("not a MIPS ELF (e_machine {})", eh.e_machine));
    if (eh.e_type != ET_EXEC)
        return problem(Kind::NotExecutable, fmt::format("not an executable ELF (e_type {}, need ET_EXEC)", eh.e_type));
    kernel.entry = eh.e_entry;

    const auto headers = DISCO_TRY(program_headers(elf.get(), eh, file_size, problem));
    std::vector<Segment> segments;
    for (usize i = 0; i < headers.size(); ++i) {
        if (headers[i].p_type != PT_LOAD) continue;
        auto segment = DISCO_TRY(plan_segment(i, headers[i], file_size, ram, problem));
        if (segment.mem_size != 0) segments.push_back(segment);
    }
    if (segments.empty()) return problem(Kind::NoLoadSegments, "no PT_LOAD segments with contents");
    if (!entry_is_loaded(eh.e_entry, headers))
        return problem(Kind::EntryOutsideSegments,
                       fmt::format("entry point {:#x} is not inside any loaded segment", eh.e_entry));

    // Every segment checked (plan_segment: it is RAM): copy, with .bss zeroed.
    kernel.phys_low = ~0ull;
    std::vector<u8> image;
    for (const Segment& s : segments) {
        image.assign(s.mem_size, 0);
        if (!pread_all(file.fd, s.file_offset, std::span<u8>(image).first(s.file_size)))
            return problem(Kind::Unreadable, "file changed or became unreadable while loading");
        if (!ram.write(GuestPhysAddr(s.phys), image))
            return problem(Kind::SegmentOutsideRam,
                           fmt::format("segment at physical {:#x} does not fit in guest RAM", s.phys));
        kernel.phys_low = std::min(kernel.phys_low, s.phys);
        kernel.phys_high = std::max(kernel.phys_high, s.phys + s.mem_size);
    }
    return kernel;
}
}  // namespace disco::board
