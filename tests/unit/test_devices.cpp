// The bare-metal board's devices and the kernel loader (vmm/dev, vmm/board).
#include <elf.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "vmm/board/elf_loader.hpp"
#include "vmm/dev/test_exit.hpp"
#include "vmm/dev/uart16550.hpp"

using namespace disco;

TEST_CASE("16550: transmit, line status, divisor latch, loopback, interrupts", "[dev]") {
    std::string out;
    std::vector<bool> irq;
    dev::Uart16550 uart([&](std::span<const u8> b) { out.append(b.begin(), b.end()); },
                        [&](bool level) { irq.push_back(level); });
    uart.mmio_write(0, 1, 'h');
    uart.mmio_write(0, 1, 'i');
    CHECK(out == "hi");
    CHECK((uart.mmio_read(5, 1) & 0x60) == 0x60);  // THRE | TEMT
    CHECK((uart.mmio_read(5, 1) & 1) == 0);        // no data ready
    uart.mmio_write(3, 1, 0x80);                   // DLAB
    uart.mmio_write(0, 1, 0x34);
    uart.mmio_write(1, 1, 0x12);
    CHECK(uart.mmio_read(0, 1) == 0x34);
    CHECK(uart.mmio_read(1, 1) == 0x12);
    uart.mmio_write(3, 1, 0x03);
    CHECK(out == "hi");  // divisor writes are not output
    // Receive with the RDA interrupt enabled.
    uart.mmio_write(1, 1, 0x01);
    const u8 in[] = {'x', 'y'};
    uart.push_input(in);
    REQUIRE(!irq.empty());
    CHECK(irq.back() == true);
    CHECK((uart.mmio_read(2, 1) & 0x0F) == 0x04);  // IIR: received data available
    CHECK(uart.mmio_read(0, 1) == 'x');
    CHECK(uart.mmio_read(0, 1) == 'y');
    CHECK(irq.back() == false);
    CHECK((uart.mmio_read(2, 1) & 0x01) == 0x01);  // no interrupt pending
    // THRE interrupt: raised when enabled, cleared by reading IIR.
    uart.mmio_write(1, 1, 0x02);
    CHECK(irq.back() == true);
    CHECK((uart.mmio_read(2, 1) & 0x0F) == 0x02);
    CHECK(irq.back() == false);
    // Loopback: transmitted bytes come back, the console sees nothing.
    uart.mmio_write(1, 1, 0x00);
    uart.mmio_write(4, 1, 0x10);
    uart.mmio_write(0, 1, 'L');
    CHECK(uart.mmio_read(0, 1) == 'L');
    CHECK(out == "hi");
    uart.mmio_write(7, 1, 0x5A);
    CHECK(uart.mmio_read(7, 1) == 0x5A);
}

TEST_CASE("the test device ends the VM with the status written", "[dev]") {
    int status = -1;
    dev::TestExit t([&](int s) { status = s; });
    t.mmio_write(4, 4, 3);
    CHECK(status == -1);
    t.mmio_write(0, 4, 0x1FF);
    CHECK(status == 0xFF);
}

namespace {
/// A minimal ELF64 MIPS executable with one PT_LOAD segment, in either byte order.
std::vector<u8> make_elf(bool big, u64 vaddr, const std::vector<u8>& payload, u64 memsz) {
    auto put = [&](std::vector<u8>& b, usize off, u64 v, unsigned n) {
        for (unsigned i = 0; i < n; ++i) b[off + i] = static_cast<u8>(v >> (8 * (big ? n - 1 - i : i)));
    };
    std::vector<u8> b(sizeof(Elf64_Ehdr) + sizeof(Elf64_Phdr) + payload.size(), 0);
    std::memcpy(b.data(), ELFMAG, SELFMAG);
    b[EI_CLASS] = ELFCLASS64;
    b[EI_DATA] = big ? ELFDATA2MSB : ELFDATA2LSB;
    b[EI_VERSION] = EV_CURRENT;
    put(b, offsetof(Elf64_Ehdr, e_type), ET_EXEC, 2);
    put(b, offsetof(Elf64_Ehdr, e_machine), EM_MIPS, 2);
    put(b, offsetof(Elf64_Ehdr, e_version), EV_CURRENT, 4);
    put(b, offsetof(Elf64_Ehdr, e_entry), vaddr, 8);
    put(b, offsetof(Elf64_Ehdr, e_phoff), sizeof(Elf64_Ehdr), 8);
    put(b, offsetof(Elf64_Ehdr, e_ehsize), sizeof(Elf64_Ehdr), 2);
    put(b, offsetof(Elf64_Ehdr, e_phentsize), sizeof(Elf64_Phdr), 2);
    put(b, offsetof(Elf64_Ehdr, e_phnum), 1, 2);
    const usize ph = sizeof(Elf64_Ehdr);
    put(b, ph + offsetof(Elf64_Phdr, p_type), PT_LOAD, 4);
    put(b, ph + offsetof(Elf64_Phdr, p_offset), sizeof(Elf64_Ehdr) + sizeof(Elf64_Phdr), 8);
    put(b, ph + offsetof(Elf64_Phdr, p_vaddr), vaddr, 8);
    put(b, ph + offsetof(Elf64_Phdr, p_filesz), payload.size(), 8);
    put(b, ph + offsetof(Elf64_Phdr, p_memsz), memsz, 8);
    std::memcpy(b.data() + sizeof(Elf64_Ehdr) + sizeof(Elf64_Phdr), payload.data(), payload.size());
    return b;
}

struct TempFile {
    std::string path;
    explicit TempFile(const std::vector<u8>& bytes) {
        char name[] = "/tmp/disco-elf-XXXXXX";
        const int fd = mkstemp(name);
        path = name;
        if (fd >= 0) {
            (void)!::write(fd, bytes.data(), bytes.size());
            ::close(fd);
        }
    }
    ~TempFile() { ::unlink(path.c_str()); }
};

Result<board::LoadedKernel, board::LoadError> load(const std::vector<u8>& bytes, GuestRam& ram) {
    TempFile f(bytes);
    return board::load_kernel_elf(f.path, ram);
}
}  // namespace

