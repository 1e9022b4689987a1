#include "vmm/dev/virtio/overlay_format.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "vmm/mem/endian.hpp"
#include "vmm/util/crc32c.hpp"

namespace disco::dev::overlay {
namespace {
constexpr char kHeaderMagic[8] = {'D', 'I', 'S', 'C', 'O', 'O', 'V', 'L'};
constexpr char kCommitMagic[8] = {'D', 'I', 'S', 'C', 'O', 'C', 'M', 'T'};
constexpr usize kCrcAt = kRecordBytes - 4;  // records end in the CRC of what precedes it

template <class T>
void put(std::span<u8> out, usize at, T v) {
    store_guest<ByteOrder::Little, T>(out.data() + at, v);
}
template <class T>
T get(std::span<const u8> in, usize at) {
    return load_guest<ByteOrder::Little, T>(in.data() + at);
}
bool all_zero(std::span<const u8> in) {
    return std::all_of(in.begin(), in.end(), [](u8 b) { return b == 0; });
}
void seal(std::span<u8> rec) { put<u32>(rec, kCrcAt, crc32c(rec.first(kCrcAt))); }
bool sealed(std::span<const u8> rec) { return get<u32>(rec, kCrcAt) == crc32c(rec.first(kCrcAt)); }

// Header fields (byte offsets).
enum : usize {
    kHVersion = 8,
    kHClusterBits = 12,
    kHFeatures = 16,
    kHEntriesPerBlock = 20,
    kHDiskSize = 24,
    kHBaseSize = 32,
    kHBaseMtimeSec = 40,
    kHBaseMtimeNsec = 48,
    kHBaseHeadCrc = 52,
    kHTableBlocks = 56,
    kHDataOffset = 64,
    kHCreated = 72,
    kHBaseName = 80,
};
// Commit record fields.
enum : usize { kCGeneration = 8, kCDataEnd = 16, kCTableBlocks = 24, kCDigest = 28 };
// Table block fields.
enum : usize { kBCrc = 0, kBIndex = 4, kBGeneration = 8 };
}  // namespace

Geometry Geometry::of(u64 disk_size) {
    Geometry g;
    g.disk_size = disk_size;
    g.clusters = (disk_size + kClusterMask) >> kClusterBits;
    g.table_blocks = static_cast<u32>((g.clusters + kEntriesPerBlock - 1) / kEntriesPerBlock);
    g.data_cluster = (kTableOffset >> kClusterBits) + 2 * u64{g.table_blocks};
    return g;
}

void encode_header(const Header& h, std::span<u8> out) {
    std::fill(out.begin(), out.end(), 0);
    const Geometry g = Geometry::of(h.disk_size);
    std::memcpy(out.data(), kHeaderMagic, sizeof kHeaderMagic);
    put<u32>(out, kHVersion, kVersion);
    put<u32>(out, kHClusterBits, kClusterBits);
    put<u32>(out, kHFeatures, 0);
    put<u32>(out, kHEntriesPerBlock, kEntriesPerBlock);
    put<u64>(out, kHDiskSize, h.disk_size);
    put<u64>(out, kHBaseSize, h.base.size);
    put<i64>(out, kHBaseMtimeSec, h.base.mtime_sec);
    put<u32>(out, kHBaseMtimeNsec, h.base.mtime_nsec);
    put<u32>(out, kHBaseHeadCrc, h.base.head_crc);
    put<u32>(out, kHTableBlocks, g.table_blocks);
    put<u64>(out, kHDataOffset, g.data_cluster << kClusterBits);
    put<u64>(out, kHCreated, h.created);
    std::memcpy(out.data() + kHBaseName, h.base_name.data(), std::min(h.base_name.size(), kBaseNameBytes - 1));
    seal(out.first(kRecordBytes));
}

Result<Header, std::string> decode_header(std::span<const u8> in) {
    if (in.size() < kRecordBytes) return fail(std::string("too short for an overlay header"));
    in = in.first(kRecordBytes);
    if (std::memcmp(in.data(), kHeaderMagic, sizeof kHeaderMagic) != 0)
        return fail(std::string("not a disco disk overlay (no DISCOOVL magic at its start)"));
    if (!sealed(in)) return fail(std::string("the header fails its checksum (the header is damaged)"));
    if (const u32 v = get<u32>(in, kHVersion); v != kVersion)
        return fail(fmt::format("format version {} is not supported (this disco reads version {})", v, kVersion));
    if (const u32 f = get<u32>(in, kHFeatures); f != 0)
        return fail(fmt::format("it needs features 0x{:x} that this disco does not have", f));
    Header h;
    h.disk_size = get<u64>(in, kHDiskSize);
    h.base.size = get<u64>(in, kHBaseSize);
    h.base.mtime_sec = get<i64>(in, kHBaseMtimeSec);
    h.base.mtime_nsec = get<u32>(in, kHBaseMtimeNsec);
    h.base.head_crc = get<u32>(in, kHBaseHeadCrc);
    h.created = get<u64>(in, kHCreated);
    const char* name = reinterpret_cast<const char*>(in.data() + kHBaseName);
    h.base_name.assign(name, strnlen(name, kBaseNameBytes - 1));
    // Geometry the header states must be what its disk size implies.
    const Geometry g = Geometry::of(h.disk_size);
    const u32 bits = get<u32>(in, kHClusterBits), per_block = get<u32>(in, kHEntriesPerBlock);
    const u32 blocks = get<u32>(in, kHTableBlocks);
    const u64 data = get<u64>(in, kHDataOffset);
    if (bits != kClusterBits || per_block != kEntriesPerBlock)
        return fail(fmt::format("cluster size 2^{} with {} entries per table block is not this format's (2^{}, {})",
                                bits, per_block, kClusterBits, kEntriesPerBlock));
    if (h.disk_size % 512 || h.disk_size > kMaxDiskBytes || h.disk_size > h.base.size ||
        h.base.size - h.disk_size >= 512 || blocks != g.table_blocks || data != g.data_cluster << kClusterBits)
        return fail(
            fmt::format("the header's geometry is inconsistent (disk {} bytes, base {} bytes, {} table "
                        "blocks, data at {})",
                        h.disk_size, h.base.size, blocks, data));
    return h;
}

void encode_commit(const Commit& c, std::span<u8> out) {
    std::fill(out.begin(), out.end(), 0);
    std::memcpy(out.data(), kCommitMagic, sizeof kCommitMagic);
    put<u64>(out, kCGeneration, c.generation);
    put<u64>(out, kCDataEnd, c.data_end);
    put<u32>(out, kCTableBlocks, c.table_blocks);
    put<u32>(out, kCDigest, c.table_digest);
    seal(out.first(kRecordBytes));
}

DecodedCommit decode_commit(std::span<const u8> in) {
    DecodedCommit d;
    in = in.first(kRecordBytes);
    if (all_zero(in)) return d;
    d.state = RecordState::Damaged;
    if (std::memcmp(in.data(), kCommitMagic, sizeof kCommitMagic) != 0) {
        d.why = "no DISCOCMT magic";
        return d;
    }
    if (!sealed(in)) {
        d.why = "checksum mismatch";
        return d;
    }
    d.state = RecordState::Valid;
    d.commit.generation = get<u64>(in, kCGeneration);
    d.commit.data_end = get<u64>(in, kCDataEnd);
    d.commit.table_blocks = get<u32>(in, kCTableBlocks);
    d.commit.table_digest = get<u32>(in, kCDigest);
    return d;
}

u32 encode_table_block(u32 index, u64 generation, std::span<const u32> entries, std::span<u8> out) {
    put<u32>(out, kBIndex, index);
    put<u64>(out, kBGeneration, generation);
    for (u32 i = 0; i < kEntriesPerBlock; ++i) put<u32>(out, kBlockHeaderBytes + 4 * usize{i}, entries[i]);
    const u32 crc = crc32c(out.subspan(4, kClusterSize - 4));
    put<u32>(out, kBCrc, crc);
    return crc;
}

DecodedBlock decode_table_block(std::span<const u8> in, u32 index, std::span<u32> entries) {
    DecodedBlock d;
    in = in.first(kClusterSize);
    if (all_zero(in)) return d;
    d.state = RecordState::Damaged;
    d.crc = get<u32>(in, kBCrc);
    if (d.crc != crc32c(in.subspan(4, kClusterSize - 4))) {
        d.why = "checksum mismatch";
        return d;
    }
    if (const u32 at = get<u32>(in, kBIndex); at != index) {
        d.why = fmt::format("it is a copy of table block {}", at);
        return d;
    }
    d.generation = get<u64>(in, kBGeneration);
    if (d.generation == 0) {
        d.why = "generation 0";
        return d;
    }
    d.state = RecordState::Valid;
    for (u32 i = 0; i < kEntriesPerBlock; ++i) entries[i] = get<u32>(in, kBlockHeaderBytes + 4 * usize{i});
    return d;
}

u32 table_digest(std::span<const u32> block_crcs) {
    std::vector<u8> bytes(4 * block_crcs.size());
    for (usize i = 0; i < block_crcs.size(); ++i)
        store_guest<ByteOrder::Little, u32>(bytes.data() + 4 * i, block_crcs[i]);
    return crc32c(bytes);
}
}  // namespace disco::dev::overlay
