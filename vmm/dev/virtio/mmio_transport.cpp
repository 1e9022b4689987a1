#include "vmm/dev/virtio/mmio_transport.hpp"

#include <fmt/format.h>

#include <cstdio>

#include "vmm/dev/virtio/virtqueue.hpp"

namespace disco::dev {
namespace {
// Register offsets (virtio 1.1 §4.2.2, table "MMIO Device Register Layout").
enum Reg : u64 {
    MagicValue = 0x000,
    Version = 0x004,
    DeviceID = 0x008,
    VendorID = 0x00C,
    DeviceFeatures = 0x010,
    DeviceFeaturesSel = 0x014,
    DriverFeatures = 0x020,
    DriverFeaturesSel = 0x024,
    QueueSel = 0x030,
    QueueNumMax = 0x034,
    QueueNum = 0x038,
    QueueReady = 0x044,
    QueueNotify = 0x050,
    InterruptStatus = 0x060,
    InterruptACK = 0x064,
    Status = 0x070,
    QueueDescLow = 0x080,
    QueueDescHigh = 0x084,
    QueueDriverLow = 0x090,
    QueueDriverHigh = 0x094,
    QueueDeviceLow = 0x0A0,
    QueueDeviceHigh = 0x0A4,
    ConfigGeneration = 0x0FC,
};
constexpr u32 kVersionModern = 2;
constexpr u32 kInterruptUsedBuffer = 1, kInterruptConfigChange = 2;  // §4.2.2 InterruptStatus
// Ring features the transport implements for every device (virtqueue.cpp).
constexpr u64 kRingFeatures = virtio_feature::kVersion1 | virtio_feature::kIndirectDesc | virtio_feature::kEventIdx;

void set_low(GuestPhysAddr& a, u32 v) { a.value = (a.value & ~0xFFFFFFFFull) | v; }
void set_high(GuestPhysAddr& a, u32 v) { a.value = (a.value & 0xFFFFFFFFull) | (u64{v} << 32); }
}  // namespace

VirtioMmio::VirtioMmio(GuestRam& ram, std::unique_ptr<VirtioDevice> device, IrqLine irq_line, u64 mmio_base)
    : ram_(ram),
      device_(std::move(device)),
      irq_line_(std::move(irq_line)),
      name_(fmt::format("virtio-mmio@{:#x} ({})", mmio_base, device_ ? device_->name() : "empty")),
      unimplemented_(name_, mmio_base),
      queues_(device_ ? device_->queue_count() : 0) {}

VirtioMmio::~VirtioMmio() {
    if (device_) device_->reset();
}

u32 VirtioMmio::status() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return status_ | (needs_reset_ ? virtio_status::kNeedsReset : 0);
}

u64 VirtioMmio::offered_features() const { return device_ ? device_->device_features() | kRingFeatures : 0; }

VirtioMmio::Queue* VirtioMmio::selected_queue() { return queue_sel_ < queues_.size() ? &queues_[queue_sel_] : nullptr; }

u64 VirtioMmio::mmio_read(u64 offset, unsigned size) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (offset >= kConfigOffset) {
        // Device configuration: any width the driver likes (§4.2.2.2 allows
        // 8, 16 and 32 bits; Linux splits 64-bit fields into two 32-bit reads).
        if (!device_ || size > 8 || offset + size > kWindowSize) return 0;
        u8 bytes[8] = {};
        device_->read_config(offset - kConfigOffset, std::span<u8>(bytes, size));
        u64 v = 0;
        for (unsigned i = 0; i < size; ++i) v |= u64{bytes[i]} << (8 * i);
        return v;
    }
    // §4.2.2.2: the driver uses only 32-bit wide, aligned accesses to control registers.
    if (size != 4 || offset % 4) {
        unimplemented_.note(offset, size, false);
        return 0;
    }
    return read_register(offset);
}

