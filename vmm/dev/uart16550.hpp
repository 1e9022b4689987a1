// A 16550A UART (National/TI PC16550D datasheet): the console of both boards.
// Byte registers at consecutive offsets (reg-shift 0). Transmit is immediate
// (THR is always empty again by the next read of LSR); receive has the
// 16-byte FIFO of the real part, fed by push_input() from any thread.
#pragma once
#include <deque>
#include <functional>
#include <mutex>
#include <span>
#include <string>

#include "vmm/mem/mmio.hpp"

namespace disco::dev {

class Uart16550 final : public MmioDevice {
public:
    using Output = std::function<void(std::span<const u8>)>;
    using IrqLine = std::function<void(bool level)>;
    Uart16550(Output out, IrqLine irq);

    u64 mmio_read(u64 offset, unsigned size) override;
    void mmio_write(u64 offset, unsigned size, u64 value) override;
    std::string name() const override { return "uart16550"; }

    /// Queues bytes typed on the console (any thread). Bytes beyond the FIFO
    /// wait in a host-side queue rather than being dropped.
    void push_input(std::span<const u8> bytes);

private:
    void update_irq_locked();
    u8 iir_locked() const;

    std::mutex mutex_;
    Output out_;
    IrqLine irq_;
    std::deque<u8> rx_;
    u8 ier_ = 0, lcr_ = 0, mcr_ = 0, scr_ = 0, fcr_ = 0, dll_ = 0x0C, dlm_ = 0;
    bool thr_empty_irq_ = true;  // THRE interrupt pending until IIR is read or THR written
    bool irq_level_ = false;
};
}  // namespace disco::dev
