#include "vmm/dev/virtio/blk_request.hpp"

#include <fmt/format.h>

#include "vmm/mem/endian.hpp"

namespace disco::dev {
using namespace blk;

Result<BlkRequest, std::string> decode_blk_request(const GuestRam& ram, DescChain chain, const BlkDisk& disk) {
    const u16 head = chain.head;
    if (chain.readable_bytes < kHeaderSize)
        return fail(fmt::format("request {}: header is {} device-readable bytes, not {}", head, chain.readable_bytes,
                                kHeaderSize));
    if (chain.writable_bytes < 1) return fail(fmt::format("request {}: no device-writable status byte", head));
    u8 header[kHeaderSize];
    if (!gather(ram, chain.readable, 0, header)) return fail(fmt::format("request {}: header unreadable", head));
    const u32 type = load_guest<ByteOrder::Little, u32>(header);
    const u64 sector = load_guest<ByteOrder::Little, u64>(header + 8);

    BlkRequest r;
    const u64 in_data = chain.writable_bytes - 1;             // device-writable bytes before the status
    const u64 out_data = chain.readable_bytes - kHeaderSize;  // device-readable bytes after the header
    auto answer = [&](u8 status) {
        r.op = BlkRequest::Op::Answer;
        r.answer = status;
    };
    switch (type) {
        case kTypeIn:
        case kTypeGetId:
            // The data is for the driver: it must be device-writable (§5.2.6.1).
            if (out_data)
                return fail(fmt::format("request {}: {} data bytes of a read are device-readable", head, out_data));
            r.op = type == kTypeIn ? BlkRequest::Op::Read : BlkRequest::Op::GetId;
            r.length = in_data;
            break;
        case kTypeOut:
            if (in_data)
                return fail(fmt::format("request {}: {} data bytes of a write are device-writable", head, in_data));
            r.op = BlkRequest::Op::Write;
            r.length = out_data;
            break;
        case kTypeFlush:
            r.op = BlkRequest::Op::Flush;
            break;
        default:
            answer(kStatusUnsupp);  // §5.2.6.2: unknown types are answered UNSUPP
            break;
    }
    if (r.op == BlkRequest::Op::Read || r.op == BlkRequest::Op::Write) {
        const u64 sectors = r.length / kSectorSize;
        if (r.length % kSectorSize || sector > disk.capacity_sectors || sectors > disk.capacity_sectors - sector) {
            answer(kStatusIoErr);  // never reach past the image (§5.2.6.2)
        } else if (r.op == BlkRequest::Op::Write && disk.read_only) {
            answer(kStatusIoErr);  // §5.2.6.2: writes to a VIRTIO_BLK_F_RO device fail
        } else {
            r.offset = sector * kSectorSize;
            if (!data_iovecs(ram, chain, r))
                return fail(fmt::format("request {}: data buffer is not in guest RAM", head));
        }
    }
    r.chain = std::move(chain);
    return r;
}

bool data_iovecs(const GuestRam& ram, const DescChain& chain, BlkRequest& r) {
    r.iov.clear();
    return r.op == BlkRequest::Op::Read ? host_iovecs(ram, chain.writable, 0, r.length, r.iov)
                                        : host_iovecs(ram, chain.readable, blk::kHeaderSize, r.length, r.iov);
}
}  // namespace disco::dev