u32 VirtioMmio::read_register(u64 offset) {
    switch (offset) {
        case MagicValue:
            return kMagic;
        case Version:
            return kVersionModern;
        case DeviceID:
            return device_ ? device_->device_id() : 0;
        case VendorID:
            return kVendorId;
        case DeviceFeatures:
            return device_features_sel_ < 2 ? static_cast<u32>(offered_features() >> (32 * device_features_sel_)) : 0;
        case QueueNumMax:
            return selected_queue() ? device_->queue_max_size() : 0;
        case QueueReady: {
            const Queue* q = selected_queue();
            return q && q->ready;
        }
        case InterruptStatus: {
            std::lock_guard<std::mutex> irq(irq_mutex_);
            return interrupt_status_;
        }
        case Status:
            return status_ | (needs_reset_ ? virtio_status::kNeedsReset : 0);
        case ConfigGeneration:
            return 0;  // no configuration field ever changes under the driver
        default:
            // Write-only registers read as 0; so does the 1.2 shared memory
            // block (Linux then sees no region) and anything unassigned.
            unimplemented_.note(offset, 4, false);
            return 0;
    }
}

void VirtioMmio::mmio_write(u64 offset, unsigned size, u64 value) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!device_) return;  // an empty slot has nothing to configure
    if (offset >= kConfigOffset) {
        if (size > 8 || offset + size > kWindowSize) return;
        u8 bytes[8];
        for (unsigned i = 0; i < size; ++i) bytes[i] = static_cast<u8>(value >> (8 * i));
        device_->write_config(offset - kConfigOffset, std::span<const u8>(bytes, size));
        return;
    }
    if (size != 4 || offset % 4) {
        unimplemented_.note(offset, size, true);
        return;
    }
    write_register(offset, static_cast<u32>(value));
}

void VirtioMmio::write_register(u64 offset, u32 value) {
    Queue* q = selected_queue();
    // §4.2.2.1 / §3.1.1: queues are set up before DRIVER_OK and features
    // before FEATURES_OK; later writes to those registers are ignored.
    const bool queue_setup = q && !(status_ & virtio_status::kDriverOk) && !q->ready;
    switch (offset) {
        case DeviceFeaturesSel:
            device_features_sel_ = value;
            return;
        case DriverFeatures:
            if (status_ & virtio_status::kFeaturesOk) return;
            if (driver_features_sel_ < 2) {
                const unsigned shift = 32 * driver_features_sel_;
                driver_features_ = (driver_features_ & ~(0xFFFFFFFFull << shift)) | (u64{value} << shift);
            }
            return;
        case DriverFeaturesSel:
            driver_features_sel_ = value;
            return;
        case QueueSel:
            queue_sel_ = value;
            return;
        case QueueNum:
            if (queue_setup) q->layout.size = static_cast<u16>(std::min<u32>(value, 0xFFFF));
            return;
        case QueueReady:
            if (!q) return;
            if (value & 1) {
                if (!q->ready && !(status_ & virtio_status::kDriverOk)) enable_queue();
            } else {
                q->ready = false;
            }
            return;
        case QueueNotify:
            // Notifications count only for live queues of an active device (§4.2.3.3).
            if (active_ && value < queues_.size() && queues_[value].ready) device_->notify(value);
            return;
        case InterruptACK: {
            std::lock_guard<std::mutex> irq(irq_mutex_);
            interrupt_status_ &= ~value;
            const bool level = interrupt_status_ != 0;
            if (level != irq_level_) {
                irq_level_ = level;
                if (irq_line_) irq_line_(level);
            }
            return;
        }
        case Status:
            write_status(value);
            return;
        case QueueDescLow:
            if (queue_setup) set_low(q->layout.desc, value);
            return;
        case QueueDescHigh:
            if (queue_setup) set_high(q->layout.desc, value);
            return;
        case QueueDriverLow:
            if (queue_setup) set_low(q->layout.avail, value);
            return;
        case QueueDriverHigh:
            if (queue_setup) set_high(q->layout.avail, value);
            return;
        case QueueDeviceLow:
            if (queue_setup) set_low(q->layout.used, value);
            return;
        case QueueDeviceHigh:
            if (queue_setup) set_high(q->layout.used, value);
            return;
        default:
            unimplemented_.note(offset, 4, true);
            return;
    }
}

