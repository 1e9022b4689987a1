// The kernel ELF loader: good loads in both byte orders, and one clear line
// for each way a file can be wrong.
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstddef>

#include "tests/unit/board/elf_image.hpp"
#include "vmm/board/elf_loader.hpp"

using namespace disco;
using board::LoadError;
using Kind = LoadError::Kind;
using test::build_elf;
using test::ElfSegment;
using test::ElfSpec;
using test::MemFile;
using test::patch;
using test::phdr_field;

namespace {
constexpr u64 kRamSize = 1 << 20;
constexpr u64 kKseg0 = 0xFFFFFFFF80000000ull;

GuestRam make_ram() {
    GuestRam ram;
    REQUIRE(ram.add_region(GuestPhysAddr(0), kRamSize));
    // A pattern, so that zeroed .bss and untouched bytes can be told apart.
    std::vector<u8> fill(kRamSize, 0xAB);
    REQUIRE(ram.write(GuestPhysAddr(0), fill));
    return ram;
}

Result<board::LoadedKernel, LoadError> load(const std::vector<u8>& image, GuestRam& ram) {
    MemFile f(image);
    return board::load_kernel_elf(f.path(), ram);
}

/// One text segment at kseg0 0x10000 (4 bytes + 12 bytes of .bss), entry at its start.
ElfSpec simple(bool big_endian) {
    return ElfSpec{.big_endian = big_endian,
                   .entry = kKseg0 + 0x10000,
                   .segments = {ElfSegment{.vaddr = kKseg0 + 0x10000, .bytes = {1, 2, 3, 4}, .memsz = 16}}};
}

std::vector<u8> ram_bytes(const GuestRam& ram, u64 at, usize n) {
    std::vector<u8> out(n);
    REQUIRE(ram.read(GuestPhysAddr(at), out));
    return out;
}

/// Loading fails with this kind, one line naming the file, and RAM untouched.
void expect_error(const std::vector<u8>& image, Kind kind, const std::string& words) {
    GuestRam ram = make_ram();
    MemFile f(image);
    auto r = board::load_kernel_elf(f.path(), ram);
    REQUIRE_FALSE(r.has_value());
    INFO(r.error().message);
    CHECK(r.error().kind == kind);
    CHECK(r.error().message.find(words) != std::string::npos);
    CHECK(r.error().message.find(f.path()) != std::string::npos);
    CHECK(r.error().message.find('\n') == std::string::npos);
    CHECK(ram_bytes(ram, 0, kRamSize) == std::vector<u8>(kRamSize, 0xAB));
}
}  // namespace

TEST_CASE("elf loader: loads segments by physical address in both byte orders", "[board]") {
    for (bool big : {false, true}) {
        INFO((big ? "big-endian" : "little-endian"));
        GuestRam ram = make_ram();
        ElfSpec spec{.big_endian = big, .entry = kKseg0 + 0x10008};
        spec.segments.push_back({.vaddr = kKseg0 + 0x10000, .bytes = {1, 2, 3, 4, 5, 6, 7, 8, 9}});
        spec.segments.push_back({.type = PT_NOTE, .vaddr = 0x12345, .bytes = {0xEE}});                // not loaded
        spec.segments.push_back({.vaddr = kKseg0 + 0x20000, .bytes = {0xD0, 0xD1}, .memsz = 0x100});  // .data + .bss
        auto k = load(build_elf(spec), ram);
        REQUIRE(k.has_value());
        CHECK(k->entry == kKseg0 + 0x10008);
        CHECK(k->byte_order == (big ? ByteOrder::Big : ByteOrder::Little));
        CHECK(k->phys_low == 0x10000);
        CHECK(k->phys_high == 0x20100);
        CHECK(ram_bytes(ram, 0x10000, 10) == std::vector<u8>{1, 2, 3, 4, 5, 6, 7, 8, 9, 0xAB});
        auto data = ram_bytes(ram, 0x20000, 0x101);
        CHECK(data[0] == 0xD0);
        CHECK(data[1] == 0xD1);
        CHECK(std::all_of(data.begin() + 2, data.begin() + 0x100, [](u8 b) { return b == 0; }));  // .bss zeroed
        CHECK(data[0x100] == 0xAB);
        CHECK(ram_bytes(ram, 0x12345, 1)[0] == 0xAB);  // PT_NOTE left alone
    }
}

