// OverlayDisk (configs/disk-overlay-format.md) on real files through a real
// io_uring: reads fall through to the base until written, writes reach only
// the overlay, what a flush covered survives, and every way the overlay or
// its base can be wrong is refused with its reason.
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "tests/unit/dev/overlay_test_util.hpp"
#include "vmm/dev/virtio/overlay_disk.hpp"
#include "vmm/mem/endian.hpp"

using namespace disco;
using namespace disco::test;
using namespace disco::dev::overlay;
using dev::OverlayDisk;

namespace {
constexpr u64 kC = kClusterSize;

std::unique_ptr<OverlayDisk> open_ok(const std::string& base, const std::string& ovl, dev::IoRing& ring,
                                     bool ro = false) {
    auto d = OverlayDisk::open(base, ovl, ro, ring);
    INFO((d ? std::string() : d.error().message));
    REQUIRE(d);
    return std::move(*d);
}
std::string open_error(const std::string& base, const std::string& ovl, dev::IoRing& ring, bool ro = false) {
    auto d = OverlayDisk::open(base, ovl, ro, ring);
    REQUIRE_FALSE(d);
    return d.error().message;
}

/// A disk with some writes in it, committed: a base of `clusters` clusters,
/// clusters 1 and 3 written whole, then closed (the close commits).
struct Written {
    TempDir dir;
    std::string base, ovl;
    explicit Written(u64 clusters = 16) {
        base = make_base(dir, clusters * kC);
        ovl = dir.file("vm.ovl");
        auto ring = make_ring();
        auto d = open_ok(base, ovl, *ring);
        SyncDisk s{*ring, *d};
        REQUIRE(s.write(1 * kC, filled(kC, 1)) == 0);
        REQUIRE(s.write(3 * kC, filled(kC, 3)) == 0);
        REQUIRE(s.flush() == 0);
    }
    u64 file_size() const { return std::filesystem::file_size(ovl); }
    DecodedCommit commit(unsigned slot) const {
        return decode_commit(read_part(ovl, kCommitOffset[slot], kRecordBytes));
    }
};

/// Writes commit record c (sealed) into its slot.
void put_commit(const std::string& ovl, const Commit& c) {
    std::vector<u8> rec(kRecordBytes);
    encode_commit(c, rec);
    patch_file(ovl, kCommitOffset[c.generation % 2], rec);
}
/// Writes a sealed copy of table block b holding entries, at generation gen, into slot.
u32 put_block(const std::string& ovl, const Geometry& g, u32 b, unsigned slot, u64 gen,
              const std::vector<u32>& entries) {
    std::vector<u8> block(kC);
    const u32 crc = encode_table_block(b, gen, entries, block);
    patch_file(ovl, g.slot_offset(b, slot), block);
    return crc;
}
}  // namespace

