// virtio-blk (virtio 1.1 §5.2) end to end: a temp-file image, requests built
// in guest RAM, the transport driven as Linux's virtio_mmio/virtio_blk do,
// completions awaited on the used ring (the device's I/O thread answers).
#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <string>

#include "tests/unit/dev/blk_rig.hpp"

using namespace disco;
using namespace disco::test;
namespace feature = disco::dev::virtio_feature;

TEST_CASE("virtio-blk: open errors name the file and the reason", "[virtio]") {
    auto r = dev::VirtioBlk::open("/nonexistent/disk.img", false);
    REQUIRE_FALSE(r);
    CHECK(r.error().message == "disk image /nonexistent/disk.img: No such file or directory");
    auto dir = dev::VirtioBlk::open("/tmp", true);
    REQUIRE_FALSE(dir);
    CHECK_THAT(dir.error().message, Catch::Contains("not a regular file or block device"));
}

TEST_CASE("virtio-blk: identity, features and configuration", "[virtio]") {
    TempImage img(64, 100);  // a partial last sector is not visible
    GuestRam ram = make_ram();
    auto blk = dev::VirtioBlk::open(img.path, false);
    REQUIRE(blk);
    CHECK((*blk)->capacity_sectors() == 64);
    Driver d(ram, std::move(*blk));
    CHECK(d.rd(mmio_reg::DeviceId) == 2);
    const u64 f = d.device_features();
    CHECK((f & (kFeatureSegMax | kFeatureBlkSize | kFeatureFlush | feature::kVersion1)) ==
          (kFeatureSegMax | kFeatureBlkSize | kFeatureFlush | feature::kVersion1));
    CHECK_FALSE(f & kFeatureRo);
    CHECK_FALSE(f & (1ull << 33));                       // never VIRTIO_F_ACCESS_PLATFORM
    CHECK(d.mmio.mmio_read(mmio_reg::Config, 4) == 64);  // capacity, low half
    CHECK(d.mmio.mmio_read(mmio_reg::Config + 4, 4) == 0);
    CHECK(d.mmio.mmio_read(mmio_reg::Config + 12, 4) == dev::VirtioBlk::kSegMax);
    CHECK(d.mmio.mmio_read(mmio_reg::Config + 20, 4) == 512);
    d.wr(mmio_reg::QueueSel, 0);
    CHECK(d.rd(mmio_reg::QueueNumMax) == 256);
}

