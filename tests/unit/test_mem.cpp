// Guest RAM, the MMIO bus and code-page watching (vmm/mem).
#include <array>
#include <catch2/catch.hpp>

#include "vmm/mem/code_watch.hpp"
#include "vmm/mem/endian.hpp"
#include "vmm/mem/guest_ram.hpp"
#include "vmm/mem/mmio.hpp"

using namespace disco;

TEST_CASE("guest RAM accessors are bounds- and overflow-checked", "[mem]") {
    GuestRam ram;
    REQUIRE(ram.add_region(GuestPhysAddr(0), 1 << 20));
    REQUIRE(ram.add_region(GuestPhysAddr(0x20000000), 1 << 20));
    CHECK_FALSE(ram.add_region(GuestPhysAddr(0x80000), 1 << 20));  // overlaps
    std::array<u8, 8> buf{1, 2, 3, 4, 5, 6, 7, 8};
    CHECK(ram.write(GuestPhysAddr(0xFFFF8), buf));
    CHECK_FALSE(ram.write(GuestPhysAddr(0xFFFF9), buf));                    // straddles the end
    CHECK_FALSE(ram.read(GuestPhysAddr(~0ull - 3), buf));                   // wraps around
    CHECK_FALSE(ram.host_span(GuestPhysAddr(0x100000), 1).has_value());     // the hole
    CHECK_FALSE(ram.is_ram(GuestPhysAddr(0xFF000), 0x2000));                // runs into the hole
    CHECK(ram.host_span(GuestPhysAddr(0x1000), 0x1000).has_value());        // one page
    CHECK_FALSE(ram.host_span(GuestPhysAddr(0x1800), 0x1000).has_value());  // two pages: no common pointer
    CHECK(ram.host_page(GuestPhysAddr(0x20000123)) != nullptr);
    CHECK(ram.host_page(GuestPhysAddr(0x1FFFF000)) == nullptr);
    CHECK(ram.total_size() == 2u << 20);
}

TEST_CASE("endian helpers convert in one place", "[mem]") {
    u8 b[4];
    store_guest<ByteOrder::Big, u32>(b, 0x11223344);
    CHECK(b[0] == 0x11);
    CHECK(load_guest<ByteOrder::Little, u32>(b) == 0x44332211);
    store_guest<ByteOrder::Little, u32>(b, 0x11223344);
    CHECK(b[0] == 0x44);
}

namespace {
struct NullDev : MmioDevice {
    u64 mmio_read(u64, unsigned) override { return 0; }
    void mmio_write(u64, unsigned, u64) override {}
    std::string name() const override { return "null"; }
};
}  // namespace

TEST_CASE("MMIO bus rejects overlaps and finds offsets", "[mem]") {
    MmioBus bus;
    auto d = std::make_shared<NullDev>();
    REQUIRE(bus.add(GuestPhysAddr(0x1000), 0x100, d));
    CHECK_FALSE(bus.add(GuestPhysAddr(0x10F0), 0x100, d));
    CHECK_FALSE(bus.add(GuestPhysAddr(0xF80), 0x100, d));
    CHECK_FALSE(bus.add(GuestPhysAddr(~0ull - 4), 0x100, d));
    auto hit = bus.find(GuestPhysAddr(0x1010), 4);
    REQUIRE(hit);
    CHECK(hit->offset == 0x10);
    CHECK_FALSE(bus.find(GuestPhysAddr(0x10FE), 4));  // crosses the window's end
    CHECK_FALSE(bus.find(GuestPhysAddr(0x2000), 4));
}

TEST_CASE("code watch bumps generations on writes to watched pages only", "[mem]") {
    CodeWatch cw(1 << 20);
    const u32 g0 = cw.watch(3);
    const u64 e0 = cw.flush_epoch();
    CHECK(cw.watched(3));
    cw.note_write(4);
    CHECK(cw.generation(4) == 0);
    cw.note_write(3);
    CHECK(cw.generation(3) == g0 + 1);
    CHECK_FALSE(cw.watched(3));
    cw.note_write(3);  // no longer watched: no bump
    CHECK(cw.generation(3) == g0 + 1);
    cw.watch(3);
    CHECK(cw.flush_epoch() == e0 + 1);
    cw.note_write(1u << 30);  // out of range: ignored
}

TEST_CASE("device writes to guest RAM are reported page by page to the DMA observer", "[mem]") {
    disco::GuestRam ram;
    REQUIRE(ram.add_region(disco::GuestPhysAddr(0), 16 * disco::kPageSize));
    std::vector<disco::u64> pages;
    ram.set_dma_observer([&](disco::u64 p) { pages.push_back(p); });
    const std::vector<disco::u8> bytes(disco::kPageSize + 2, 0xAA);
    REQUIRE(ram.write(disco::GuestPhysAddr(3 * disco::kPageSize - 1), bytes));
    CHECK(pages == std::vector<disco::u64>{2, 3, 4});
    pages.clear();
    ram.note_dma_write(disco::GuestPhysAddr(5 * disco::kPageSize), 0);
    CHECK(pages.empty());
    CHECK_FALSE(ram.write(disco::GuestPhysAddr(16 * disco::kPageSize), bytes));
    CHECK(pages.empty());  // nothing written, nothing reported
}
