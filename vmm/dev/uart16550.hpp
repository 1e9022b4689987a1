// A 16550A UART (National Semiconductor / TI PC16550D datasheet): the console
// of the boards. Byte registers at consecutive offsets (reg-shift 0) in a
// 0x100-byte window; a wider access touches only the register at its offset
// and uses its low byte.
//
// Transmission is instant: a byte written to THR goes to the output sink at
// once, so THR and the transmitter are always empty again (LSR.THRE|TEMT).
// Reception has the real part's FIFO (16 bytes, or a 1-byte holding register
// with FIFOs off). Bytes typed on the console first wait in an unbounded
// host-side backlog and move into the FIFO as the guest drains it: a real
// line would have overrun, but the host has no reason to drop keystrokes.
// A break on the line (push_break) is what the part makes of one: a 0
// character flagged with LSR.BI, revealed when it reaches the top of the
// FIFO, with a receiver line status interrupt (PC16550D, "Line Status
// Register" bit 4 and "FIFO Interrupt Mode Operation").
//
// Threads: vCPU threads access registers while another thread calls
// push_input(); one mutex guards the state. Both callbacks run under that
// mutex, so output order and interrupt edges follow register order even
// across threads; they must not call back into the UART.
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
    /// Receives every transmitted byte, in order, as soon as the guest writes it.
    using Output = std::function<void(std::span<const u8>)>;
    /// The interrupt output: called only when the level changes.
    using IrqLine = std::function<void(bool level)>;

    static constexpr u64 kWindowSize = 0x100;
    static constexpr usize kFifoDepth = 16;

    Uart16550(Output out, IrqLine irq);

    u64 mmio_read(u64 offset, unsigned size) override;
    void mmio_write(u64 offset, unsigned size, u64 value) override;
    std::string name() const override { return "uart16550"; }
    std::string describe_state() const override;

    /// Queues bytes arriving on the serial line (any thread).
    void push_input(std::span<const u8> bytes);
    /// Queues a break on the serial line after what was pushed before it (any
    /// thread). Linux's 8250 driver takes a break on its console port as the
    /// magic SysRq prefix: the next character is a SysRq command (uart_handle_break).
    void push_break();
    /// Input bytes not yet read by the guest (FIFO and backlog), so that a
    /// feeder thread can apply back-pressure if it wants to.
    usize input_pending() const;

private:
    u8 read_locked(u64 reg);
    void write_locked(u64 reg, u8 v);
    void write_fcr_locked(u8 v);
    void write_mcr_locked(u8 v);
    u8 iir_locked() const;
    u8 modem_inputs_locked() const;
    usize rx_capacity_locked() const;
    void refill_rx_locked();
    void update_irq_locked();
    /// LSR.BI: the character at the top of the FIFO is a break, not yet reported by an LSR read.
    bool break_pending_locked() const;
    void pop_rx_locked();

    /// A received character: a byte, or the 0 character a break loads.
    struct RxChar {
        u8 byte;
        bool brk;
    };

    mutable std::mutex mutex_;
    Output out_;
    IrqLine irq_;
    std::deque<RxChar> rx_fifo_;   // what the guest can read now (≤ rx_capacity_locked())
    std::deque<RxChar> backlog_;   // pushed, waiting for room in the FIFO
    bool break_reported_ = false;  // an LSR read has shown the top character's BI (cleared when it is popped)
    u8 ier_ = 0, lcr_ = 0, mcr_ = 0, scr_ = 0, fcr_ = 0;
    u8 dll_ = 0x0C, dlm_ = 0;    // 9600 baud from a 1.8432 MHz clock, a common reset-time value
    u8 msr_delta_ = 0;           // MSR bits 0-3, cleared when MSR is read
    bool overrun_ = false;       // LSR.OE, cleared when LSR is read
    bool thre_pending_ = false;  // the THRE interrupt source (see iir_locked)
    bool irq_level_ = false;
};
}  // namespace disco::dev