TEST_CASE("virtio-blk: reads and writes round-trip through the image", "[virtio]") {
    TempImage img(128);
    BlkRig r(img);
    SECTION("read two sectors split over two buffers") {
        CHECK(r.run(kIn, 5, {{kData, 700, true}, {kData + 0x1000, 324, true}}) == 0);
        const auto a = r.guest(kData, 700), b = r.guest(kData + 0x1000, 324);
        for (u64 i = 0; i < 1024; ++i) {
            const u8 got = i < 700 ? a[i] : b[i - 700];
            REQUIRE(got == pattern(5 + i / kSector, i % kSector));
        }
        CHECK(r.q.used(0).second == 1024 + 1);  // data and status written
        CHECK(r.d.take_interrupt() == 1);
    }
    SECTION("write, then read back, then flush") {
        std::vector<u8> data(3 * kSector);
        for (usize i = 0; i < data.size(); ++i) data[i] = static_cast<u8>(0xA0 ^ i);
        REQUIRE(r.ram.write(GuestPhysAddr(kData), data));
        CHECK(r.run(kOut, 10, {{kData, static_cast<u32>(data.size()), false}}) == 0);
        CHECK(img.read(10 * kSector, data.size()) == data);
        CHECK(img.read(13 * kSector, 4) ==
              std::vector<u8>{pattern(13, 0), pattern(13, 1), pattern(13, 2), pattern(13, 3)});
        CHECK(r.q.used(0).second == 1);
        CHECK(r.run(kIn, 10, {{kData + 0x10000, static_cast<u32>(data.size()), true}}) == 0);
        CHECK(r.guest(kData + 0x10000, data.size()) == data);
        CHECK(r.run(kFlush, 0, {}) == 0);
    }
    SECTION("the last sector, and one past it") {
        CHECK(r.run(kIn, 127, {{kData, 512, true}}) == 0);
        CHECK(r.run(kIn, 127, {{kData, 1024, true}}) == 1);  // IOERR: never past the image
        CHECK(r.run(kIn, 128, {{kData, 512, true}}) == 1);
        CHECK(r.run(kOut, ~0ull, {{kData, 512, false}}) == 1);
        CHECK(r.run(kOut, ~0ull / 512, {{kData, 512, false}}) == 1);
        CHECK(r.run(kIn, 0, {{kData, 100, true}}) == 1);  // not whole sectors
        CHECK(r.run(kIn, 128, {}) == 0);                  // no data: nothing to check or do
    }
    SECTION("GET_ID answers the file name (20 bytes, no NUL), unsupported types UNSUPP") {
        CHECK(r.run(kGetId, 0, {{kData, 20, true}}) == 0);
        const auto id = r.guest(kData, 20);
        const std::string name = img.path.substr(img.path.rfind('/') + 1);
        REQUIRE(name.size() > 20);
        CHECK(std::string(id.begin(), id.end()) == name.substr(0, 20));
        CHECK(r.q.used(0).second == 21);
        CHECK(r.run(11, 0, {{kData, 16, false}}) == 2);  // DISCARD, not offered
        CHECK(r.run(0x12345, 0, {}) == 2);
    }
    SECTION("many requests at once, some through indirect tables") {
        const u16 n = 100;
        std::vector<Buf> status;
        for (u16 i = 0; i < n; ++i) {
            const u64 buf = kData + 0x1000ull * i;
            if (i % 2) {
                const Buf hdr = r.header(kIn, i);
                const Buf st = r.status_buf();
                r.q.add_indirect(kIndirectTables + 64ull * i, {hdr, {buf, 512, true}, st});
                status.push_back(st);
            } else {
                status.push_back(r.issue(kIn, i, {{buf, 512, true}}));
            }
        }
        r.d.notify(0);
        REQUIRE(r.wait_used(n));
        for (u16 i = 0; i < n; ++i) {
            CHECK(r.status_at(status[i]) == 0);
            const auto got = r.guest(kData + 0x1000ull * i, 512);
            CHECK(got[0] == pattern(i, 0));
            CHECK(got[511] == pattern(i, 511));
        }
        CHECK_FALSE(r.d.broken());
    }
}

TEST_CASE("virtio-blk: a read-only disk rejects writes", "[virtio]") {
    TempImage img(16);
    BlkRig r(img, true);
    CHECK(r.d.device_features() & kFeatureRo);
    REQUIRE(r.ram.write(GuestPhysAddr(kData), std::vector<u8>(512, 0x55)));
    CHECK(r.run(kOut, 3, {{kData, 512, false}}) == 1);
    CHECK(img.read(3 * kSector, 1)[0] == pattern(3, 0));
    CHECK(r.run(kIn, 3, {{kData, 512, true}}) == 0);
    CHECK(r.run(kFlush, 0, {}) == 0);
}

