// One fuzz case for the virtqueue code: the input becomes the descriptor
// table and available ring of a split queue in guest RAM, which is then
// walked as blk requests would be, and served by a virtio-console through
// the MMIO transport. Whatever the bytes, nothing may touch memory outside
// guest RAM, crash, or hand out a segment that is not RAM; a fault must leave
// the queue stopped. Shared by tests/fuzz/fuzz_virtqueue.cpp (libFuzzer) and
// the seeded test in tests/unit/dev/test_virtqueue.cpp.
#pragma once
#include <cstdlib>
#include <cstring>
#include <span>

#include "tests/unit/dev/virtio_test_driver.hpp"
#include "vmm/dev/virtio/blk_request.hpp"
#include "vmm/dev/virtio/console.hpp"
#include "vmm/dev/virtio/virtqueue.hpp"

namespace disco::test {

// Layout of the fuzz RAM: the rings, then data buffers up to kFuzzRamSize.
constexpr u64 kFuzzDesc = 0x0, kFuzzAvail = 0x1000, kFuzzUsed = 0x2000, kFuzzRamSize = 0x10000;
/// Input bytes: [0] queue size exponent, [1] features, then RAM from kFuzzDesc
/// (descriptor table, then available ring at kFuzzAvail).
constexpr usize kFuzzHeader = 2;

/// Aborts (a finding for libFuzzer, a failed test for Catch2) when an invariant breaks.
inline void fuzz_check(bool ok) {
    if (!ok) std::abort();
}

inline bool in_ram(const GuestRam& ram, const dev::DescSegment& s) { return ram.is_ram(s.addr, s.len); }

/// Pops everything the queue offers, checks each chain and returns it used.
inline void walk_queue(GuestRam& ram, dev::VirtQueue& q) {
    const dev::BlkDisk disk{64, false};
    for (unsigned round = 0; round < 2u * q.size() + 2; ++round) {
        auto chain = q.pop();
        if (!chain) {
            fuzz_check(q.broken());
            auto again = q.pop();  // a stopped queue gives nothing more
            fuzz_check(again && !*again);
            return;
        }
        if (!*chain) break;
        const dev::DescChain& c = **chain;
        fuzz_check(c.head < q.size());
        fuzz_check(c.readable.size() + c.writable.size() <= 2u * q.size());
        u64 r = 0, w = 0;
        for (const auto& s : c.readable) fuzz_check(in_ram(ram, s)), r += s.len;
        for (const auto& s : c.writable) fuzz_check(in_ram(ram, s)), w += s.len;
        fuzz_check(r == c.readable_bytes && w == c.writable_bytes);
        if (auto req = dev::decode_blk_request(ram, c, disk)) {
            const auto& region = *ram.regions().front();
            for (const iovec& v : req->iov) {
                const u8* p = static_cast<const u8*>(v.iov_base);
                fuzz_check(p >= region.plain_host() && p + v.iov_len <= region.plain_host() + region.size());
            }
            if (!req->iov.empty())
                fuzz_check(req->offset + req->length <= disk.capacity_sectors * dev::blk::kSectorSize);
        }
        (void)q.push(c.head, static_cast<u32>(std::min<u64>(w, 0xFFFFFFFF)));
    }
    (void)q.needs_interrupt();
    (void)q.arm_notification();
}

inline void run_virtqueue_case(std::span<const u8> data) {
    if (data.size() < kFuzzHeader) return;
    GuestRam ram = make_ram(kFuzzRamSize);
    const u16 size = static_cast<u16>(1u << (data[0] % 9));  // 1 .. 256
    const u64 features = dev::virtio_feature::kVersion1 | ((data[1] & 1) ? dev::virtio_feature::kIndirectDesc : 0) |
                         ((data[1] & 2) ? dev::virtio_feature::kEventIdx : 0);
    const auto image = data.subspan(kFuzzHeader, std::min<usize>(data.size() - kFuzzHeader, kFuzzUsed));
    fuzz_check(ram.write(GuestPhysAddr(kFuzzDesc), image).has_value());

    // The queue on its own, as blk's I/O thread uses it.
    DriverQueue dq(ram, size, kFuzzDesc, kFuzzAvail, kFuzzUsed);
    fuzz_check(!dev::VirtQueue::check_layout(ram, dq.layout(), 256));
    dev::VirtQueue q(ram, dq.layout(), features);
    walk_queue(ram, q);

    // The same ring as a console's transmit queue, through the transport.
    fuzz_check(ram.write(GuestPhysAddr(kFuzzDesc), image).has_value());
    std::vector<u8> zero(0x1000);
    fuzz_check(ram.write(GuestPhysAddr(kFuzzUsed), zero).has_value());
    usize out_bytes = 0;
    Driver d(ram, std::make_unique<dev::VirtioConsole>([&](std::span<const u8> b) { out_bytes += b.size(); }));
    if (!d.negotiate(features)) return;
    if (size <= dev::VirtioConsole::kQueueSize) d.setup_queue(dev::VirtioConsole::kTransmitQueue, dq);
    d.driver_ok();
    d.notify(dev::VirtioConsole::kTransmitQueue);
    // At most `size` chains, each of at most 2 * size segments inside RAM.
    fuzz_check(out_bytes <= u64{size} * 2 * size * kFuzzRamSize);
    d.wr(mmio_reg::Status, 0);
    fuzz_check(d.rd(mmio_reg::Status) == 0 && !d.irq);
}
}  // namespace disco::test