void VirtioMmio::enable_queue() {
    Queue& q = queues_[queue_sel_];
    // Checked here rather than at first use so that the driver hears about a
    // bad ring while it is setting it up.
    if (auto why = VirtQueue::check_layout(ram_, q.layout, device_->queue_max_size())) {
        device_error(fmt::format("queue {}: {}", queue_sel_, *why));
        return;
    }
    q.ready = true;
}

void VirtioMmio::write_status(u32 value) {
    using namespace virtio_status;
    if (value == 0) {
        reset_locked();  // §4.2.2.1: reset, and Status reads 0 once it is done
        return;
    }
    value &= ~kNeedsReset;  // the device's bit, not the driver's
    if ((value & kFeaturesOk) && !(status_ & kFeaturesOk)) {
        // §2.2.1, §6.1: accept only offered features, and as a modern-only
        // device only a driver that accepts VIRTIO_F_VERSION_1. Refusing
        // means leaving FEATURES_OK clear, which the driver reads back.
        const bool ok = (driver_features_ & ~offered_features()) == 0 && (driver_features_ & virtio_feature::kVersion1);
        if (!ok) value &= ~kFeaturesOk;
    }
    status_ = value;
    if ((value & kDriverOk) && !active_) {
        if (!(value & kFeaturesOk)) {
            device_error("the driver set DRIVER_OK without FEATURES_OK");
            return;
        }
        VirtioActivation act{ram_, driver_features_, {}, *this};
        for (const Queue& q : queues_) act.queues.push_back(q.ready ? q.layout : VirtQueueLayout{});
        active_ = true;
        device_->activate(act);
    }
}

void VirtioMmio::reset_locked() {
    device_->reset();  // returns once the device no longer touches guest memory
    status_ = 0;
    device_features_sel_ = driver_features_sel_ = queue_sel_ = 0;
    driver_features_ = 0;
    active_ = false;
    for (Queue& q : queues_) q = Queue{};
    needs_reset_ = false;
    std::lock_guard<std::mutex> irq(irq_mutex_);
    interrupt_status_ = 0;
    if (irq_level_) {
        irq_level_ = false;
        if (irq_line_) irq_line_(false);
    }
}

void VirtioMmio::raise_interrupt(u32 bits) {
    std::lock_guard<std::mutex> irq(irq_mutex_);
    interrupt_status_ |= bits;
    if (!irq_level_) {
        irq_level_ = true;
        if (irq_line_) irq_line_(true);
    }
}

void VirtioMmio::signal_used(unsigned) { raise_interrupt(kInterruptUsedBuffer); }

void VirtioMmio::device_error(std::string_view what) {
    // One line per failure: later faults until the driver's reset add nothing.
    // NEEDS_RESET is set before the interrupt, so a driver woken by it reads it.
    if (!needs_reset_.exchange(true)) {
        const std::string line = fmt::format("disco: {}: {}; device needs reset\n", name_, what);
        std::fputs(line.c_str(), stderr);
    }
    raise_interrupt(kInterruptConfigChange);
}
std::string VirtioMmio::describe_state() const {
    if (!device_) return {};
    std::unique_lock<std::mutex> lock(mutex_, std::try_to_lock);  // a diagnostic must not hang
    std::unique_lock<std::mutex> irq_lock(irq_mutex_, std::try_to_lock);
    if (!lock || !irq_lock) return "busy (its lock is held)";
    return fmt::format("status={:#x} interrupt-status={:#x} irq={} needs-reset={} active={}", status_,
                       interrupt_status_, irq_level_, needs_reset_.load(), active_);
}
}  // namespace disco::dev
