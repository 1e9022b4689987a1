// The content-based page scanner and the footprint figures: identical pages
// of two VMs on one machine memory end up in one frame (KSM's pages_shared /
// pages_sharing say so), different ones stay apart, and a write afterwards
// gets the writer its own copy back.
#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>
#include <thread>

#include "tests/unit/mem/machine_ram.hpp"
#include "vmm/mem/guest_ram.hpp"
#include "vmm/mem/machine_memory.hpp"
#include "vmm/mem/shootdown.hpp"
#include "vmm/monitor/footprint.hpp"
#include "vmm/monitor/page_scanner.hpp"

using namespace disco;
using namespace disco::monitor;

namespace {
constexpr u64 kPages = 64;

Footprint measure(const GuestRam& a, const GuestRam& b) {
    const std::pair<std::string, const GuestRam*> vms[] = {{"a", &a}, {"b", &b}};
    return measure_footprint(vms);
}

/// Waits (bounded) until the scanner merged at least n pages.
void wait_merged(const PageScanner& scanner, u64 n) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (scanner.stats().merged < n && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
}
}  // namespace

TEST_CASE("the page scanner merges identical pages of two VMs and only those", "[page-scan]") {
    const auto mm = test::test_machine_memory(1, 4 << 20);
    {
        test::TestVmRam vm_a(*mm, 1, kPages * kPageSize), vm_b(*mm, 2, kPages * kPageSize);
        GuestRam &a = vm_a.ram, &b = vm_b.ram;
        // Every page of both VMs distinct, except 8 "kernel text" pages both hold (at other addresses).
        for (u64 p = 0; p < kPages; ++p) {
            std::vector<u8> page(kPageSize, 0);
            std::memcpy(page.data(), &p, sizeof p);
            page[100] = 0xA;
            REQUIRE(a.write(GuestPhysAddr(p * kPageSize), page));
            page[100] = 0xB;
            REQUIRE(b.write(GuestPhysAddr(p * kPageSize), page));
        }
        for (u64 i = 0; i < 8; ++i) {
            const std::vector<u8> text(kPageSize, static_cast<u8>(0x40 + i));
            REQUIRE(a.write(GuestPhysAddr((10 + i) * kPageSize), text));
            REQUIRE(b.write(GuestPhysAddr((40 + i) * kPageSize), text));
        }
        const Footprint before = measure(a, b);
        CHECK(before.pages_shared == 0);
        CHECK(before.machine_frames_in_use == 2 * kPages);

        PageScanner scanner(1e6);
        scanner.add(a);
        scanner.add(b);
        wait_merged(scanner, 8);
        const ScanStats s = scanner.stats();
        CHECK(s.merged == 8);
        CHECK(s.passes >= 2);  // a page must look the same on two passes first
        CHECK(s.cpu_seconds > 0);

        const Footprint after = measure(a, b);
        CHECK(after.pages_shared == 8);
        CHECK(after.pages_sharing == 8);
        CHECK(after.bytes_saved() == 8 * kPageSize);
        CHECK(after.machine_frames_in_use == 2 * kPages - 8);
        CHECK(after.vms[0].pages_on_shared == 8);
        CHECK(after.vms[1].frames_private == kPages - 8);
        CHECK(after.to_json()["pages_sharing"] == 8);

        // A write to one copy gets that VM its own frame; the other keeps the text.
        scanner.remove(b);
        const u8 mark[1] = {0xEE};
        REQUIRE(b.write(GuestPhysAddr(40 * kPageSize), mark));
        CHECK(b.host_page(GuestPhysAddr(40 * kPageSize))[0] == 0xEE);
        CHECK(a.host_page(GuestPhysAddr(10 * kPageSize))[0] == 0x40);
        CHECK(measure(a, b).pages_sharing == 7);
        scanner.remove(a);
    }
    CHECK(mm->totals().frames_in_use == 0);
}

TEST_CASE("footprints count only the guest pages and frames that host memory backs", "[page-scan][footprint]") {
    const auto mm = test::test_machine_memory(1, 4 << 20);
    test::TestVmRam vm_a(*mm, 1, kPages * kPageSize), vm_b(*mm, 2, kPages * kPageSize);
    GuestRam &a = vm_a.ram, &b = vm_b.ram;
    // A fresh guest's RAM is holes in the machine memory file: given, not used.
    const Footprint fresh = measure(a, b);
    CHECK(fresh.machine_frames_in_use == 2 * kPages);
    CHECK(fresh.machine_frames_used == 0);
    CHECK(fresh.vms[0].guest_pages_used == 0);

    const std::vector<u8> text(kPageSize, 0x5A);
    for (u64 p = 0; p < 5; ++p) REQUIRE(a.write(GuestPhysAddr(p * kPageSize), text));
    for (u64 p = 0; p < 3; ++p) REQUIRE(b.write(GuestPhysAddr(p * kPageSize), text));
    const Footprint written = measure(a, b);
    CHECK(written.vms[0].guest_pages_used == 5);
    CHECK(written.vms[1].guest_pages_used == 3);
    CHECK(written.machine_frames_used == 8);
    CHECK(written.to_json()["machine_frames_used"] == 8);

    // Sharing B's three pages with A's frames: the guests still use 8 pages, the machine 5 frames.
    for (u64 p = 0; p < 3; ++p) REQUIRE(b.share_from(p, a, p));
    const Footprint shared = measure(a, b);
    CHECK(shared.vms[0].guest_pages_used + shared.vms[1].guest_pages_used == 8);
    CHECK(shared.machine_frames_used == 5);
}