TEST_CASE("elf loader: p_paddr wins over p_vaddr; kseg1, xkphys and plain physical addresses", "[board]") {
    GuestRam ram = make_ram();
    ElfSpec spec{.entry = kKseg0 + 0x40000};
    spec.segments.push_back({.vaddr = kKseg0 + 0x40000, .paddr = 0x30000, .bytes = {0x11}});
    spec.segments.push_back({.vaddr = 0xFFFFFFFFA0050000ull, .bytes = {0x22}});  // kseg1
    spec.segments.push_back({.vaddr = 0x9000000000060000ull, .bytes = {0x33}});  // xkphys, cached
    spec.segments.push_back({.vaddr = 0x70000, .bytes = {0x44}});                // physical
    auto k = load(build_elf(spec), ram);
    REQUIRE(k.has_value());
    CHECK(ram_bytes(ram, 0x30000, 1)[0] == 0x11);
    CHECK(ram_bytes(ram, 0x40000, 1)[0] == 0xAB);  // not at the virtual address's physical image
    CHECK(ram_bytes(ram, 0x50000, 1)[0] == 0x22);
    CHECK(ram_bytes(ram, 0x60000, 1)[0] == 0x33);
    CHECK(ram_bytes(ram, 0x70000, 1)[0] == 0x44);
    CHECK(k->phys_low == 0x30000);
    CHECK(k->phys_high == 0x70001);
}

TEST_CASE("elf loader: a PT_LOAD with p_memsz 0 occupies nothing", "[board]") {
    GuestRam ram = make_ram();
    auto spec = simple(false);
    spec.segments.push_back({.vaddr = 0xC000000000000000ull, .bytes = {}});  // would be unmapped, but empty
    auto k = load(build_elf(spec), ram);
    REQUIRE(k.has_value());
    CHECK(k->phys_high == 0x10010);
}

TEST_CASE("elf loader: unmapped_to_physical", "[board]") {
    using board::unmapped_to_physical;
    CHECK(unmapped_to_physical(0xFFFFFFFF80000000ull) == 0u);
    CHECK(unmapped_to_physical(0xFFFFFFFF9FFFFFFFull) == 0x1FFFFFFFu);
    CHECK(unmapped_to_physical(0xFFFFFFFFA0001000ull) == 0x1000u);
    CHECK(unmapped_to_physical(0xFFFFFFFFBFFFFFFFull) == 0x1FFFFFFFu);
    CHECK(unmapped_to_physical(0x9800000012345678ull) == 0x12345678u);
    CHECK(unmapped_to_physical(0xBFFFFFFFFFFFFFFFull) == (1ull << 36) - 1);
    CHECK(unmapped_to_physical(0x7FFFFFFFull) == 0x7FFFFFFFu);
    CHECK_FALSE(unmapped_to_physical(0x80000000ull));          // xuseg, mapped
    CHECK_FALSE(unmapped_to_physical(0xC000000000000000ull));  // xkseg, mapped
    CHECK_FALSE(unmapped_to_physical(0xFFFFFFFFC0000000ull));  // ksseg, mapped
    CHECK_FALSE(unmapped_to_physical(0x4000000000000000ull));  // xsseg, mapped
}

TEST_CASE("elf loader: file-level errors", "[board]") {
    GuestRam ram = make_ram();
    SECTION("missing file") {
        auto r = board::load_kernel_elf("/nonexistent/disco-kernel.elf", ram);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().kind == Kind::Unreadable);
        CHECK(r.error().message == "kernel /nonexistent/disco-kernel.elf: No such file or directory");
    }
    SECTION("a directory") {
        auto r = board::load_kernel_elf("/", ram);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().kind == Kind::Unreadable);
        CHECK(r.error().message.find("not a regular file") != std::string::npos);
    }
    SECTION("unreadable (permissions)") {
        if (::geteuid() == 0) return;  // root reads anything
        char name[] = "/tmp/disco-elf-XXXXXX";
        const int fd = mkstemp(name);
        REQUIRE(fd >= 0);
        ::close(fd);
        ::chmod(name, 0);
        auto r = board::load_kernel_elf(name, ram);
        ::unlink(name);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().kind == Kind::Unreadable);
    }
}

TEST_CASE("elf loader: header errors", "[board]") {
    const auto good = build_elf(simple(false));
    expect_error({}, Kind::Empty, "file is empty");
    expect_error({0x7F, 'E', 'L'}, Kind::NotElf, "not an ELF file");
    expect_error({'#', '!', '/', 'b', 'i', 'n', '/', 's', 'h', '\n'}, Kind::NotElf, "not an ELF file");
    expect_error(std::vector<u8>(good.begin(), good.begin() + 40), Kind::Truncated, "truncated ELF header");
    auto b = good;
    b[EI_CLASS] = ELFCLASS32;
    expect_error(b, Kind::NotElf64, "not a 64-bit ELF");
    b = good;
    b[EI_DATA] = 7;
    expect_error(b, Kind::BadIdent, "byte order");
    b = good;
    b[EI_VERSION] = 2;
    expect_error(b, Kind::BadIdent, "ELF version");
    for (bool big : {false, true}) {
        auto spec = simple(big);
        spec.machine = EM_X86_64;
        expect_error(build_elf(spec), Kind::NotMips, "not a MIPS ELF");
        spec = simple(big);
        spec.type = ET_DYN;
        expect_error(build_elf(spec), Kind::NotExecutable, "ET_EXEC");
    }
}

