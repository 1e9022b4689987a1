// The driver side of virtio-mmio for tests: split rings built in a real
// GuestRam and the transport driven through mmio_read/mmio_write in the order
// Linux's virtio_mmio uses (virtio 1.1 §3.1.1, §4.2.3).
#pragma once
#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "vmm/dev/virtio/mmio_transport.hpp"
#include "vmm/mem/endian.hpp"

namespace disco::test {

constexpr ByteOrder LE = ByteOrder::Little;

namespace mmio_reg {
constexpr u64 Magic = 0x000, Version = 0x004, DeviceId = 0x008, DeviceFeatures = 0x010, DeviceFeaturesSel = 0x014,
              DriverFeatures = 0x020, DriverFeaturesSel = 0x024, QueueSel = 0x030, QueueNumMax = 0x034,
              QueueNum = 0x038, QueueReady = 0x044, QueueNotify = 0x050, InterruptStatus = 0x060, InterruptAck = 0x064,
              Status = 0x070, QueueDescLow = 0x080, QueueDescHigh = 0x084, QueueDriverLow = 0x090,
              QueueDriverHigh = 0x094, QueueDeviceLow = 0x0A0, QueueDeviceHigh = 0x0A4, Config = 0x100;
}

constexpr u16 kNext = 1, kWrite = 2, kIndirect = 4;

/// Guest RAM for a test: 1 MiB at 0.
inline GuestRam make_ram(u64 size = 1 << 20) {
    GuestRam ram;
    (void)ram.add_region(GuestPhysAddr(0), size);
    return ram;
}

struct Buf {
    u64 addr;
    u32 len;
    bool writable;
};

/// A split ring as the driver keeps it, at fixed places in guest RAM.
class DriverQueue {
public:
    DriverQueue(GuestRam& ram, u16 size, u64 desc, u64 avail, u64 used)
        : ram_(&ram), layout_{size, GuestPhysAddr(desc), GuestPhysAddr(avail), GuestPhysAddr(used)} {}

    const dev::VirtQueueLayout& layout() const { return layout_; }
    u16 size() const { return layout_.size; }

    void set_desc(u16 i, u64 addr, u32 len, u16 flags, u16 next) {
        put_desc(layout_.desc.value + 16ull * i, addr, len, flags, next);
    }
    /// Writes one descriptor of an indirect table at table.
    void put_desc(u64 at, u64 addr, u32 len, u16 flags, u16 next) {
        u8 d[16];
        store_guest<LE, u64>(d, addr);
        store_guest<LE, u32>(d + 8, len);
        store_guest<LE, u16>(d + 12, flags);
        store_guest<LE, u16>(d + 14, next);
        (void)ram_->write(GuestPhysAddr(at), d);
    }
    /// Chains bufs in fresh descriptors and makes the chain available; returns its head.
    u16 add_chain(const std::vector<Buf>& bufs) {
        const u16 head = next_desc_;
        for (usize i = 0; i < bufs.size(); ++i) {
            const u16 idx = static_cast<u16>((head + i) % size());
            const bool more = i + 1 < bufs.size();
            set_desc(idx, bufs[i].addr, bufs[i].len,
                     static_cast<u16>((bufs[i].writable ? kWrite : 0) | (more ? kNext : 0)),
                     static_cast<u16>((idx + 1) % size()));
        }
        next_desc_ = static_cast<u16>((head + bufs.size()) % size());
        make_available(head);
        return head;
    }
    /// Puts bufs in an indirect table at table and makes one descriptor pointing at it available.
    u16 add_indirect(u64 table, const std::vector<Buf>& bufs) {
        for (usize i = 0; i < bufs.size(); ++i)
            put_desc(table + 16 * i, bufs[i].addr, bufs[i].len,
                     static_cast<u16>((bufs[i].writable ? kWrite : 0) | (i + 1 < bufs.size() ? kNext : 0)),
                     static_cast<u16>(i + 1));
        const u16 head = next_desc_;
        set_desc(head, table, static_cast<u32>(16 * bufs.size()), kIndirect, 0);
        next_desc_ = static_cast<u16>((head + 1) % size());
        make_available(head);
        return head;
    }
    void make_available(u16 head) {
        put16(layout_.avail.value + 4 + 2ull * (avail_idx_ % size()), head);
        set_avail_idx(static_cast<u16>(avail_idx_ + 1));
    }
    /// Publishes avail->idx after the ring entry and descriptors, as the
    /// driver's write barrier before the idx store does (§2.6.13.3).
    void set_avail_idx(u16 v) {
        avail_idx_ = v;
        auto s = ram_->host_span(layout_.avail + 2, 2);
        std::atomic_ref<u16>(*reinterpret_cast<u16*>(s->data())).store(guest_to_host<LE>(v), std::memory_order_release);
    }
    void set_avail_flags(u16 v) { put16(layout_.avail.value, v); }
    void set_used_event(u16 v) { put16(layout_.avail.value + 4 + 2ull * size(), v); }
    u16 avail_event() const { return get16(layout_.used.value + 4 + 8ull * size()); }
    u16 used_idx() const {
        auto s = ram_->host_span(layout_.used + 2, 2);
        return guest_to_host<LE>(
            std::atomic_ref<u16>(*reinterpret_cast<u16*>(s->data())).load(std::memory_order_acquire));
    }
    /// Used ring entry i: id and written length.
    std::pair<u32, u32> used(u16 i) const {
        u8 e[8];
        (void)ram_->read(layout_.used + 4 + 8ull * (i % size()), e);
        return {load_guest<LE, u32>(e), load_guest<LE, u32>(e + 4)};
    }
    u16 avail_idx() const { return avail_idx_; }

private:
    void put16(u64 at, u16 v) {
        u8 b[2];
        store_guest<LE, u16>(b, v);
        (void)ram_->write(GuestPhysAddr(at), b);
    }
    u16 get16(u64 at) const {
        u8 b[2];
        (void)ram_->read(GuestPhysAddr(at), b);
        return load_guest<LE, u16>(b);
    }
    GuestRam* ram_;
    dev::VirtQueueLayout layout_;
    u16 next_desc_ = 0;
    u16 avail_idx_ = 0;
};

/// A transport with its interrupt line recorded, driven like Linux's virtio_mmio.
struct Driver {
    GuestRam& ram;
    std::atomic<bool> irq{false};
    std::atomic<unsigned> edges{0};
    dev::VirtioMmio mmio;

