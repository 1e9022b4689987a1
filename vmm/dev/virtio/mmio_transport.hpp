// Virtio over MMIO, version 2 ("modern") register layout (virtio 1.1 §4.2):
// one 0x200-byte window per device, control registers below 0x100 and the
// device configuration space from 0x100. Registers are little-endian (the
// value of an access is the little-endian reading of the bytes it covers).
//
// A transport without a device is an empty slot: it answers MagicValue,
// Version and DeviceID 0 (§4.2.3.1.1), so a board can map every slot.
//
// Interrupts: InterruptStatus bit 0 (used buffer) and bit 1 (configuration
// change) are set by the device's events and cleared by InterruptACK; the
// line is their OR, driven as a level (irq_line is called on changes only).
//
// Threads: vCPU threads call mmio_read/mmio_write (one register lock; the
// device's methods run under it). The device's own threads call VirtioHost
// methods, which take only the interrupt lock, never the register lock, so a
// reset that waits for the device's threads cannot deadlock. irq_line is
// called with the interrupt lock held and must not call back into the transport.
#pragma once
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "vmm/dev/unimplemented.hpp"
#include "vmm/dev/virtio/device.hpp"
#include "vmm/mem/mmio.hpp"

namespace disco::dev {

class VirtioMmio final : public MmioDevice, private VirtioHost {
public:
    using IrqLine = std::function<void(bool level)>;
    static constexpr u64 kWindowSize = 0x200;
    static constexpr u64 kConfigOffset = 0x100;
    static constexpr u32 kMagic = 0x74726976;     // "virt"
    static constexpr u32 kVendorId = 0x4F435344;  // "DSCO"

    /// device may be null: an empty slot. mmio_base only names the device in messages.
    VirtioMmio(GuestRam& ram, std::unique_ptr<VirtioDevice> device, IrqLine irq_line, u64 mmio_base);
    static std::unique_ptr<VirtioMmio> empty(GuestRam& ram, u64 mmio_base) {
        return std::make_unique<VirtioMmio>(ram, nullptr, nullptr, mmio_base);
    }
    /// Resets the device, so that its threads are gone before the transport is.
    ~VirtioMmio() override;

    u64 mmio_read(u64 offset, unsigned size) override;
    void mmio_write(u64 offset, unsigned size, u64 value) override;
    std::string name() const override { return name_; }
    std::string describe_state() const override;

    /// The device behind the transport (null for an empty slot).
    VirtioDevice* device() const { return device_.get(); }
    /// The Status register as the driver would read it.
    u32 status() const;
    bool needs_reset() const { return needs_reset_.load(); }

private:
    struct Queue {
        VirtQueueLayout layout;
        bool ready = false;
    };

    // VirtioHost
    void signal_used(unsigned queue) override;
    void device_error(std::string_view what) override;

    u32 read_register(u64 offset);
    void write_register(u64 offset, u32 value);
    void write_status(u32 value);
    void enable_queue();
    void reset_locked();
    Queue* selected_queue();
    u64 offered_features() const;
    void raise_interrupt(u32 bits);

    GuestRam& ram_;
    std::unique_ptr<VirtioDevice> device_;
    IrqLine irq_line_;
    std::string name_;
    UnimplementedRegisterLog unimplemented_;

    mutable std::mutex mutex_;  // the registers below
    u32 status_ = 0;            // without NEEDS_RESET, which needs_reset_ holds
    u32 device_features_sel_ = 0, driver_features_sel_ = 0, queue_sel_ = 0;
    u64 driver_features_ = 0;
    bool active_ = false;  // activate() called since the last reset
    std::vector<Queue> queues_;

    std::atomic<bool> needs_reset_{false};
    mutable std::mutex irq_mutex_;  // the interrupt state below
    u32 interrupt_status_ = 0;
    bool irq_level_ = false;
};
}  // namespace disco::dev
