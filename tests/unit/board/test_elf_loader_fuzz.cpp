// Random corruption of valid kernels: the loader must load or reject every
// variant, never crash, and never write outside what it reports loading.
// Seeded, so that a failure reproduces; tests/fuzz/fuzz_elf_loader.cpp is the
// open-ended version.
#include <catch2/catch.hpp>
#include <cstddef>
#include <random>

#include "tests/unit/board/elf_image.hpp"
#include "vmm/board/elf_loader.hpp"

using namespace disco;

namespace {
constexpr u64 kRamSize = 1 << 20;
constexpr u64 kKseg0 = 0xFFFFFFFF80000000ull;

std::vector<u8> two_segment_kernel(bool big) {
    test::ElfSpec spec{.big_endian = big, .entry = kKseg0 + 0x10000};
    spec.segments.push_back({.vaddr = kKseg0 + 0x10000, .bytes = std::vector<u8>(64, 0x5A)});
    spec.segments.push_back({.vaddr = kKseg0 + 0x20000, .bytes = std::vector<u8>(16, 0xA5), .memsz = 256});
    return test::build_elf(spec);
}

/// Values that sit on the edges the loader checks.
u64 interesting(std::mt19937_64& rng, u64 file_size) {
    const u64 values[] = {0,
                          1,
                          file_size - 1,
                          file_size,
                          file_size + 1,
                          kRamSize,
                          ~0ull,
                          ~0ull - 1,
                          1ull << 63,
                          kKseg0,
                          kKseg0 + kRamSize - 1,
                          0xFFFFFFFF9FFFFFFFull,
                          0x9000000000000000ull,
                          0x7FFFFFFFull,
                          0xFFFFFFFFA0000000ull,
                          rng()};
    return values[rng() % std::size(values)];
}

/// One random mutation: a byte, a header field set to an edge value, or truncation.
void mutate(std::vector<u8>& b, bool big, std::mt19937_64& rng) {
    const bool headers_whole = b.size() >= test::phdr_field(2, 0);  // both program headers still there
    const unsigned kind = static_cast<unsigned>(rng() % 4);
    switch (headers_whole || kind == 3 ? kind : 0) {
        case 0:
            b[rng() % b.size()] = static_cast<u8>(rng());
            break;
        case 1: {                                     // a 64-bit field of a program header
            const usize field = 8 + 8 * (rng() % 6);  // p_offset .. p_align
            test::patch<u64>(b, test::phdr_field(rng() % 2, field), interesting(rng, b.size()), big);
            break;
        }
        case 2: {  // an ELF header field
            const usize fields[] = {offsetof(Elf64_Ehdr, e_entry), offsetof(Elf64_Ehdr, e_phoff)};
            test::patch<u64>(b, fields[rng() % 2], interesting(rng, b.size()), big);
            if (rng() % 2) test::patch<u16>(b, offsetof(Elf64_Ehdr, e_phnum), static_cast<u16>(rng()), big);
            break;
        }
        default:
            b.resize(rng() % b.size());
            break;
    }
}
}  // namespace

TEST_CASE("elf loader: survives thousands of random corruptions", "[board][fuzz]") {
    GuestRam ram;
    REQUIRE(ram.add_region(GuestPhysAddr(0), kRamSize));
    std::mt19937_64 rng(0xD15C0);
    unsigned loaded = 0, rejected = 0;
    for (int i = 0; i < 10000; ++i) {
        const bool big = i % 2;
        auto b = two_segment_kernel(big);
        const int mutations = 1 + static_cast<int>(rng() % 4);
        for (int m = 0; m < mutations && !b.empty(); ++m) mutate(b, big, rng);
        test::MemFile f(b);
        auto r = board::load_kernel_elf(f.path(), ram);
        if (r) {
            ++loaded;
            REQUIRE(r->phys_low < r->phys_high);
            REQUIRE(r->phys_high <= kRamSize);
        } else {
            ++rejected;
            REQUIRE_FALSE(r.error().message.empty());
            REQUIRE(r.error().message.find('\n') == std::string::npos);
        }
    }
    // Both outcomes were exercised; what matters is that nothing crashed.
    CHECK(loaded > 0);
    CHECK(rejected > 0);
}
