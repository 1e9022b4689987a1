// The global disk page cache (vmm/mem/disk_page_cache.hpp) and the pmap's
// side of read-time sharing (GuestRam::map_shared_frame): two VMs on one
// machine memory show one cached frame, copy-on-write; writes get a private
// copy for the writer only; the cache's capacity and eviction; every frame
// back in its pool at the end.
#include <catch2/catch.hpp>
#include <cstring>
#include <vector>

#include "tests/unit/mem/machine_ram.hpp"
#include "vmm/mem/disk_page_cache.hpp"

using namespace disco;
using namespace disco::test;

namespace {
constexpr u64 kVmBytes = 64 * kPageSize;
const DiskImageId kImage{1, 2, 1 << 20, 12345};

/// A frame holding block `block`'s bytes (filled with a pattern of it), with one reference.
MachineFrame load_block(MachineMemory& mm, u64 block) {
    auto f = mm.allocate(0);
    REQUIRE(f);
    std::memset(mm.host(*f), static_cast<int>(0x40 + block), kPageSize);
    return *f;
}

/// Caches a block as a virtio-blk miss does; returns the cached frame with the caller's reference.
MachineFrame cache_block(DiskPageCache& cache, u64 block) {
    MachineMemory& mm = cache.machine_memory();
    const MachineFrame f = load_block(mm, block);
    auto cached = cache.insert(kImage, block, f);
    REQUIRE(cached);
    REQUIRE(*cached == f);
    return f;
}

MachineFrame frame_of(const GuestRam& ram, u64 ppage) {
    auto f = ram.machine_memory()->frame_of(ram.host_page(GuestPhysAddr(ppage << kPageShift)));
    REQUIRE(f);
    return *f;
}

u8 byte_at(const GuestRam& ram, u64 ppage) {
    u8 b[1];
    REQUIRE(ram.read(GuestPhysAddr(ppage << kPageShift), b));
    return b[0];
}
}  // namespace

TEST_CASE("disk page cache: two VMs map one cached frame; a write gets the writer a private copy",
          "[disk-cache][mem]") {
    auto mm = test_machine_memory(1, 1 << 20);
    {
        DiskPageCache cache(*mm, 16);
        TestVmRam a(*mm, 1, kVmBytes), b(*mm, 2, kVmBytes);
        const u64 in_use_before = mm->totals().frames_in_use;
        const MachineFrame f = cache_block(cache, 7);
        REQUIRE(a.ram.map_shared_frame(3, f));
        auto again = cache.find(kImage, 7);
        REQUIRE(again);
        CHECK(*again == f);
        REQUIRE(b.ram.map_shared_frame(5, *again));
        (void)mm->release(f);  // the device path's references
        (void)mm->release(*again);

        // One frame for both pages: the cache's, with the right bytes.
        CHECK(frame_of(a.ram, 3) == f);
        CHECK(frame_of(b.ram, 5) == f);
        CHECK(byte_at(a.ram, 3) == 0x47);
        CHECK(byte_at(b.ram, 5) == 0x47);
        CHECK(mm->ref_count(f) == 3);  // the cache, A, B
        CHECK(mm->user_count(f) == 2);
        for (const GuestRam* r : {&a.ram, &b.ram}) {
            const u64 page = r == &a.ram ? 3 : 5;
            CHECK(*r->state_of(page) & page_state::kShared);
            CHECK_FALSE(r->write_allowed(page));
        }
        // The pages' two old frames went back; the block is held once.
        CHECK(mm->totals().frames_in_use == in_use_before - 1);
        CHECK(a.ram.page_op_stats().frames_mapped == 1);

        // A device write into A's page (DMA): A gets a copy, B and the cache keep the block.
        const u8 mine[4] = {1, 2, 3, 4};
        REQUIRE(a.ram.write(GuestPhysAddr(3 * kPageSize), mine));
        CHECK(frame_of(a.ram, 3) != f);
        CHECK(byte_at(a.ram, 3) == 1);
        CHECK(frame_of(b.ram, 5) == f);
        CHECK(byte_at(b.ram, 5) == 0x47);
        CHECK(mm->host(f)[0] == 0x47);
        CHECK(a.ram.page_op_stats().cow_breaks == 1);

        // A vCPU store's slow path in B: a copy too, since the cache still holds the frame.
        b.ram.resolve_write(5);
        CHECK(b.ram.write_allowed(5));
        CHECK(frame_of(b.ram, 5) != f);
        CHECK(byte_at(b.ram, 5) == 0x47);
        CHECK(b.ram.page_op_stats().cow_breaks == 1);
        CHECK(mm->ref_count(f) == 1);  // the cache's alone

        const DiskCacheStats s = cache.stats();
        CHECK(s.loads == 1);
        CHECK(s.hits == 1);
        CHECK(s.frames_held == 1);
        CHECK(s.frames_only_cached == 1);
    }
    CHECK(mm->totals().frames_in_use == 0);
}