TEST_CASE("elf loader: program header table errors", "[board]") {
    for (bool big : {false, true}) {
        INFO((big ? "big-endian" : "little-endian"));
        auto spec = simple(big);
        spec.segments.clear();
        expect_error(build_elf(spec), Kind::NoLoadSegments, "no PT_LOAD segments");
        spec.segments.push_back({.type = PT_NOTE, .vaddr = kKseg0, .bytes = {1}});
        expect_error(build_elf(spec), Kind::NoLoadSegments, "no PT_LOAD segments");

        auto b = build_elf(simple(big));
        patch<u16>(b, offsetof(Elf64_Ehdr, e_phentsize), 32, big);
        expect_error(b, Kind::BadProgramHeaders, "e_phentsize");
        b = build_elf(simple(big));
        patch<u64>(b, offsetof(Elf64_Ehdr, e_phoff), b.size() - 8, big);
        expect_error(b, Kind::Truncated, "truncated program header table");
        b = build_elf(simple(big));
        patch<u64>(b, offsetof(Elf64_Ehdr, e_phoff), ~0ull - 4, big);
        expect_error(b, Kind::Truncated, "truncated program header table");
        b = build_elf(simple(big));
        patch<u16>(b, offsetof(Elf64_Ehdr, e_phnum), 0xFFFE, big);
        expect_error(b, Kind::Truncated, "truncated program header table");
    }
}

TEST_CASE("elf loader: segment errors", "[board]") {
    for (bool big : {false, true}) {
        INFO((big ? "big-endian" : "little-endian"));
        const auto good = build_elf(simple(big));
        const usize off = phdr_field(0, offsetof(Elf64_Phdr, p_offset));
        const usize filesz = phdr_field(0, offsetof(Elf64_Phdr, p_filesz));
        const usize memsz = phdr_field(0, offsetof(Elf64_Phdr, p_memsz));
        const usize vaddr = phdr_field(0, offsetof(Elf64_Phdr, p_vaddr));

        auto b = good;
        patch<u64>(b, off, good.size() - 2, big);  // 4 bytes from 2 before the end
        expect_error(b, Kind::SegmentOutsideFile, "lies outside the file");
        b = good;
        patch<u64>(b, off, ~0ull - 1, big);  // offset + filesz overflows
        expect_error(b, Kind::SegmentOutsideFile, "lies outside the file");
        b = good;
        patch<u64>(b, filesz, 17, big);
        expect_error(b, Kind::FileSizeExceedsMemSize, "p_filesz > p_memsz");

        auto spec = simple(big);
        spec.segments[0].memsz = kRamSize;  // 0x10000 + 1 MiB runs past the end of RAM
        expect_error(build_elf(spec), Kind::SegmentOutsideRam, "does not fit in guest RAM");
        b = good;
        patch<u64>(b, memsz, ~0ull, big);  // address + size overflows
        expect_error(b, Kind::SegmentNotUnmapped, "runs past the end of its unmapped segment");
        spec = simple(big);
        spec.entry = spec.segments[0].vaddr = 0x7FFFFFF0;
        spec.segments[0].memsz = 0x20;  // from physical into xuseg
        expect_error(build_elf(spec), Kind::SegmentNotUnmapped, "runs past the end of its unmapped segment");
        spec = simple(big);
        spec.entry = spec.segments[0].vaddr = 0xFFFFFFFF9FFFFFF0ull;
        spec.segments[0].memsz = 0x20;  // from kseg0 into kseg1, which would alias physical 0
        expect_error(build_elf(spec), Kind::SegmentNotUnmapped, "runs past the end of its unmapped segment");

        for (u64 mapped : {0xC000000000000010ull, 0x80000000ull, 0xFFFFFFFFC0000000ull}) {
            b = good;
            patch<u64>(b, vaddr, mapped, big);
            expect_error(b, Kind::SegmentNotUnmapped,
                         fmt::format("address {:#x} is not in an unmapped segment", mapped));
        }
        spec = simple(big);
        spec.entry = kKseg0 + 0x20000;
        expect_error(build_elf(spec), Kind::EntryOutsideSegments, "entry point 0xffffffff80020000");
    }
}

TEST_CASE("elf loader: a bad later segment leaves RAM untouched", "[board]") {
    auto spec = simple(false);
    spec.segments.push_back({.vaddr = kKseg0 + 0x20000, .bytes = {9}, .memsz = 2 * kRamSize});
    expect_error(build_elf(spec), Kind::SegmentOutsideRam, "segment 1");
}