TEST_CASE("the ELF loader loads both byte orders by physical address", "[board]") {
    for (bool big : {false, true}) {
        GuestRam ram;
        REQUIRE(ram.add_region(GuestPhysAddr(0), 1 << 20));
        std::vector<u8> one(1, 0xAB);
        (void)ram.write(GuestPhysAddr(0x10010), one);  // inside the .bss part: must be zeroed
        auto k = load(make_elf(big, 0xFFFFFFFF80010000ull, {1, 2, 3, 4}, 0x20), ram);
        REQUIRE(k.has_value());
        CHECK(k->entry == 0xFFFFFFFF80010000ull);
        CHECK(k->byte_order == (big ? ByteOrder::Big : ByteOrder::Little));
        CHECK(k->phys_low == 0x10000);
        CHECK(k->phys_high == 0x10020);
        u8 got[0x11];
        REQUIRE(ram.read(GuestPhysAddr(0x10000), got));
        CHECK(got[0] == 1);
        CHECK(got[3] == 4);
        CHECK(got[0x10] == 0);
    }
}

TEST_CASE("the ELF loader names each problem in one line", "[board]") {
    GuestRam ram;
    REQUIRE(ram.add_region(GuestPhysAddr(0), 1 << 20));
    auto good = make_elf(false, 0xFFFFFFFF80010000ull, {1, 2, 3, 4}, 4);
    auto expect_error = [&](std::vector<u8> bytes, const std::string& what) {
        auto r = load(bytes, ram);
        REQUIRE_FALSE(r.has_value());
        INFO(r.error().message);
        CHECK(r.error().message.find(what) != std::string::npos);
        CHECK(r.error().message.find('\n') == std::string::npos);
    };
    expect_error({}, "empty");
    expect_error({'h', 'e', 'l', 'l', 'o', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, "not an ELF");
    expect_error(std::vector<u8>(good.begin(), good.begin() + 40), "truncated");
    auto b = good;
    b[EI_CLASS] = ELFCLASS32;
    expect_error(b, "64-bit");
    b = good;
    b[offsetof(Elf64_Ehdr, e_machine)] = EM_X86_64;
    expect_error(b, "not a MIPS ELF");
    b = good;
    b[offsetof(Elf64_Ehdr, e_type)] = ET_DYN;
    expect_error(b, "ET_EXEC");
    expect_error(make_elf(false, 0xFFFFFFFF80FF0000ull, {1}, 0x100000), "does not fit");
    expect_error(make_elf(false, 0xC000000000000000ull, {1}, 1), "unmapped segment");
    expect_error(make_elf(false, 0xFFFFFFFF80010000ull, {1, 2, 3, 4}, 2), "p_filesz > p_memsz");
    b = good;
    b[sizeof(Elf64_Ehdr) + offsetof(Elf64_Phdr, p_offset) + 6] = 0x7F;  // offset far past the end
    expect_error(b, "outside the file");
    TempFile none({});
    ::unlink(none.path.c_str());
    auto r = board::load_kernel_elf(none.path, ram);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().message.find(none.path) != std::string::npos);
}

TEST_CASE("the ELF loader survives random corruption", "[board][fuzz]") {
    GuestRam ram;
    REQUIRE(ram.add_region(GuestPhysAddr(0), 1 << 20));
    const auto good = make_elf(true, 0xFFFFFFFF80010000ull, std::vector<u8>(64, 0x5A), 128);
    std::mt19937_64 rng(2026);
    unsigned loaded = 0;
    for (int i = 0; i < 2000; ++i) {
        auto b = good;
        const int flips = 1 + static_cast<int>(rng() % 8);
        for (int f = 0; f < flips; ++f) b[rng() % b.size()] = static_cast<u8>(rng());
        if (rng() % 4 == 0) b.resize(rng() % b.size());
        if (load(b, ram)) ++loaded;
    }
    CHECK(loaded < 2000);  // corruption was seen; what matters is that nothing crashed
}
