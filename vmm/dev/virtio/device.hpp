// The interface between a virtio transport (mmio_transport.hpp) and a device
// type (blk.hpp, console.hpp), with the constants of virtio 1.1 §2 that both
// sides share. The transport owns the registers, feature negotiation and the
// interrupt; the device owns its queues once the driver has set DRIVER_OK.
#pragma once
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "vmm/mem/guest_ram.hpp"

namespace disco::dev {

/// Device status bits (virtio 1.1 §2.1).
namespace virtio_status {
constexpr u32 kAcknowledge = 1, kDriver = 2, kDriverOk = 4, kFeaturesOk = 8, kNeedsReset = 0x40, kFailed = 0x80;
}

/// Reserved feature bits (virtio 1.1 §6) that this implementation knows.
namespace virtio_feature {
constexpr u64 kIndirectDesc = 1ull << 28;
constexpr u64 kEventIdx = 1ull << 29;
constexpr u64 kVersion1 = 1ull << 32;
}  // namespace virtio_feature

/// Where the driver put one split virtqueue (virtio 1.1 §2.6, §4.2.2 QueueDesc/Driver/Device).
struct VirtQueueLayout {
    u16 size = 0;         // QueueNum: entries, a power of 2
    GuestPhysAddr desc;   // descriptor table
    GuestPhysAddr avail;  // driver area
    GuestPhysAddr used;   // device area
};

/// What a device may ask of its transport. Callable from any thread, also
/// from inside VirtioDevice::notify; never blocks on the transport's register lock.
class VirtioHost {
public:
    /// Used buffer notification for queue (virtio 1.1 §2.6.10): raises the interrupt.
    virtual void signal_used(unsigned queue) = 0;
    /// The driver broke the device's rules (a malformed ring, a bad address):
    /// sets DEVICE_NEEDS_RESET, sends a configuration change notification and
    /// prints one line naming the device and `what` (virtio 1.1 §2.1.2).
    /// The device stops using the queue concerned until the driver resets it.
    virtual void device_error(std::string_view what) = 0;

protected:
    ~VirtioHost() = default;
};

/// Everything a device needs to run once the driver sets DRIVER_OK.
struct VirtioActivation {
    GuestRam& ram;
    u64 features;                         // negotiated (device and driver agree on these)
    std::vector<VirtQueueLayout> queues;  // index = queue number; size 0 = not enabled by the driver
    VirtioHost& host;
};

/// A virtio device type behind a transport.
///
/// Threads: the transport calls every method with its register lock held, from
/// a vCPU thread, so they never run concurrently with each other. A device
/// that works on other threads (blk's I/O thread, console input) synchronises
/// with its own lock; reset() must return only once nothing of the device
/// touches guest memory any more.
class VirtioDevice {
public:
    virtual ~VirtioDevice() = default;
    virtual std::string name() const = 0;
    /// Device ID (virtio 1.1 §5): 2 block, 3 console.
    virtual u32 device_id() const = 0;
    /// The device type's feature bits (0-23); the transport adds the ring features.
    virtual u64 device_features() const = 0;
    virtual unsigned queue_count() const = 0;
    /// QueueNumMax of every queue: a power of 2.
    virtual u16 queue_max_size() const = 0;
    /// Device configuration space bytes [offset, offset + out.size()), little-endian;
    /// bytes past the structure read as 0.
    virtual void read_config(u64 offset, std::span<u8> out) const = 0;
    virtual void write_config(u64, std::span<const u8>) {}
    /// The driver set DRIVER_OK: start serving the queues.
    virtual void activate(const VirtioActivation& activation) = 0;
    /// Available buffer notification for queue (a QueueNotify write).
    virtual void notify(unsigned queue) = 0;
    /// Device reset (status 0, or the transport going away): stop all work,
    /// forget the queues; keep host-side state such as pending console input.
    virtual void reset() = 0;
};
}  // namespace disco::dev
