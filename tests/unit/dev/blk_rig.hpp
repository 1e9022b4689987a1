// The virtio-blk test rig: a patterned temporary image and a device on a
// transport driven as Linux drives it, with requests built in guest RAM
// (tests/unit/dev/test_virtio_blk*.cpp).
#pragma once
#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "tests/unit/dev/virtio_test_driver.hpp"
#include "vmm/dev/virtio/blk.hpp"

namespace disco::test {
constexpr u64 kDesc = 0x1000, kAvail = 0x3000, kUsed = 0x4000;
constexpr u64 kHeaders = 0x8000, kStatus = 0xA000, kData = 0x20000, kIndirectTables = 0xC000;
constexpr u64 kSector = 512;
constexpr u64 kFeatureSegMax = 1ull << 2, kFeatureRo = 1ull << 5, kFeatureBlkSize = 1ull << 6,
              kFeatureFlush = 1ull << 9;
constexpr u32 kIn = 0, kOut = 1, kFlush = 4, kGetId = 8;

inline u8 pattern(u64 sector, u64 byte) { return static_cast<u8>(sector * 7 + byte); }

/// A temporary image of `sectors` patterned sectors (plus `extra` bytes), removed afterwards.
struct TempImage {
    std::string path;
    explicit TempImage(u64 sectors, u64 extra = 0) {
        char name[] = "/tmp/disco-virtio-blk-XXXXXX";
        const int fd = mkstemp(name);
        REQUIRE(fd >= 0);
        path = name;
        std::vector<u8> bytes(sectors * kSector + extra);
        for (u64 i = 0; i < bytes.size(); ++i) bytes[i] = pattern(i / kSector, i % kSector);
        REQUIRE(::write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()));
        ::close(fd);
    }
    ~TempImage() { ::unlink(path.c_str()); }
    std::vector<u8> read(u64 offset, usize len) const {
        std::vector<u8> out(len);
        const int fd = ::open(path.c_str(), O_RDONLY);
        REQUIRE(::pread(fd, out.data(), len, static_cast<off_t>(offset)) == static_cast<ssize_t>(len));
        ::close(fd);
        return out;
    }
};

struct BlkRig {
    GuestRam ram;
    dev::VirtioBlk* blk;
    Driver d;
    DriverQueue q{ram, 256, kDesc, kAvail, kUsed};
    unsigned slot = 0;  // per-request header/status slots

    /// with: the guest's RAM (plain by default); cache: the disk page cache its reads may share from.
    explicit BlkRig(const TempImage& img, bool read_only = false, u64 features = ~0ull, std::string serial = {},
                    const std::string& overlay = {}, GuestRam with = make_ram(4 << 20), DiskPageCache* cache = nullptr)
        : ram(std::move(with)),
          blk(open(img.path, read_only, std::move(serial), overlay, cache)),
          d(ram, std::unique_ptr<dev::VirtioDevice>(blk)) {
        REQUIRE(d.negotiate(features));
        d.setup_queue(0, q);
        d.driver_ok();
    }
    static dev::VirtioBlk* open(const std::string& path, bool ro, std::string serial = {},
                                const std::string& overlay = {}, DiskPageCache* cache = nullptr) {
        auto r = dev::VirtioBlk::open(path, ro, std::move(serial), overlay, cache);
        REQUIRE(r);
        return r->release();
    }
    /// The request header for type/sector in a fresh slot; returns its buffer.
    Buf header(u32 type, u64 sector) {
        const u64 at = kHeaders + 16ull * slot;
        u8 h[16] = {};
        store_guest<LE, u32>(h, type);
        store_guest<LE, u64>(h + 8, sector);
        REQUIRE(ram.write(GuestPhysAddr(at), h));
        return {at, 16, false};
    }
    Buf status_buf() {
        const u64 at = kStatus + slot++;
        const u8 poison[1] = {0xEE};
        REQUIRE(ram.write(GuestPhysAddr(at), poison));
        return {at, 1, true};
    }
    u8 status_at(const Buf& b) {
        u8 s[1];
        REQUIRE(ram.read(GuestPhysAddr(b.addr), s));
        return s[0];
    }
    /// Issues header + data + status as one direct chain and returns the status buffer.
    Buf issue(u32 type, u64 sector, std::vector<Buf> data) {
        std::vector<Buf> chain{header(type, sector)};
        chain.insert(chain.end(), data.begin(), data.end());
        const Buf st = status_buf();
        chain.push_back(st);
        q.add_chain(chain);
        return st;
    }
    /// Waits for `count` used entries in all (bounded), then answers the status.
    bool wait_used(u16 count) {
        return wait_for([&] { return q.used_idx() >= count; });
    }
    u8 run(u32 type, u64 sector, std::vector<Buf> data) {
        const u16 before = q.used_idx();
        const Buf st = issue(type, sector, std::move(data));
        d.notify(0);
        REQUIRE(wait_used(before + 1));
        return status_at(st);
    }
    std::vector<u8> guest(u64 at, usize len) {
        std::vector<u8> out(len);
        REQUIRE(ram.read(GuestPhysAddr(at), out));
        return out;
    }
};
}  // namespace disco::test
