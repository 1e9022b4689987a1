#include "vmm/dev/virtio/chain.hpp"

#include <algorithm>
#include <cstring>
#include <optional>

namespace disco::dev {
namespace {
/// Calls visit(host bytes) for each page piece of [offset, offset + length) of
/// the segments, in order; false if the range runs past them or a segment is
/// not RAM. Each piece is pinned while visit runs (Pin = true) so that a page
/// operation cannot move it; with Pin = false the caller holds the pins.
template <bool Write, bool Pin, class Visit>
bool for_each_piece(const GuestRam& ram, std::span<const DescSegment> segs, u64 offset, u64 length, Visit visit) {
    for (const DescSegment& s : segs) {
        if (length == 0) return true;
        if (offset >= s.len) {
            offset -= s.len;
            continue;
        }
        const u64 take = std::min<u64>(s.len - offset, length);
        if (!ram.is_ram(s.addr + offset, take)) return false;
        std::optional<DmaPin> pin;
        if constexpr (Pin) pin.emplace(ram, s.addr + offset, take, Write);
        // Guest pages are separate machine frames: one host piece per page.
        for (u64 done = 0; done < take;) {
            const GuestPhysAddr at = s.addr + offset + done;
            const u64 n = std::min<u64>(take - done, kPageSize - (at.value & (kPageSize - 1)));
            auto host = ram.host_span(at, n);
            if (!host) return false;
            visit(*host);
            done += n;
        }
        offset = 0;
        length -= take;
    }
    return length == 0;
}
}  // namespace

bool gather(const GuestRam& ram, std::span<const DescSegment> segs, u64 offset, std::span<u8> out) {
    usize done = 0;
    return for_each_piece<false, true>(ram, segs, offset, out.size(), [&](std::span<u8> piece) {
        std::memcpy(out.data() + done, piece.data(), piece.size());
        done += piece.size();
    });
}

bool scatter(GuestRam& ram, std::span<const DescSegment> segs, u64 offset, std::span<const u8> in) {
    usize done = 0;
    const bool ok = for_each_piece<true, true>(ram, segs, offset, in.size(), [&](std::span<u8> piece) {
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

std::vector<DescSegment> segments_without(std::span<const DescSegment> segs,
                                          std::span<const std::pair<u64, u64>> holes) {
    std::vector<DescSegment> out;
    usize h = 0;
    u64 base = 0;  // the segment's first byte in the concatenation
    for (const DescSegment& s : segs) {
        const u64 end = base + s.len;
        for (u64 from = base; from < end;) {
            while (h < holes.size() && holes[h].first + holes[h].second <= from) ++h;
            if (h == holes.size() || holes[h].first >= end) {
                out.push_back({s.addr + (from - base), static_cast<u32>(end - from)});
                break;
            }
            if (holes[h].first > from) out.push_back({s.addr + (from - base), static_cast<u32>(holes[h].first - from)});
            from = std::min(end, holes[h].first + holes[h].second);
        }
        base = end;
    }
    return out;
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
    // The caller holds the chain's pins (pin_chain) for as long as it uses
    // the iovecs. Pieces that are adjacent in host memory (the frames of a
    // run) share one iovec.
    return for_each_piece<false, false>(ram, segs, offset, length, [&](std::span<u8> piece) {
        if (!out.empty() && static_cast<u8*>(out.back().iov_base) + out.back().iov_len == piece.data())
            out.back().iov_len += piece.size();
        else
            out.push_back(iovec{piece.data(), piece.size()});
    });
}
}  // namespace disco::dev