TEST_CASE("overlay: a new overlay reads as the base, writes go to the overlay only", "[overlay]") {
    TempDir dir;
    const u64 size = 20 * kC + 1536;  // the last cluster is partial
    const std::string base = make_base(dir, size), ovl = dir.file("vm1.ovl");
    const u32 base_crc = file_crc(base);
    auto ring = make_ring();
    auto d = open_ok(base, ovl, *ring);
    CHECK(std::filesystem::exists(ovl));
    CHECK(d->size() == size);
    CHECK(d->serial() == "vm1.ovl");
    CHECK(d->generation() == 0);
    SyncDisk s{*ring, *d};
    CHECK(s.read(0, size) == base_bytes(0, size));

    // Whole clusters, a partial one, one straddling two clusters, and the partial last cluster.
    const auto a = filled(2 * kC, 0xA1), b = filled(512, 0xB2), c = filled(3 * 512, 0xC3), e = filled(1024, 0xE5);
    REQUIRE(s.write(4 * kC, a) == 0);
    REQUIRE(s.write(9 * kC + 3 * 512, b) == 0);
    REQUIRE(s.write(12 * kC - 512, c) == 0);
    REQUIRE(s.write(size - 1024, e) == 0);
    auto want = base_bytes(0, size);
    std::copy(a.begin(), a.end(), want.begin() + 4 * kC);
    std::copy(b.begin(), b.end(), want.begin() + 9 * kC + 3 * 512);
    std::copy(c.begin(), c.end(), want.begin() + 12 * kC - 512);
    std::copy(e.begin(), e.end(), want.begin() + static_cast<long>(size - 1024));
    CHECK(s.read(0, size) == want);
    // Partial reads inside written and unwritten clusters.
    CHECK(s.read(9 * kC + 1024, 2048) == std::vector<u8>(want.begin() + 9 * kC + 1024, want.begin() + 9 * kC + 3072));

    for (u64 v = 0; v * kC < size; ++v) {
        const bool written = v == 4 || v == 5 || v == 9 || v == 11 || v == 12 || v == 20;
        CHECK(d->in_overlay(v * kC) == written);
    }
    CHECK(d->clusters_in_overlay() == 6);
    // A rewrite of a written cluster goes in place: no new cluster.
    const auto a2 = filled(512, 0x5A);
    REQUIRE(s.write(4 * kC + 512, a2) == 0);
    std::copy(a2.begin(), a2.end(), want.begin() + 4 * kC + 512);
    CHECK(d->clusters_in_overlay() == 6);
    CHECK(s.flush() == 0);
    CHECK(d->generation() == 1);
    CHECK(s.flush() == 0);  // nothing new mapped: no new commit
    CHECK(d->generation() == 1);
    CHECK(s.read(0, size) == want);
    CHECK(file_crc(base) == base_crc);

    // Reopened: the same disk.
    d.reset();
    auto again = open_ok(base, ovl, *ring);
    SyncDisk s2{*ring, *again};
    CHECK(s2.read(0, size) == want);
    CHECK(again->clusters_in_overlay() == 6);
    CHECK(file_crc(base) == base_crc);
    // Data clusters are 6, after the header, the commits and one table block's two copies.
    CHECK(std::filesystem::file_size(ovl) == (Geometry::of(size).data_cluster + 6) * kC);
}

TEST_CASE("overlay: closing commits, a flush commits, a write after the last flush needs no commit", "[overlay]") {
    TempDir dir;
    const std::string base = make_base(dir, 8 * kC), ovl = dir.file("vm.ovl"), copy = dir.file("copy.ovl");
    auto ring = make_ring();
    auto d = open_ok(base, ovl, *ring);
    SyncDisk s{*ring, *d};
    REQUIRE(s.write(2 * kC, filled(kC, 2)) == 0);
    REQUIRE(s.flush() == 0);
    REQUIRE(s.write(5 * kC, filled(kC, 5)) == 0);  // mapped in memory only
    // What the file holds now is what a kill -9 leaves: the flushed write, not the later one.
    write_file(copy, read_file(ovl));
    {
        auto snap = open_ok(base, copy, *ring, true);
        SyncDisk c{*ring, *snap};
        CHECK(c.read(2 * kC, kC) == filled(kC, 2));
        CHECK_FALSE(snap->in_overlay(5 * kC));
        CHECK(c.read(5 * kC, kC) == base_bytes(5 * kC, kC));
        CHECK(snap->generation() == 1);
    }
    d.reset();  // the close commits cluster 5
    auto again = open_ok(base, ovl, *ring);
    CHECK(again->generation() == 2);
    SyncDisk s2{*ring, *again};
    CHECK(s2.read(5 * kC, kC) == filled(kC, 5));
}

TEST_CASE("overlay: concurrent partial first writes to one cluster keep each other's sectors", "[overlay]") {
    TempDir dir;
    const std::string base = make_base(dir, 8 * kC), ovl = dir.file("vm.ovl");
    auto ring = make_ring();
    auto d = open_ok(base, ovl, *ring);
    std::vector<std::vector<u8>> data;
    for (unsigned i = 0; i < 8; ++i) data.push_back(filled(512, static_cast<u8>(0x40 + i)));
    std::vector<iovec> iov;
    for (auto& b : data) iov.push_back({b.data(), b.size()});
    std::vector<u8> got(kC);
    const iovec read_iov{got.data(), got.size()};
    int results[10];
    std::fill(std::begin(results), std::end(results), 1);
    // Eight one-sector writes in one cluster and a read of it, all in flight at once.
    for (unsigned i = 0; i < 8; ++i)
        d->write(3 * kC + 512 * ((i * 3) % 8), std::span<const iovec>(&iov[i], 1), [&, i](int r) { results[i] = r; });
    d->read(3 * kC, std::span<const iovec>(&read_iov, 1), [&](int r) { results[8] = r; });
    d->flush([&](int r) { results[9] = r; });
    ring->run_until([&] { return std::all_of(std::begin(results), std::end(results), [](int r) { return r != 1; }); });
    for (int r : results) CHECK(r == 0);
    SyncDisk s{*ring, *d};
    const auto all = s.read(3 * kC, kC);
    for (unsigned i = 0; i < 8; ++i)
        CHECK(std::vector<u8>(all.begin() + 512 * ((i * 3) % 8), all.begin() + 512 * ((i * 3) % 8 + 1)) == data[i]);
    CHECK(d->clusters_in_overlay() == 1);
}