TEST_CASE("virtio-blk: malformed requests break the device, reset recovers it", "[virtio]") {
    TempImage img(16);
    BlkRig r(img);
    const u16 before = r.q.used_idx();
    SECTION("a descriptor loop") {
        r.q.set_desc(0, kHeaders, 16, kNext, 1);
        r.q.set_desc(1, kData, 512, kNext | kWrite, 2);
        r.q.set_desc(2, kStatus, 1, kNext | kWrite, 1);
        r.q.make_available(0);
    }
    SECTION("a buffer outside RAM") { r.issue(kIn, 0, {{0x10000000, 512, true}}); }
    SECTION("a huge length") { r.issue(kIn, 0, {{kData, 0xFFFFFE00, true}}); }
    SECTION("a descriptor index past the queue size") {
        r.q.set_desc(0, kHeaders, 16, kNext, 300);
        r.q.make_available(0);
    }
    SECTION("read data in device-readable buffers") { r.issue(kIn, 0, {{kData, 512, false}}); }
    SECTION("write data in device-writable buffers") { r.issue(kOut, 0, {{kData, 512, true}}); }
    SECTION("no status byte") { r.q.add_chain({r.header(kIn, 0)}); }
    SECTION("a short header") { r.q.add_chain({{kHeaders, 8, false}, {kStatus, 1, true}}); }
    r.d.notify(0);
    // The configuration change interrupt announces it; NEEDS_RESET is already set then.
    REQUIRE(wait_for([&] { return r.d.irq.load(); }));
    CHECK(r.d.broken());
    CHECK((r.d.take_interrupt() & 2) == 2);
    CHECK(r.q.used_idx() == before);  // nothing answered

    // The driver resets and sets the device up again: it works.
    // Fresh rings, zeroed as a driver allocates them.
    REQUIRE(r.ram.write(GuestPhysAddr(kAvail), std::vector<u8>(0x2000, 0)));
    r.q = DriverQueue(r.ram, 256, kDesc, kAvail, kUsed);
    REQUIRE(r.d.negotiate(~0ull));
    CHECK_FALSE(r.d.broken());
    r.d.setup_queue(0, r.q);
    r.d.driver_ok();
    CHECK(r.run(kIn, 1, {{kData, 512, true}}) == 0);
    CHECK(r.guest(kData, 1)[0] == pattern(1, 0));
}

TEST_CASE("virtio-blk: EVENT_IDX off and indirect off still work", "[virtio]") {
    TempImage img(8);
    BlkRig r(img, false, feature::kVersion1 | kFeatureFlush);
    CHECK(r.run(kIn, 2, {{kData, 512, true}}) == 0);
    CHECK(r.guest(kData, 1)[0] == pattern(2, 0));
    CHECK(r.run(kFlush, 0, {}) == 0);
}

TEST_CASE("virtio-blk: reset while requests are queued, and destruction, join cleanly", "[virtio]") {
    TempImage img(64);
    BlkRig r(img);
    for (u16 i = 0; i < 50; ++i) r.issue(kIn, i, {{kData + 0x1000ull * i, 512, true}});
    r.d.notify(0);
    r.d.wr(mmio_reg::Status, 0);  // returns once no I/O is in flight
    CHECK(r.d.rd(mmio_reg::Status) == 0);
    CHECK_FALSE(r.d.irq);
}

TEST_CASE("virtio-blk: a short transfer continues where it stopped", "[virtio]") {
    u8 a[100], b[50], c[10];
    std::vector<iovec> iov{{a, sizeof a}, {b, sizeof b}, {c, sizeof c}};
    usize first = 0;
    dev::advance_iov(iov, first, 30);
    CHECK(first == 0);
    CHECK(iov[0].iov_base == a + 30);
    CHECK(iov[0].iov_len == 70);
    dev::advance_iov(iov, first, 70 + 20);
    CHECK(first == 1);
    CHECK(iov[1].iov_base == b + 20);
    CHECK(iov[1].iov_len == 30);
    dev::advance_iov(iov, first, 40);
    CHECK(first == 3);
    dev::advance_iov(iov, first, 5);  // nothing left: no harm
    CHECK(first == 3);
}

TEST_CASE("virtio-blk: an image that shrank under the device gives IOERR, not a hang", "[virtio]") {
    TempImage img(16);
    BlkRig r(img);
    REQUIRE(::truncate(img.path.c_str(), 4 * kSector) == 0);
    CHECK(r.run(kIn, 8, {{kData, 512, true}}) == 1);
    CHECK(r.run(kIn, 3, {{kData, 1024, true}}) == 1);  // half there: the rest hits end of file
    CHECK(r.run(kIn, 2, {{kData, 1024, true}}) == 0);
}

