// virtio-blk reads through the global disk page cache (cached_reads.hpp,
// disk_page_cache.hpp): VMs on one machine memory, each with its own device
// and copy-on-write overlay on one base, driven as Linux drives them.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "tests/unit/dev/blk_rig.hpp"
#include "tests/unit/dev/overlay_test_util.hpp"
#include "tests/unit/mem/machine_ram.hpp"
#include "vmm/mem/disk_page_cache.hpp"

using namespace disco;
using namespace disco::test;

namespace {
constexpr u64 kBlock = 4096, kSectorsPerBlock = kBlock / kSector;

/// A VM's RAM in machine memory, with a device on `img` reading through `cache`.
struct CachedVm {
    Shootdown shootdown{1};
    BlkRig rig;
    CachedVm(MachineMemory& mm, u32 id, DiskPageCache* cache, const TempImage& img, bool read_only,
             const std::string& overlay = {})
        : rig(img, read_only, ~0ull, {}, overlay, ram_on(mm, id, shootdown), cache) {}
    static GuestRam ram_on(MachineMemory& mm, u32 id, Shootdown& sd) {
        GuestRam ram;
        ram.use_machine_memory(&mm, 0, id);
        ram.set_shootdown(&sd);
        REQUIRE(ram.add_region(GuestPhysAddr(0), 4 << 20));
        return ram;
    }
    /// Reads block `block` into the page at `at`; the status.
    u8 read_block(u64 block, u64 at) { return rig.run(kIn, block * kSectorsPerBlock, {{at, kBlock, true}}); }
    MachineFrame frame(u64 at) const {
        auto f = rig.ram.machine_memory()->frame_of(rig.ram.host_page(GuestPhysAddr(at)));
        REQUIRE(f);
        return *f;
    }
};

/// The frame the cache holds for block `block` of the image at path (none if not cached).
MachineFrame cached_frame(DiskPageCache& cache, const std::string& path, u64 block) {
    const int fd = ::open(path.c_str(), O_RDONLY);
    REQUIRE(fd >= 0);
    auto id = dev::image_identity(fd);
    ::close(fd);
    REQUIRE(id);
    auto f = cache.find(*id, block);
    if (!f) return MachineFrame();
    (void)cache.machine_memory().release(*f);
    return *f;
}

/// What this process writes on stderr meanwhile.
struct StderrCapture {
    std::string path;
    int saved = -1;
    StderrCapture() {
        char name[] = "/tmp/disco-stderr-XXXXXX";
        const int fd = mkstemp(name);
        REQUIRE(fd >= 0);
        path = name;
        std::fflush(stderr);
        saved = ::dup(2);
        ::dup2(fd, 2);
        ::close(fd);
    }
    ~StderrCapture() {
        std::fflush(stderr);
        ::dup2(saved, 2);
        ::close(saved);
        ::unlink(path.c_str());
    }
    std::string text() const {
        std::fflush(stderr);
        std::ifstream in(path);
        std::stringstream s;
        s << in.rdbuf();
        return s.str();
    }
};

usize count_of(const std::string& text, const std::string& what) {
    usize n = 0;
    for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
}
}  // namespace

TEST_CASE("virtio-blk cache: two VMs reading one base block share one frame, copy-on-write", "[disk-cache][virtio]") {
    auto mm = test_machine_memory(1, 32 << 20);
    {
        TempImage img(128);
        TempDir dir;
        DiskPageCache cache(*mm, 64);
        CachedVm a(*mm, 1, &cache, img, false, dir.file("a.ovl"));
        CachedVm b(*mm, 2, &cache, img, false, dir.file("b.ovl"));
        const u64 pa = kData, pb = kData + 0x3000;
        REQUIRE(a.read_block(2, pa) == 0);
        REQUIRE(b.read_block(2, pb) == 0);
        const std::vector<u8> base2 = img.read(2 * kBlock, kBlock);
        CHECK(a.rig.guest(pa, kBlock) == base2);
        CHECK(b.rig.guest(pb, kBlock) == base2);
        const MachineFrame shared = cached_frame(cache, img.path, 2);
        REQUIRE_FALSE(shared.is_none());
        CHECK(a.frame(pa) == shared);
        CHECK(b.frame(pb) == shared);
        CHECK(mm->ref_count(shared) == 3);
        DiskCacheStats s = cache.stats();
        CHECK(s.loads == 1);
        CHECK(s.hits >= 1);
        CHECK(s.pages_mapped == 2);

        // A guest store in A: A's page gets a private copy; B and the cache keep the block.
        a.rig.ram.resolve_write(pa >> kPageShift);
        const std::vector<u8> scribble(16, 0x5A);
        REQUIRE(a.rig.ram.write(GuestPhysAddr(pa), scribble));
        CHECK(a.frame(pa) != shared);
        CHECK(a.rig.guest(pa, 16) == scribble);
        CHECK(b.frame(pb) == shared);
        CHECK(b.rig.guest(pb, kBlock) == base2);

        // A writes block 2 to its overlay: its own later reads return its data, not the cached base.
        const std::vector<u8> mine(kBlock, 0xA5);
        REQUIRE(a.rig.ram.write(GuestPhysAddr(kData + 0x8000), mine));
        REQUIRE(a.rig.run(kOut, 2 * kSectorsPerBlock, {{kData + 0x8000, kBlock, false}}) == 0);
        REQUIRE(a.read_block(2, kData + 0x10000) == 0);
        CHECK(a.rig.guest(kData + 0x10000, kBlock) == mine);
        CHECK(a.frame(kData + 0x10000) != shared);
        // B's still come from the cache.
        REQUIRE(b.read_block(2, kData + 0x10000) == 0);
        CHECK(b.rig.guest(kData + 0x10000, kBlock) == base2);
        CHECK(b.frame(kData + 0x10000) == shared);

        // One read of blocks 1-3 in A: 1 and 3 mapped from the cache, 2 read from A's overlay.
        const u64 at = kData + 0x20000;
        REQUIRE(a.rig.run(kIn, 1 * kSectorsPerBlock, {{at, 3 * kBlock, true}}) == 0);
        CHECK(a.rig.guest(at, kBlock) == img.read(1 * kBlock, kBlock));
        CHECK(a.rig.guest(at + kBlock, kBlock) == mine);
        CHECK(a.rig.guest(at + 2 * kBlock, kBlock) == img.read(3 * kBlock, kBlock));
        CHECK(a.frame(at) == cached_frame(cache, img.path, 1));
        CHECK(a.frame(at + 2 * kBlock) == cached_frame(cache, img.path, 3));
        CHECK(a.frame(at + kBlock) != shared);
        s = cache.stats();
        CHECK(s.loads == 3);
        CHECK(s.pages_mapped == 5);
    }
    // Devices, RAM and cache gone: every frame is back.
    CHECK(mm->totals().frames_in_use == 0);
}