TEST_CASE("overlay: many flushes at once all complete", "[overlay]") {
    TempDir dir;
    const std::string base = make_base(dir, 64 * kC), ovl = dir.file("vm.ovl");
    auto ring = make_ring();
    auto d = open_ok(base, ovl, *ring);
    std::vector<std::vector<u8>> bufs;
    std::vector<iovec> iov(20);
    std::vector<int> res(40, 1);
    for (unsigned i = 0; i < 20; ++i) {
        bufs.push_back(filled(kC, static_cast<u8>(i)));
        iov[i] = {bufs[i].data(), kC};
    }
    for (unsigned i = 0; i < 20; ++i) {
        d->write(u64{i} * 3 * kC, std::span<const iovec>(&iov[i], 1), [&, i](int r) { res[2 * i] = r; });
        d->flush([&, i](int r) { res[2 * i + 1] = r; });
    }
    ring->run_until([&] { return std::all_of(res.begin(), res.end(), [](int r) { return r != 1; }); });
    for (int r : res) CHECK(r == 0);
    d.reset();
    auto again = open_ok(base, ovl, *ring);
    SyncDisk s{*ring, *again};
    for (unsigned i = 0; i < 20; ++i) CHECK(s.read(u64{i} * 3 * kC, kC) == bufs[i]);
}

TEST_CASE("overlay: the base is refused when it changed", "[overlay]") {
    Written w;
    auto ring = make_ring();
    SECTION("size") {
        auto bytes = read_file(w.base);
        bytes.resize(bytes.size() + kC, 0);
        write_file(w.base, bytes);
        CHECK_THAT(open_error(w.base, w.ovl, *ring),
                   Catch::StartsWith("disk overlay " + w.ovl + ": its base " + w.base +
                                     " changed since the overlay was made from it: size is 69632 bytes, was 65536"));
    }
    SECTION("mtime") {
        const timespec times[2] = {{0, UTIME_OMIT}, {1600000000, 5}};
        REQUIRE(utimensat(AT_FDCWD, w.base.c_str(), times, 0) == 0);
        CHECK_THAT(open_error(w.base, w.ovl, *ring),
                   Catch::Contains("modified 2020-09-13 12:26:40.000000005 UTC, was"));
    }
    SECTION("content with size and mtime kept") {
        struct stat st {};
        REQUIRE(stat(w.base.c_str(), &st) == 0);
        patch_file(w.base, 100, {0xFF, 0xFE});
        const timespec times[2] = {{0, UTIME_OMIT}, st.st_mtim};
        REQUIRE(utimensat(AT_FDCWD, w.base.c_str(), times, 0) == 0);
        CHECK_THAT(open_error(w.base, w.ovl, *ring), Catch::Contains("its first MiB has checksum"));
    }
    SECTION("a base that cannot be read") {
        const std::string missing = w.dir.file("missing.img");
        CHECK(open_error(missing, w.ovl, *ring) == "disk base " + missing + ": No such file or directory");
    }
}

