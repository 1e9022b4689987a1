// Helpers for the disk overlay tests: temporary folders and images, and
// synchronous calls into a disk backend (issue, then reap the ring until done).
#pragma once
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <string>
#include <vector>

#include "vmm/dev/virtio/disk_backend.hpp"
#include "vmm/util/crc32c.hpp"

namespace disco::test {

/// A fresh folder under /tmp, removed with everything in it afterwards.
struct TempDir {
    std::string path;
    TempDir() {
        char name[] = "/tmp/disco-overlay-XXXXXX";
        REQUIRE(mkdtemp(name) != nullptr);
        path = name;
    }
    ~TempDir() { std::filesystem::remove_all(path); }
    std::string file(const std::string& name) const { return path + "/" + name; }
};

/// What byte `at` of a test base image holds: differs per cluster and per sector.
inline u8 base_byte(u64 at) { return static_cast<u8>(at * 7 + (at >> 9) * 13 + (at >> 12) * 101); }

inline void write_file(const std::string& path, const std::vector<u8>& bytes) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    REQUIRE(fd >= 0);
    REQUIRE(::write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()));
    ::close(fd);
}
inline std::vector<u8> read_file(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY);
    REQUIRE(fd >= 0);
    struct stat st {};
    REQUIRE(fstat(fd, &st) == 0);
    std::vector<u8> out(static_cast<usize>(st.st_size));
    REQUIRE(::pread(fd, out.data(), out.size(), 0) == static_cast<ssize_t>(out.size()));
    ::close(fd);
    return out;
}
/// Overwrites bytes of a file in place at offset.
inline void patch_file(const std::string& path, u64 offset, const std::vector<u8>& bytes) {
    const int fd = ::open(path.c_str(), O_WRONLY);
    REQUIRE(fd >= 0);
    REQUIRE(::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(offset)) == static_cast<ssize_t>(bytes.size()));
    ::close(fd);
}
inline std::vector<u8> read_part(const std::string& path, u64 offset, usize len) {
    auto all = read_file(path);
    REQUIRE(offset + len <= all.size());
    return {all.begin() + static_cast<long>(offset), all.begin() + static_cast<long>(offset + len)};
}

/// A base image of `bytes` bytes of base_byte(), returned by path.
inline std::string make_base(const TempDir& dir, u64 bytes, const std::string& name = "base.img") {
    std::vector<u8> b(bytes);
    for (u64 i = 0; i < bytes; ++i) b[i] = base_byte(i);
    const std::string path = dir.file(name);
    write_file(path, b);
    return path;
}
inline u32 file_crc(const std::string& path) { return crc32c(read_file(path)); }

inline std::unique_ptr<dev::IoRing> make_ring() {
    auto r = dev::IoRing::create(64);
    REQUIRE(r);
    return std::move(*r);
}

/// Synchronous I/O on a backend: each call issues one request and reaps
/// the ring until it ends; the result is 0 or -errno.
struct SyncDisk {
    dev::IoRing& ring;
    dev::DiskBackend& disk;

    template <class Start>
    int wait(Start start) {
        int result = 1;
        start([&](int r) { result = r; });
        ring.run_until([&] { return result != 1; });
        REQUIRE(result != 1);
        return result;
    }
    int read(u64 offset, std::vector<u8>& buf) {
        const iovec v{buf.data(), buf.size()};
        return wait([&](dev::IoDone d) { disk.read(offset, std::span<const iovec>(&v, 1), std::move(d)); });
    }
    std::vector<u8> read(u64 offset, usize len) {
        std::vector<u8> buf(len);
        REQUIRE(read(offset, buf) == 0);
        return buf;
    }
    int write(u64 offset, const std::vector<u8>& buf) {
        const iovec v{const_cast<u8*>(buf.data()), buf.size()};
        return wait([&](dev::IoDone d) { disk.write(offset, std::span<const iovec>(&v, 1), std::move(d)); });
    }
    int flush() {
        return wait([&](dev::IoDone d) { disk.flush(std::move(d)); });
    }
};

inline std::vector<u8> filled(usize len, u8 seed) {
    std::vector<u8> v(len);
    for (usize i = 0; i < len; ++i) v[i] = static_cast<u8>(seed ^ (i * 29) ^ (i >> 8));
    return v;
}
/// The base's bytes [offset, offset + len).
inline std::vector<u8> base_bytes(u64 offset, usize len) {
    std::vector<u8> v(len);
    for (usize i = 0; i < len; ++i) v[i] = base_byte(offset + i);
    return v;
}
}  // namespace disco::test