    Driver(GuestRam& r, std::unique_ptr<dev::VirtioDevice> device)
        : ram(r),
          mmio(
              r, std::move(device),
              [this](bool level) {
                  irq = level;
                  ++edges;
              },
              0x1F100000) {}

    u32 rd(u64 off) { return static_cast<u32>(mmio.mmio_read(off, 4)); }
    void wr(u64 off, u32 v) { mmio.mmio_write(off, 4, v); }

    u64 device_features() {
        wr(mmio_reg::DeviceFeaturesSel, 1);
        u64 f = u64{rd(mmio_reg::DeviceFeatures)} << 32;
        wr(mmio_reg::DeviceFeaturesSel, 0);
        return f | rd(mmio_reg::DeviceFeatures);
    }
    /// Reset, ACKNOWLEDGE, DRIVER, features (offered ∩ wanted), FEATURES_OK; true if the device kept FEATURES_OK.
    bool negotiate(u64 wanted) {
        using namespace dev::virtio_status;
        wr(mmio_reg::Status, 0);
        wr(mmio_reg::Status, kAcknowledge);
        wr(mmio_reg::Status, kAcknowledge | kDriver);
        const u64 f = device_features() & wanted;
        wr(mmio_reg::DriverFeaturesSel, 1);
        wr(mmio_reg::DriverFeatures, static_cast<u32>(f >> 32));
        wr(mmio_reg::DriverFeaturesSel, 0);
        wr(mmio_reg::DriverFeatures, static_cast<u32>(f));
        wr(mmio_reg::Status, kAcknowledge | kDriver | kFeaturesOk);
        return rd(mmio_reg::Status) & kFeaturesOk;
    }
    void setup_queue(u32 index, const DriverQueue& q) {
        wr(mmio_reg::QueueSel, index);
        const auto& l = q.layout();
        wr(mmio_reg::QueueNum, l.size);
        wr(mmio_reg::QueueDescLow, static_cast<u32>(l.desc.value));
        wr(mmio_reg::QueueDescHigh, static_cast<u32>(l.desc.value >> 32));
        wr(mmio_reg::QueueDriverLow, static_cast<u32>(l.avail.value));
        wr(mmio_reg::QueueDriverHigh, static_cast<u32>(l.avail.value >> 32));
        wr(mmio_reg::QueueDeviceLow, static_cast<u32>(l.used.value));
        wr(mmio_reg::QueueDeviceHigh, static_cast<u32>(l.used.value >> 32));
        wr(mmio_reg::QueueReady, 1);
    }
    void driver_ok() {
        using namespace dev::virtio_status;
        wr(mmio_reg::Status, kAcknowledge | kDriver | kFeaturesOk | kDriverOk);
    }
    void notify(u32 queue) { wr(mmio_reg::QueueNotify, queue); }
    /// Reads and acknowledges InterruptStatus, as the interrupt handler does.
    u32 take_interrupt() {
        const u32 s = rd(mmio_reg::InterruptStatus);
        wr(mmio_reg::InterruptAck, s);
        return s;
    }
    bool broken() { return rd(mmio_reg::Status) & dev::virtio_status::kNeedsReset; }
};

/// Polls until pred() holds or timeout passes (device threads finish on their own time).
template <class Pred>
bool wait_for(Pred pred, std::chrono::milliseconds timeout = std::chrono::milliseconds(5000)) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (!pred()) {
        if (std::chrono::steady_clock::now() > end) return false;
        std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    return true;
}
}  // namespace disco::test