TEST_CASE("overlay: every damaged or inconsistent overlay is refused with its reason", "[overlay]") {
    Written w;  // generation 1: clusters 1 and 3 mapped to data clusters 5 and 6 (16 clusters: one table block)
    auto ring = make_ring();
    const Geometry g = Geometry::of(16 * kC);
    REQUIRE(g.data_cluster == 5);
    const DecodedCommit cur = w.commit(1);
    REQUIRE(cur.state == RecordState::Valid);
    REQUIRE(cur.commit.generation == 1);
    REQUIRE(cur.commit.data_end == 7);
    auto entries = [&](std::vector<std::pair<u32, u32>> map) {
        std::vector<u32> e(kEntriesPerBlock, 0);
        for (auto [v, p] : map) e[v] = p;
        return e;
    };
    // A block copy and a commit that agree, so that only the entries' own check can refuse them.
    auto forge = [&](const std::vector<u32>& e, u64 data_end) {
        const u32 crc = put_block(w.ovl, g, 0, 0, 2, e);  // copy 0 is the spare: commit 1 wrote copy 1
        put_commit(w.ovl, {2, data_end, 1, table_digest(std::vector<u32>{crc})});
    };
    auto refused = [&] { return open_error(w.base, w.ovl, *ring); };
    const std::string pre = "disk overlay " + w.ovl + ": ";

    SECTION("not an overlay") {
        write_file(w.ovl, std::vector<u8>(5 * kC, 'x'));
        CHECK(refused() == pre + "not a disco disk overlay (no DISCOOVL magic at its start)");
    }
    SECTION("too short") {
        std::filesystem::resize_file(w.ovl, 100);
        CHECK(refused() == pre + "100 bytes is too short for an overlay (not one, or truncated)");
    }
    SECTION("header damaged") {
        patch_file(w.ovl, 200, {0x55});
        CHECK(refused() == pre + "the header fails its checksum (the header is damaged)");
    }
    SECTION("table area cut off") {
        std::filesystem::resize_file(w.ovl, 4 * kC);
        CHECK(refused() == pre + "truncated: 16384 bytes, its table alone needs 20480");
    }
    SECTION("data area cut off") {
        std::filesystem::resize_file(w.ovl, 6 * kC);
        CHECK_THAT(refused(), Catch::Contains("commit 1 says data ends at cluster 7, outside the file's data area"));
    }
    SECTION("both commit records damaged") {
        patch_file(w.ovl, kCommitOffset[0] + 20, {0x01});
        patch_file(w.ovl, kCommitOffset[1] + 20, {0x01});
        CHECK(refused() == pre + "no valid commit record (record 0: checksum mismatch; record 1: checksum mismatch)");
    }
    SECTION("commit records that disagree") {
        put_commit(w.ovl, {4, 7, 1, cur.commit.table_digest});  // generation 4 beside generation 1
        CHECK(refused() == pre + "the commit records disagree (generations 4 and 1)");
    }
    SECTION("a commit record in the wrong slot") {
        std::vector<u8> rec(kRecordBytes);
        encode_commit({3, 7, 1, cur.commit.table_digest}, rec);
        patch_file(w.ovl, kCommitOffset[0], rec);
        CHECK(refused() == pre + "commit record 0 holds generation 3, which belongs in record 1");
    }
    SECTION("the current table copy damaged") {
        patch_file(w.ovl, g.slot_offset(0, 1) + 100, {0x77});
        CHECK(refused() == pre +
                               "the table does not match commit 1 (a table block is damaged or out of date: table "
                               "block 0 copy 1: checksum mismatch)");
    }
    SECTION("the current table copy zeroed") {
        patch_file(w.ovl, g.slot_offset(0, 1), std::vector<u8>(kC, 0));
        CHECK_THAT(refused(), Catch::StartsWith(pre + "the table does not match commit 1"));
    }
    SECTION("a table copy at another block's place") {
        std::vector<u8> block(kC);
        encode_table_block(7, 1, entries({{1, 5}, {3, 6}}), block);
        patch_file(w.ovl, g.slot_offset(0, 1), block);
        CHECK_THAT(refused(), Catch::Contains("table block 0 copy 1: it is a copy of table block 7"));
    }
    SECTION("both copies at one generation") {
        put_block(w.ovl, g, 0, 0, 1, entries({{1, 5}, {3, 6}}));
        CHECK(refused() == pre + "table block 0: both copies have generation 1");
    }
    SECTION("an entry outside the data area") {
        forge(entries({{1, 5}, {3, 2}}), 7);
        CHECK(refused() == pre + "the table maps disk cluster 3 to cluster 2, outside the data area [5, 7)");
    }
    SECTION("an entry past the data end") {
        forge(entries({{1, 5}, {3, 7}}), 7);
        CHECK(refused() == pre + "the table maps disk cluster 3 to cluster 7, outside the data area [5, 7)");
    }
    SECTION("an entry past the disk's end") {
        forge(entries({{1, 5}, {16, 6}}), 7);
        CHECK(refused() == pre + "the table maps disk cluster 16, past the disk's end (16 clusters)");
    }
    SECTION("two entries sharing a cluster") {
        forge(entries({{1, 5}, {3, 5}}), 7);
        CHECK(refused() == pre + "the table maps disk clusters 1 and 3 both to cluster 5");
    }
    SECTION("a forged but consistent table opens: the checks above are what refused") {
        forge(entries({{1, 6}, {3, 5}}), 7);
        auto d = open_ok(w.base, w.ovl, *ring);
        SyncDisk s{*ring, *d};
        CHECK(s.read(1 * kC, kC) == filled(kC, 3));  // the two clusters swapped places
    }
}

