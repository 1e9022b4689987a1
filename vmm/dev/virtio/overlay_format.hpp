// The on-disk format of a copy-on-write disk overlay, version 1
// (configs/disk-overlay-format.md says why it is laid out so): encoding and
// checking its three kinds of record. Pure functions over bytes; the I/O and
// the rules that tie records together are OverlayDisk's (overlay_disk.hpp).
//
//   cluster 0       header: identity of the base, geometry (written once)
//   clusters 1, 2   commit records, slot G % 2 holding generation G
//   clusters 3...   the table: block b in clusters 3 + 2b and 4 + 2b (two copies)
//   then            data clusters, allocated upwards, never freed
//
// All integers little-endian; every record carries a CRC-32C.
#pragma once
#include <span>
#include <string>
#include <vector>

#include "vmm/util/result.hpp"
#include "vmm/util/types.hpp"

namespace disco::dev::overlay {

constexpr u64 kClusterBits = 12;
constexpr u64 kClusterSize = u64{1} << kClusterBits;  // a guest page: reads stay page-aligned for page sharing
constexpr u64 kClusterMask = kClusterSize - 1;
constexpr u32 kVersion = 1;
constexpr usize kRecordBytes = 512;                                 // header and commit records: one sector each
constexpr u64 kCommitOffset[2] = {kClusterSize, 2 * kClusterSize};  // each alone in its cluster
constexpr u64 kTableOffset = 3 * kClusterSize;
constexpr u64 kBlockHeaderBytes = 16;
constexpr u32 kEntriesPerBlock = static_cast<u32>((kClusterSize - kBlockHeaderBytes) / 4);  // 1020
constexpr u64 kBaseHeadBytes = u64{1} << 20;  // the base's first MiB is checksummed
constexpr usize kBaseNameBytes = 256;
/// Data clusters are numbered in 32 bits: disks up to 15 TiB leave room for the table.
constexpr u64 kMaxDiskBytes = u64{15} << 40;

/// What identifies the base image an overlay was made from.
struct BaseIdentity {
    u64 size = 0;  // bytes, the whole file
    i64 mtime_sec = 0;
    u32 mtime_nsec = 0;
    u32 head_crc = 0;  // CRC-32C of the first min(size, 1 MiB) bytes
    bool operator==(const BaseIdentity&) const = default;
};

/// Where everything is, from the disk size alone.
struct Geometry {
    u64 disk_size = 0;  // bytes the guest sees: a multiple of 512
    u64 clusters = 0;   // disk clusters, the last one possibly partial
    u32 table_blocks = 0;
    u64 data_cluster = 0;  // the first data cluster

    static Geometry of(u64 disk_size);
    /// File offset of copy `slot` (0 or 1) of table block b.
    u64 slot_offset(u32 b, unsigned slot) const { return kTableOffset + (2 * u64{b} + slot) * kClusterSize; }
};

struct Header {
    u64 disk_size = 0;
    BaseIdentity base;
    u64 created = 0;        // Unix time, for people
    std::string base_name;  // the base's path when the overlay was made, for people (at most 255 bytes kept)
};
/// out: kRecordBytes.
void encode_header(const Header& h, std::span<u8> out);
/// Checks magic, checksum, version, features and geometry; the error says which failed.
Result<Header, std::string> decode_header(std::span<const u8> in);

struct Commit {
    u64 generation = 0;
    u64 data_end = 0;  // first data cluster never handed out when the commit was made
    u32 table_blocks = 0;
    u32 table_digest = 0;  // table_digest() of the table this commit makes current
};
enum class RecordState { Empty, Valid, Damaged };
struct DecodedCommit {
    RecordState state = RecordState::Empty;
    Commit commit;
    std::string why;  // Damaged: what is wrong
};
void encode_commit(const Commit& c, std::span<u8> out);
/// All zero is Empty (never written).
DecodedCommit decode_commit(std::span<const u8> in);

struct DecodedBlock {
    RecordState state = RecordState::Empty;  // all zero: never written, every entry 0, generation 0
    u64 generation = 0;
    u32 crc = 0;  // the stored checksum; 0 for Empty
    std::string why;
};
/// A copy of table block `index` at generation (>= 1) holding entries
/// (kEntriesPerBlock of them) into out (kClusterSize bytes); returns its checksum.
u32 encode_table_block(u32 index, u64 generation, std::span<const u32> entries, std::span<u8> out);
/// Checks one copy of table block index; on Valid fills entries (kEntriesPerBlock).
DecodedBlock decode_table_block(std::span<const u8> in, u32 index, std::span<u32> entries);
/// The digest a commit records: CRC-32C over the checksums of the current
/// copy of every table block in order (0 for a block never written).
u32 table_digest(std::span<const u32> block_crcs);
}  // namespace disco::dev::overlay