TEST_CASE("disk page cache: pinned, replicated or non-RAM pages are refused and left alone", "[disk-cache][mem]") {
    auto mm = test_machine_memory(2, 1 << 20);
    {
        DiskPageCache cache(*mm, 16);
        TestVmRam a(*mm, 1, kVmBytes);
        const MachineFrame f = cache_block(cache, 1);
        const MachineFrame before = frame_of(a.ram, 2);
        {
            DmaPin pin(a.ram, GuestPhysAddr(2 * kPageSize), 16, true);  // device I/O in flight
            auto r = a.ram.map_shared_frame(2, f);
            REQUIRE_FALSE(r);
            CHECK(r.error().kind == PageOpError::Kind::Busy);
        }
        CHECK(frame_of(a.ram, 2) == before);
        REQUIRE(a.ram.replicate(4));
        auto r = a.ram.map_shared_frame(4, f);
        REQUIRE_FALSE(r);
        CHECK(r.error().kind == PageOpError::Kind::NotMovable);
        CHECK_FALSE(a.ram.map_shared_frame(kVmBytes / kPageSize + 10, f));  // beyond RAM
        CHECK(mm->ref_count(f) == 2);                                       // nobody took a reference
        // Mapping the same frame twice into one page is harmless.
        REQUIRE(a.ram.map_shared_frame(6, f));
        REQUIRE(a.ram.map_shared_frame(6, f));
        CHECK(mm->ref_count(f) == 3);
        (void)mm->release(f);
    }
    CHECK(mm->totals().frames_in_use == 0);
}

TEST_CASE("disk page cache: capacity, eviction of unmapped entries only, forget and takeover", "[disk-cache][mem]") {
    auto mm = test_machine_memory(1, 1 << 20);
    {
        DiskPageCache cache(*mm, 2);
        TestVmRam a(*mm, 1, kVmBytes);
        const MachineFrame f0 = cache_block(cache, 0);
        REQUIRE(a.ram.map_shared_frame(1, f0));  // block 0 is mapped
        (void)mm->release(f0);
        const MachineFrame f1 = cache_block(cache, 1);
        (void)mm->release(f1);  // block 1: only the cache holds it
        // Full: a third block evicts block 1 (unmapped), never block 0.
        const MachineFrame f2 = cache_block(cache, 2);
        REQUIRE(a.ram.map_shared_frame(2, f2));
        (void)mm->release(f2);
        CHECK_FALSE(cache.find(kImage, 1));
        auto still = cache.find(kImage, 0);
        REQUIRE(still);
        (void)mm->release(*still);
        CHECK(cache.stats().evictions == 1);
        // Full of mapped entries: the next insert is refused, and the caller keeps its frame.
        const MachineFrame f3 = load_block(*mm, 3);
        CHECK_FALSE(cache.insert(kImage, 3, f3));
        CHECK(mm->ref_count(f3) == 1);
        (void)mm->release(f3);
        CHECK(cache.stats().refused == 1);
        // Another VM's load of a block already cached: the cached frame wins.
        const MachineFrame dup = load_block(*mm, 0);
        auto won = cache.insert(kImage, 0, dup);
        REQUIRE(won);
        CHECK(*won == f0);
        (void)mm->release(dup);
        (void)mm->release(*won);
        // Another image's block 0 is another entry.
        DiskImageId other = kImage;
        other.mtime_ns += 1;
        CHECK_FALSE(cache.find(other, 0));

        // The base changed: its entries go; the frames guests map live on, and
        // the last holder's write takes the frame over without a copy.
        cache.forget(kImage);
        CHECK(cache.stats().frames_held == 0);
        CHECK(mm->ref_count(f0) == 1);
        a.ram.resolve_write(1);
        CHECK(frame_of(a.ram, 1) == f0);
        CHECK(a.ram.page_op_stats().cow_takeovers == 1);
    }
    CHECK(mm->totals().frames_in_use == 0);
}