TEST_CASE("overlay: an interrupted commit leaves the previous one, and cannot come back later", "[overlay]") {
    // 2100 clusters: table blocks 0 to 2 (1020 entries each).
    Written w(2100);
    auto ring = make_ring();
    const Geometry g = Geometry::of(2100 * kC);
    const DecodedCommit cur = w.commit(1);
    REQUIRE(cur.commit.generation == 1);
    // Commit 2 was cut off after writing block 0's spare copy (copy 0: commit 1 wrote copy 1),
    // which maps cluster 0 as well.
    std::vector<u32> e(kEntriesPerBlock, 0);
    e[1] = static_cast<u32>(g.data_cluster);
    e[3] = static_cast<u32>(g.data_cluster + 1);
    e[0] = static_cast<u32>(g.data_cluster + 2);
    put_block(w.ovl, g, 0, 0, 2, e);
    {
        auto d = open_ok(w.base, w.ovl, *ring);
        CHECK(d->generation() == 1);
        CHECK_FALSE(d->in_overlay(0));
        SyncDisk s{*ring, *d};
        CHECK(s.read(0, kC) == base_bytes(0, kC));
        // A later commit that changes only block 2 must still overwrite block 0's stale copy.
        REQUIRE(s.write(2050 * kC, filled(kC, 0x22)) == 0);
        REQUIRE(s.flush() == 0);
        CHECK(d->generation() == 2);
    }
    auto d = open_ok(w.base, w.ovl, *ring);
    CHECK(d->generation() == 2);
    CHECK_FALSE(d->in_overlay(0));
    SyncDisk s{*ring, *d};
    CHECK(s.read(1 * kC, kC) == filled(kC, 1));
    CHECK(s.read(2050 * kC, kC) == filled(kC, 0x22));

    SECTION("a torn commit record after the current one is said, and the overlay opens") {
        d.reset();
        std::vector<u8> junk(kRecordBytes, 0x5C);
        patch_file(w.ovl, kCommitOffset[1], junk);  // generation 3's slot, torn
        auto o = open_ok(w.base, w.ovl, *ring);
        CHECK(o->generation() == 2);
    }
}