TEST_CASE("virtio-blk: a short serial is NUL-padded to 20 bytes", "[virtio]") {
    TempImage img(8);
    BlkRig r(img, false, ~0ull, "disk-7");
    REQUIRE(r.ram.write(GuestPhysAddr(kData), std::vector<u8>(32, 0xCC)));
    CHECK(r.run(kGetId, 0, {{kData, 32, true}}) == 0);
    std::vector<u8> want{'d', 'i', 's', 'k', '-', '7'};
    want.resize(20, 0);
    want.resize(32, 0xCC);  // nothing past the 20 ID bytes
    CHECK(r.guest(kData, 32) == want);
    CHECK(r.q.used(0).second == 21);
}

TEST_CASE("virtio-blk: a disk with an overlay writes only the overlay", "[virtio]") {
    TempImage img(64);
    const std::vector<u8> base_before = img.read(0, 64 * kSector);
    const std::string ovl = img.path + ".ovl";
    {
        BlkRig r(img, false, ~0ull, {}, ovl);
        CHECK(r.blk->capacity_sectors() == 64);
        CHECK_FALSE(r.d.device_features() & kFeatureRo);
        // A partial-cluster write (3 sectors from sector 9), read back around it.
        std::vector<u8> data(3 * kSector);
        for (usize i = 0; i < data.size(); ++i) data[i] = static_cast<u8>(0x3C ^ i);
        REQUIRE(r.ram.write(GuestPhysAddr(kData), data));
        CHECK(r.run(kOut, 9, {{kData, static_cast<u32>(data.size()), false}}) == 0);
        CHECK(r.run(kFlush, 0, {}) == 0);
        CHECK(r.run(kIn, 8, {{kData + 0x10000, 5 * 512, true}}) == 0);
        const auto got = r.guest(kData + 0x10000, 5 * 512);
        for (u64 i = 0; i < 512; ++i) REQUIRE(got[i] == pattern(8, i));
        CHECK(std::vector<u8>(got.begin() + 512, got.begin() + 4 * 512) == data);
        for (u64 i = 0; i < 512; ++i) REQUIRE(got[4 * 512 + i] == pattern(12, i));
        // GET_ID names the overlay, the file this VM's writes go to.
        CHECK(r.run(kGetId, 0, {{kData, 20, true}}) == 0);
        const auto id = r.guest(kData, 20);
        const std::string name = ovl.substr(ovl.rfind('/') + 1);
        CHECK(std::string(id.begin(), id.end()) == name.substr(0, 20));
    }
    CHECK(img.read(0, 64 * kSector) == base_before);
    // A second device on the same base and overlay sees the write; on a new overlay it does not.
    {
        BlkRig r(img, true, ~0ull, {}, ovl);
        CHECK(r.run(kIn, 10, {{kData, 512, true}}) == 0);
        CHECK(r.guest(kData, 1)[0] == (0x3C ^ 0));
    }
    const std::string other = img.path + ".other.ovl";
    {
        BlkRig r(img, false, ~0ull, {}, other);
        CHECK(r.run(kIn, 10, {{kData, 512, true}}) == 0);
        CHECK(r.guest(kData, 1)[0] == pattern(10, 0));
    }
    ::unlink(ovl.c_str());
    ::unlink(other.c_str());
}

TEST_CASE("virtio-blk: an overlay that fails its checks is refused with the reason", "[virtio]") {
    TempImage img(16);
    const std::string ovl = img.path + ".ovl";
    {
        const int fd = ::open(ovl.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        REQUIRE(fd >= 0);
        const std::vector<u8> junk(5 * 4096, 'j');
        REQUIRE(::write(fd, junk.data(), junk.size()) == static_cast<ssize_t>(junk.size()));
        ::close(fd);
    }
    auto r = dev::VirtioBlk::open(img.path, false, {}, ovl);
    REQUIRE_FALSE(r);
    CHECK(r.error().message == "disk overlay " + ovl + ": not a disco disk overlay (no DISCOOVL magic at its start)");
    ::unlink(ovl.c_str());
}
