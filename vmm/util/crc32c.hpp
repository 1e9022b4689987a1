// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of the
// disk overlay's metadata (configs/disk-overlay-format.md). The same CRC as
// iSCSI, ext4 and btrfs metadata use, so the standard check value holds:
// crc32c("123456789") == 0xE3069283.
#pragma once
#include <span>

#include "vmm/util/types.hpp"

namespace disco {
/// The CRC of bytes, continuing from crc (0 to start): crc32c(b, crc32c(a)) == crc32c(a + b).
u32 crc32c(std::span<const u8> bytes, u32 crc = 0);
}  // namespace disco
