// One descriptor chain as the device sees it once the split ring has been
// walked and checked (virtqueue.hpp): the device-readable buffers, then the
// device-writable ones (virtio 1.1 §2.6.4.2 keeps them in that order), each
// known to lie inside one RAM region. Message framing is free (§2.6.4): a
// device must not assume where the driver split its buffers, so devices read
// and write a chain as one byte stream through these helpers.
#pragma once
#include <sys/uio.h>

#include <span>
#include <utility>
#include <vector>

#include "vmm/mem/guest_ram.hpp"

namespace disco::dev {

struct DescSegment {
    GuestPhysAddr addr;
    u32 len = 0;
};

struct DescChain {
    u16 head = 0;  // the id to return in the used ring
    std::vector<DescSegment> readable;
    std::vector<DescSegment> writable;
    u64 readable_bytes = 0;
    u64 writable_bytes = 0;
};

/// Copies bytes [offset, offset + out.size()) of the segments' concatenation
/// into out; false if that range is not wholly inside them.
bool gather(const GuestRam& ram, std::span<const DescSegment> segs, u64 offset, std::span<u8> out);
/// Copies in to bytes [offset, offset + in.size()) of the segments' concatenation.
bool scatter(GuestRam& ram, std::span<const DescSegment> segs, u64 offset, std::span<const u8> in);
/// Pins every buffer of a chain for asynchronous DMA (GuestRam::pin): page
/// operations leave them alone until unpin_chain. Segments are known to be RAM.
void pin_chain(const GuestRam& ram, const DescChain& chain);
void unpin_chain(const GuestRam& ram, const DescChain& chain);
/// The segments less the byte ranges `holes` ({offset, length} into their
/// concatenation, in order, disjoint): what stays to pin when the holes are
/// served otherwise.
std::vector<DescSegment> segments_without(std::span<const DescSegment> segs,
                                          std::span<const std::pair<u64, u64>> holes);
/// Reports bytes [offset, offset + length) of the segments as written by the
/// device (GuestRam::note_dma_write), after DMA through host_iovecs.
void note_written(const GuestRam& ram, std::span<const DescSegment> segs, u64 offset, u64 length);
/// Host iovecs for bytes [offset, offset + length) of the segments, appended
/// to out, so that the host kernel can move data straight into guest RAM.
bool host_iovecs(const GuestRam& ram, std::span<const DescSegment> segs, u64 offset, u64 length,
                 std::vector<iovec>& out);
}  // namespace disco::dev
