// Decoding one virtio-blk request (virtio 1.1 §5.2.6) from a descriptor
// chain: a 16-byte device-readable header (le32 type, le32 reserved, le64
// sector), the data, and a device-writable status byte at the very end.
//
// Two kinds of bad request: one the device can still answer (an unknown type,
// a range past the disk, a write to a read-only disk) gets a status; one it
// cannot even frame (no header, no status byte, data in the wrong direction)
// is a driver fault that breaks the device.
#pragma once
#include <sys/uio.h>

#include <string>
#include <vector>

#include "vmm/dev/virtio/chain.hpp"
#include "vmm/util/result.hpp"

namespace disco::dev {

namespace blk {
constexpr u32 kTypeIn = 0, kTypeOut = 1, kTypeFlush = 4, kTypeGetId = 8;
constexpr u8 kStatusOk = 0, kStatusIoErr = 1, kStatusUnsupp = 2;
constexpr u64 kSectorSize = 512;  // sectors are always 512 bytes (§5.2.6)
constexpr u64 kHeaderSize = 16;
constexpr usize kIdBytes = 20;  // VIRTIO_BLK_ID_BYTES
}  // namespace blk

struct BlkDisk {
    u64 capacity_sectors = 0;
    bool read_only = false;
};

struct BlkRequest {
    enum class Op { Read, Write, Flush, GetId, Answer } op = Op::Answer;
    DescChain chain;
    u8 answer = blk::kStatusOk;  // the status of an Answer request
    u64 offset = 0;              // Read/Write: byte offset in the disk
    u64 length = 0;              // Read/Write/GetId: data bytes
    std::vector<iovec> iov;      // Read/Write: the data in guest RAM (host addresses)
};

/// (Re)builds r.iov, the host addresses of a Read/Write request's data in
/// `chain`; false when the data is not all in guest RAM. The addresses are
/// good while the chain is pinned (pin_chain).
bool data_iovecs(const GuestRam& ram, const DescChain& chain, BlkRequest& r);

/// Decodes chain, checking the type, the direction of every part and the
/// sector range against disk; the error is a driver fault.
Result<BlkRequest, std::string> decode_blk_request(const GuestRam& ram, DescChain chain, const BlkDisk& disk);
}  // namespace disco::dev