TEST_CASE("overlay: locking, read-only use and open errors", "[overlay]") {
    Written w;
    auto ring = make_ring();
    SECTION("one writer at a time") {
        auto d = open_ok(w.base, w.ovl, *ring);
        CHECK(open_error(w.base, w.ovl, *ring) ==
              "disk overlay " + w.ovl + ": in use by another disk (another VM or disco process has it open)");
        CHECK_THAT(open_error(w.base, w.ovl, *ring, true), Catch::Contains("in use by another disk"));
    }
    SECTION("read-only: readers share it, writes are refused, nothing changes") {
        const u32 before = file_crc(w.ovl);
        auto a = open_ok(w.base, w.ovl, *ring, true);
        auto b = open_ok(w.base, w.ovl, *ring, true);
        SyncDisk s{*ring, *a};
        CHECK(a->read_only());
        CHECK(s.write(0, filled(kC, 9)) == -EROFS);
        CHECK(s.flush() == 0);
        CHECK(s.read(3 * kC, kC) == filled(kC, 3));
        a.reset();
        b.reset();
        CHECK(file_crc(w.ovl) == before);
    }
    SECTION("read-only does not create an overlay") {
        CHECK(open_error(w.base, w.dir.file("none.ovl"), *ring, true) ==
              "disk overlay " + w.dir.file("none.ovl") +
                  ": No such file or directory (a read-only disk does not create its overlay)");
        CHECK_FALSE(std::filesystem::exists(w.dir.file("none.ovl")));
    }
    SECTION("an overlay in a folder that does not exist") {
        CHECK(open_error(w.base, w.dir.file("no/such.ovl"), *ring) ==
              "disk overlay " + w.dir.file("no/such.ovl") + ": cannot create it: No such file or directory");
    }
    SECTION("a base that is a folder") {
        CHECK(open_error(w.dir.path, w.ovl, *ring) ==
              "disk base " + w.dir.path + ": not a regular file or block device");
    }
    SECTION("an overlay made for another base") {
        const std::string other = make_base(w.dir, 16 * kC + 512, "other.img");
        CHECK_THAT(open_error(other, w.ovl, *ring), Catch::Contains("size is 66048 bytes, was 65536"));
    }
}

TEST_CASE("overlay: a full disk fails the write, keeps what was written, and recovers", "[overlay]") {
    TempDir dir;
    const std::string base = make_base(dir, 32 * kC), ovl = dir.file("vm.ovl");
    auto ring = make_ring();
    auto d = open_ok(base, ovl, *ring);
    SyncDisk s{*ring, *d};
    REQUIRE(s.write(0, filled(2 * kC, 1)) == 0);
    REQUIRE(s.flush() == 0);
    const u64 used = std::filesystem::file_size(ovl);
    // The file may not grow: the next first writes fail (EFBIG, as ENOSPC would).
    struct Limit {
        rlimit old{};
        sighandler_t old_handler;
        explicit Limit(u64 bytes) {
            old_handler = signal(SIGXFSZ, SIG_IGN);
            REQUIRE(getrlimit(RLIMIT_FSIZE, &old) == 0);
            rlimit now = old;
            now.rlim_cur = bytes;
            REQUIRE(setrlimit(RLIMIT_FSIZE, &now) == 0);
        }
        ~Limit() {
            setrlimit(RLIMIT_FSIZE, &old);
            signal(SIGXFSZ, old_handler);
        }
    };
    {
        Limit limit(used);
        CHECK(s.write(10 * kC, filled(kC, 2)) < 0);         // a whole first write
        CHECK(s.write(12 * kC + 512, filled(512, 3)) < 0);  // a partial one
        CHECK(s.write(0, filled(kC, 4)) == 0);              // in place: needs no space
        CHECK(s.flush() == 0);
    }
    CHECK_FALSE(d->in_overlay(10 * kC));
    CHECK_FALSE(d->in_overlay(12 * kC));
    CHECK(s.read(10 * kC, kC) == base_bytes(10 * kC, kC));
    const auto first = filled(2 * kC, 1);
    CHECK(s.read(kC, kC) == std::vector<u8>(first.begin() + kC, first.end()));
    CHECK(s.read(0, kC) == filled(kC, 4));
    // With room again the same writes work, reusing the clusters that failed.
    REQUIRE(s.write(10 * kC, filled(kC, 2)) == 0);
    REQUIRE(s.flush() == 0);
    CHECK(std::filesystem::file_size(ovl) <= used + 2 * kC);
    d.reset();
    auto again = open_ok(base, ovl, *ring);
    SyncDisk s2{*ring, *again};
    CHECK(s2.read(10 * kC, kC) == filled(kC, 2));
    CHECK(s2.read(0, kC) == filled(kC, 4));
}

TEST_CASE("overlay: deleting the overlay resets the disk", "[overlay]") {
    Written w;
    auto ring = make_ring();
    std::filesystem::remove(w.ovl);
    auto d = open_ok(w.base, w.ovl, *ring);
    SyncDisk s{*ring, *d};
    CHECK(s.read(0, 16 * kC) == base_bytes(0, 16 * kC));
    CHECK(d->clusters_in_overlay() == 0);
}
