#include "vmm/dev/virtio/console.hpp"

#include <fmt/format.h>

#include <vector>

#include "vmm/mem/endian.hpp"

namespace disco::dev {
namespace {
constexpr u64 kFeatureEmergWrite = 1ull << 2;  // VIRTIO_CONSOLE_F_EMERG_WRITE (§5.3.3)
// Configuration layout (§5.3.4): le16 cols, le16 rows, le32 max_nr_ports, le32 emerg_wr.
constexpr u64 kEmergWrOffset = 8, kConfigSize = 12;
}  // namespace

VirtioConsole::VirtioConsole(Output out) : out_(std::move(out)) {}

u64 VirtioConsole::device_features() const { return kFeatureEmergWrite; }

void VirtioConsole::read_config(u64, std::span<u8> out) const {
    // cols/rows and max_nr_ports are meaningful only with SIZE and MULTIPORT,
    // emerg_wr is write-only: every byte reads as 0.
    std::fill(out.begin(), out.end(), u8{0});
}

void VirtioConsole::write_config(u64 offset, std::span<const u8> in) {
    // §5.3.6.3 (emergency write): the low byte of a write to emerg_wr is output.
    if (offset != kEmergWrOffset || in.empty() || offset + in.size() > kConfigSize) return;
    std::lock_guard<std::mutex> lock(mutex_);
    if (out_) out_(in.first(1));
}

void VirtioConsole::activate(const VirtioActivation& act) {
    std::lock_guard<std::mutex> lock(mutex_);
    ram_ = &act.ram;
    host_ = &act.host;
    if (act.queues.size() > kReceiveQueue && act.queues[kReceiveQueue].size)
        rx_.emplace(act.ram, act.queues[kReceiveQueue], act.features);
    if (act.queues.size() > kTransmitQueue && act.queues[kTransmitQueue].size)
        tx_.emplace(act.ram, act.queues[kTransmitQueue], act.features);
    // Buffers the driver posted before DRIVER_OK, or output queued early.
    transmit_locked();
    receive_locked();
}

void VirtioConsole::notify(unsigned queue) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (queue == kTransmitQueue) transmit_locked();
    if (queue == kReceiveQueue) receive_locked();
}

void VirtioConsole::reset() {
    std::lock_guard<std::mutex> lock(mutex_);
    rx_.reset();
    tx_.reset();
    ram_ = nullptr;
    host_ = nullptr;
}

void VirtioConsole::push_input(std::span<const u8> bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    backlog_.insert(backlog_.end(), bytes.begin(), bytes.end());
    receive_locked();
}

usize VirtioConsole::input_pending() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return backlog_.size();
}

void VirtioConsole::queue_fault_locked(unsigned queue, const std::string& what) {
    host_->device_error(fmt::format("queue {}: {}", queue, what));
}

void VirtioConsole::transmit_locked() {
    if (!tx_) return;
    std::vector<u8> bytes;
    do {
        for (;;) {
            auto chain = tx_->pop();
            if (!chain) return queue_fault_locked(kTransmitQueue, chain.error());
            if (!*chain) break;
            const DescChain& c = **chain;
            if (c.writable_bytes) {
                tx_->mark_broken();
                return queue_fault_locked(
                    kTransmitQueue, fmt::format("chain {} has device-writable buffers in the transmit queue", c.head));
            }
            bytes.resize(c.readable_bytes);
            gather(*ram_, c.readable, 0, bytes);
            if (out_ && !bytes.empty()) out_(bytes);
            if (auto r = tx_->push(c.head, 0); !r) return queue_fault_locked(kTransmitQueue, r.error());
        }
    } while (tx_->arm_notification());
    if (tx_->needs_interrupt()) host_->signal_used(kTransmitQueue);
}

void VirtioConsole::receive_locked() {
    if (!rx_) return;
    std::vector<u8> bytes;
    while (!backlog_.empty()) {
        auto chain = rx_->pop();
        if (!chain) return queue_fault_locked(kReceiveQueue, chain.error());
        if (!*chain) {
            // Out of buffers: ask to hear of new ones; take them now if they came meanwhile.
            if (rx_->arm_notification()) continue;
            break;
        }
        const DescChain& c = **chain;
        if (c.readable_bytes) {
            rx_->mark_broken();
            return queue_fault_locked(kReceiveQueue,
                                      fmt::format("chain {} has device-readable buffers in the receive queue", c.head));
        }
        const usize n = std::min<u64>(backlog_.size(), c.writable_bytes);
        bytes.assign(backlog_.begin(), backlog_.begin() + static_cast<std::ptrdiff_t>(n));
        scatter(*ram_, c.writable, 0, bytes);
        backlog_.erase(backlog_.begin(), backlog_.begin() + static_cast<std::ptrdiff_t>(n));
        if (auto r = rx_->push(c.head, static_cast<u32>(n)); !r) return queue_fault_locked(kReceiveQueue, r.error());
    }
    if (rx_->needs_interrupt()) host_->signal_used(kReceiveQueue);
}
}  // namespace disco::dev
