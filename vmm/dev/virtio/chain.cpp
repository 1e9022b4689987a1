#include "vmm/dev/virtio/chain.hpp"

#include <cstring>

namespace disco::dev {
namespace {
/// Calls visit(host bytes) for each piece of [offset, offset + length) of the
/// segments, in order; false if the range runs past them or a segment is not RAM.
template <bool Write, class Visit>
bool for_each_piece(const GuestRam& ram, std::span<const DescSegment> segs, u64 offset, u64 length, Visit visit) {
    for (const DescSegment& s : segs) {
        if (length == 0) return true;
        if (offset >= s.len) {
            offset -= s.len;
            continue;
        }
        const u64 take = std::min<u64>(s.len - offset, length);
        auto host = ram.host_span(s.addr + offset, take);
        if (!host) return false;
        // Pinned while we copy: a page operation must not move it under us.
        DmaPin pin(ram, s.addr + offset, take, Write);
        visit(*host);
        offset = 0;
        length -= take;
    }
    return length == 0;
}
}  // namespace

bool gather(const GuestRam& ram, std::span<const DescSegment> segs, u64 offset, std::span<u8> out) {
    usize done = 0;
    return for_each_piece<false>(ram, segs, offset, out.size(), [&](std::span<u8> piece) {
        std::memcpy(out.data() + done, piece.data(), piece.size());
        done += piece.size();
    });
}

bool scatter(GuestRam& ram, std::span<const DescSegment> segs, u64 offset, std::span<const u8> in) {
    usize done = 0;
    const bool ok = for_each_piece<true>(ram, segs, offset, in.size(), [&](std::span<u8> piece) {
        std::memcpy(piece.data(), in.data() + done, piece.size());
        done += piece.size();
    });
    note_written(ram, segs, offset, done);
    return ok;
}

void pin_chain(const GuestRam& ram, const DescChain& chain) {
    for (const DescSegment& s : chain.readable) (void)ram.pin(s.addr, s.len, false);
    for (const DescSegment& s : chain.writable) (void)ram.pin(s.addr, s.len, true);
}

void unpin_chain(const GuestRam& ram, const DescChain& chain) {
    for (const DescSegment& s : chain.readable) ram.unpin(s.addr, s.len);
    for (const DescSegment& s : chain.writable) ram.unpin(s.addr, s.len);
}

void note_written(const GuestRam& ram, std::span<const DescSegment> segs, u64 offset, u64 length) {
    for (const DescSegment& s : segs) {
        if (length == 0) return;
        if (offset >= s.len) {
            offset -= s.len;
            continue;
        }
        const u64 take = std::min<u64>(s.len - offset, length);
        ram.note_dma_write(s.addr + offset, take);
        offset = 0;
        length -= take;
    }
}

bool host_iovecs(const GuestRam& ram, std::span<const DescSegment> segs, u64 offset, u64 length,
                 std::vector<iovec>& out) {
    return for_each_piece<false>(ram, segs, offset, length, [&](std::span<u8> piece) {
        out.push_back(iovec{piece.data(), piece.size()});
    });
}
}  // namespace disco::dev
