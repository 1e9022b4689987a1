// The overlay's records (configs/disk-overlay-format.md): each encodes and
// decodes to itself, and each kind of damage is told apart with its reason.
#include <catch2/catch.hpp>
#include <cstring>
#include <string>
#include <vector>

#include "vmm/dev/virtio/overlay_format.hpp"
#include "vmm/mem/endian.hpp"
#include "vmm/util/crc32c.hpp"

using namespace disco;
using namespace disco::dev::overlay;

namespace {
Header sample_header() {
    Header h;
    h.disk_size = 10 * kClusterSize + 1536;
    h.base = {h.disk_size + 100, 1700000000, 123456789, 0xCAFEF00D};
    h.created = 1700000500;
    h.base_name = "/images/base.img";
    return h;
}
/// Seals a 512-byte record again after a field was changed on purpose.
void reseal(std::vector<u8>& rec) {
    store_guest<ByteOrder::Little, u32>(rec.data() + 508, crc32c(std::span<const u8>(rec.data(), 508)));
}
}  // namespace

TEST_CASE("crc32c: the standard check value and chaining", "[overlay]") {
    const std::string s = "123456789";
    const std::span<const u8> all(reinterpret_cast<const u8*>(s.data()), s.size());
    CHECK(crc32c(all) == 0xE3069283);
    CHECK(crc32c(all.subspan(4), crc32c(all.first(4))) == 0xE3069283);
    CHECK(crc32c({}) == 0);
    std::vector<u8> big(100000);
    for (usize i = 0; i < big.size(); ++i) big[i] = static_cast<u8>(i * 31);
    CHECK(crc32c(std::span<const u8>(big).subspan(7), crc32c(std::span<const u8>(big).first(7))) == crc32c(big));
}

TEST_CASE("overlay format: geometry", "[overlay]") {
    const Geometry g = Geometry::of(10 * kClusterSize + 512);
    CHECK(g.clusters == 11);
    CHECK(g.table_blocks == 1);
    CHECK(g.data_cluster == 5);  // header, 2 commit records, 2 copies of one block
    CHECK(g.slot_offset(0, 1) == 4 * kClusterSize);
    const Geometry big = Geometry::of(u64{kEntriesPerBlock} * kClusterSize * 3 + 512);
    CHECK(big.table_blocks == 4);
    CHECK(big.data_cluster == 3 + 8);
    CHECK(Geometry::of(0).table_blocks == 0);
}

TEST_CASE("overlay format: the header round-trips and every damage has its reason", "[overlay]") {
    std::vector<u8> rec(kRecordBytes);
    const Header h = sample_header();
    encode_header(h, rec);
    auto back = decode_header(rec);
    REQUIRE(back);
    CHECK(back->disk_size == h.disk_size);
    CHECK(back->base == h.base);
    CHECK(back->created == h.created);
    CHECK(back->base_name == h.base_name);

    SECTION("magic") {
        rec[0] = 'X';
        CHECK_THAT(decode_header(rec).error(), Catch::Contains("not a disco disk overlay"));
    }
    SECTION("checksum") {
        rec[100] ^= 1;  // inside the base name
        CHECK_THAT(decode_header(rec).error(), Catch::Contains("fails its checksum"));
    }
    SECTION("version") {
        store_guest<ByteOrder::Little, u32>(rec.data() + 8, 2);
        reseal(rec);
        CHECK(decode_header(rec).error() == "format version 2 is not supported (this disco reads version 1)");
    }
    SECTION("features") {
        store_guest<ByteOrder::Little, u32>(rec.data() + 16, 4);
        reseal(rec);
        CHECK_THAT(decode_header(rec).error(), Catch::Contains("needs features 0x4"));
    }
    SECTION("cluster size") {
        store_guest<ByteOrder::Little, u32>(rec.data() + 12, 16);
        reseal(rec);
        CHECK_THAT(decode_header(rec).error(), Catch::Contains("is not this format's"));
    }
    SECTION("table blocks") {
        store_guest<ByteOrder::Little, u32>(rec.data() + 56, 2);
        reseal(rec);
        CHECK_THAT(decode_header(rec).error(), Catch::Contains("geometry is inconsistent"));
    }
    SECTION("disk size against the base size") {
        store_guest<ByteOrder::Little, u64>(rec.data() + 24, h.base.size + 512);
        reseal(rec);
        CHECK_THAT(decode_header(rec).error(), Catch::Contains("geometry is inconsistent"));
    }
    SECTION("a long base name is cut, not overflowed") {
        Header l = h;
        l.base_name = std::string(400, 'n');
        encode_header(l, rec);
        CHECK(decode_header(rec)->base_name == std::string(kBaseNameBytes - 1, 'n'));
    }
}

TEST_CASE("overlay format: commit records", "[overlay]") {
    std::vector<u8> rec(kRecordBytes, 0);
    CHECK(decode_commit(rec).state == RecordState::Empty);
    encode_commit({7, 42, 3, 0x12345678}, rec);
    const DecodedCommit d = decode_commit(rec);
    REQUIRE(d.state == RecordState::Valid);
    CHECK(d.commit.generation == 7);
    CHECK(d.commit.data_end == 42);
    CHECK(d.commit.table_blocks == 3);
    CHECK(d.commit.table_digest == 0x12345678);
    rec[20] ^= 0x80;
    CHECK(decode_commit(rec).state == RecordState::Damaged);
    CHECK(decode_commit(rec).why == "checksum mismatch");
    rec.assign(kRecordBytes, 0);
    rec[300] = 1;
    CHECK(decode_commit(rec).why == "no DISCOCMT magic");
}

TEST_CASE("overlay format: table block copies", "[overlay]") {
    std::vector<u32> entries(kEntriesPerBlock), got(kEntriesPerBlock);
    for (u32 i = 0; i < kEntriesPerBlock; ++i) entries[i] = i % 3 ? 0 : 1000 + i;
    std::vector<u8> block(kClusterSize, 0);
    CHECK(decode_table_block(block, 4, got).state == RecordState::Empty);
    const u32 crc = encode_table_block(4, 9, entries, block);
    DecodedBlock d = decode_table_block(block, 4, got);
    REQUIRE(d.state == RecordState::Valid);
    CHECK(d.generation == 9);
    CHECK(d.crc == crc);
    CHECK(got == entries);
    CHECK(decode_table_block(block, 5, got).why == "it is a copy of table block 4");
    block[4000] ^= 2;
    CHECK(decode_table_block(block, 4, got).why == "checksum mismatch");
    encode_table_block(4, 0, entries, block);
    CHECK(decode_table_block(block, 4, got).why == "generation 0");
    // The digest depends on every block's checksum and their order.
    CHECK(table_digest(std::vector<u32>{1, 2}) != table_digest(std::vector<u32>{2, 1}));
    CHECK(table_digest(std::vector<u32>{0, 0}) != table_digest(std::vector<u32>{0, 0, 0}));
}