TEST_CASE("virtio-blk cache: unaligned, partial and split reads are copied; read-write raw images never shared",
          "[disk-cache][virtio]") {
    auto mm = test_machine_memory(1, 32 << 20);
    {
        TempImage img(128);
        DiskPageCache cache(*mm, 64);
        {
            CachedVm v(*mm, 1, &cache, img, true);  // a raw image opened read-only is a shareable base
            // Guest buffer not page aligned.
            REQUIRE(v.rig.run(kIn, 16, {{kData + 512, kBlock, true}}) == 0);
            CHECK(v.rig.guest(kData + 512, kBlock) == img.read(16 * kSector, kBlock));
            // Disk offset not block aligned.
            REQUIRE(v.rig.run(kIn, 17, {{kData + 0x2000, kBlock, true}}) == 0);
            CHECK(v.rig.guest(kData + 0x2000, kBlock) == img.read(17 * kSector, kBlock));
            // Less than a page.
            REQUIRE(v.rig.run(kIn, 16, {{kData + 0x4000, 1024, true}}) == 0);
            CHECK(v.rig.guest(kData + 0x4000, 1024) == img.read(16 * kSector, 1024));
            // A page split over two descriptors.
            REQUIRE(v.rig.run(kIn, 16, {{kData + 0x6000, 2048, true}, {kData + 0x6800, 2048, true}}) == 0);
            CHECK(v.rig.guest(kData + 0x6000, kBlock) == img.read(16 * kSector, kBlock));
            CHECK(cache.stats().loads == 0);
            CHECK(cache.stats().pages_mapped == 0);
            // The same page named twice in one chain (hostile): the later block wins,
            // and the cached block stays intact for everyone else.
            REQUIRE(v.rig.run(kIn, 2 * kSectorsPerBlock,
                              {{kData + 0x8000, kBlock, true}, {kData + 0x8000, kBlock, true}}) == 0);
            CHECK(v.rig.guest(kData + 0x8000, kBlock) == img.read(3 * kBlock, kBlock));
            REQUIRE(v.read_block(2, kData + 0xA000) == 0);
            CHECK(v.rig.guest(kData + 0xA000, kBlock) == img.read(2 * kBlock, kBlock));
            CHECK(v.frame(kData + 0xA000) == cached_frame(cache, img.path, 2));
        }
        {
            CachedVm w(*mm, 2, &cache, img, false);  // read-write: the guest writes the image in place
            const u64 mapped = cache.stats().pages_mapped;
            REQUIRE(w.read_block(5, kData) == 0);
            CHECK(w.rig.guest(kData, kBlock) == img.read(5 * kBlock, kBlock));
            CHECK(cache.stats().pages_mapped == mapped);
            CHECK(cached_frame(cache, img.path, 5).is_none());
        }
    }
    CHECK(mm->totals().frames_in_use == 0);
}

TEST_CASE("virtio-blk cache: a base that changes under the monitor is no longer shared, said once",
          "[disk-cache][virtio]") {
    auto mm = test_machine_memory(1, 32 << 20);
    {
        TempImage img(128);
        DiskPageCache cache(*mm, 64);
        StderrCapture err;
        {
            CachedVm v(*mm, 1, &cache, img, true);
            REQUIRE(v.read_block(1, kData) == 0);
            CHECK(cache.stats().pages_mapped == 1);
            // Touch the base: a new modification time.
            struct timespec times[2] = {{0, UTIME_OMIT}, {0, 0}};
            REQUIRE(::clock_gettime(CLOCK_REALTIME, &times[1]) == 0);
            times[1].tv_sec += 10;
            REQUIRE(::utimensat(AT_FDCWD, img.path.c_str(), times, 0) == 0);
            for (u64 i = 0; i < 3; ++i) {
                REQUIRE(v.read_block(1 + i, kData + 0x2000 * (i + 1)) == 0);
                CHECK(v.rig.guest(kData + 0x2000 * (i + 1), kBlock) == img.read((1 + i) * kBlock, kBlock));
            }
            const DiskCacheStats s = cache.stats();
            CHECK(s.pages_mapped == 1);
            CHECK(s.images_refused == 1);
            CHECK(s.frames_held == 0);  // its entries were dropped
        }
        const std::string text = err.text();
        CHECK(count_of(text, "changed under the monitor") == 1);
        CHECK_THAT(text, Catch::Contains("disco: disk base " + img.path));
    }
    CHECK(mm->totals().frames_in_use == 0);
}
