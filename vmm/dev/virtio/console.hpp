// virtio-console (virtio 1.1 §5.3) with a single port: receiveq 0 carries
// host input to the guest, transmitq 1 the guest's output to a sink. No
// MULTIPORT and no SIZE; VIRTIO_CONSOLE_F_EMERG_WRITE is offered, so a write
// to the emerg_wr config field also reaches the sink.
//
// Output is sent at once: a transmit notification hands every queued buffer
// to the sink and returns it used before the QueueNotify write completes
// (Linux's hvc path spins until its buffer comes back). Input waits in an
// unbounded host-side backlog until the guest has posted receive buffers.
//
// Threads: vCPU threads (through the transport) and any thread calling
// push_input() share one lock; the sink and the transport's interrupt are
// called under it, so they must not call back into the console.
#pragma once
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <span>
#include <string>

#include "vmm/dev/virtio/device.hpp"
#include "vmm/dev/virtio/virtqueue.hpp"

namespace disco::dev {

class VirtioConsole final : public VirtioDevice {
public:
    using Output = std::function<void(std::span<const u8>)>;
    static constexpr u16 kQueueSize = 64;
    static constexpr unsigned kReceiveQueue = 0, kTransmitQueue = 1;

    explicit VirtioConsole(Output out);

    std::string name() const override { return "virtio-console"; }
    u32 device_id() const override { return 3; }
    u64 device_features() const override;
    unsigned queue_count() const override { return 2; }
    u16 queue_max_size() const override { return kQueueSize; }
    void read_config(u64 offset, std::span<u8> out) const override;
    void write_config(u64 offset, std::span<const u8> in) override;
    void activate(const VirtioActivation& activation) override;
    void notify(unsigned queue) override;
    void reset() override;

    /// Queues host input for the guest (any thread).
    void push_input(std::span<const u8> bytes);
    /// Input bytes the guest has not received yet.
    usize input_pending() const;

private:
    void transmit_locked();
    void receive_locked();
    void queue_fault_locked(unsigned queue, const std::string& what);

    mutable std::mutex mutex_;
    Output out_;
    std::deque<u8> backlog_;
    // Set while the driver has the device running (activate .. reset).
    GuestRam* ram_ = nullptr;
    VirtioHost* host_ = nullptr;
    std::optional<VirtQueue> rx_, tx_;
};
}  // namespace disco::dev
