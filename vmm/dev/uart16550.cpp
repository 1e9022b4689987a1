#include "vmm/dev/uart16550.hpp"

#include <fmt/format.h>

namespace disco::dev {
namespace {
// Register offsets (PC16550D, register summary table): DLAB=1 turns
// offsets 0 and 1 into the divisor latch (DLL, DLM).
constexpr u64 RBR_THR = 0, IER = 1, IIR_FCR = 2, LCR = 3, MCR = 4, LSR = 5, MSR = 6, SCR = 7;

// IER: ERBFI, ETBEI, ELSI, EDSSI; bits 4-7 are always 0.
constexpr u8 IER_RDA = 0x01, IER_THRE = 0x02, IER_RLS = 0x04, IER_MS = 0x08, IER_MASK = 0x0F;
// IIR: bit 0 = 0 when an interrupt is pending, bits 1-3 its identification,
// bits 6-7 set while FIFOs are enabled (FCR0 = 1).
constexpr u8 IIR_NONE = 0x01, IIR_MS = 0x00, IIR_THRE = 0x02, IIR_RDA = 0x04, IIR_RLS = 0x06, IIR_TIMEOUT = 0x0C,
             IIR_FIFOS = 0xC0;
// FCR: FIFO enable, receiver FIFO reset, transmitter FIFO reset, trigger level (bits 6-7).
constexpr u8 FCR_ENABLE = 0x01, FCR_RX_RESET = 0x02;
constexpr u8 LCR_DLAB = 0x80;
// MCR: DTR, RTS, OUT1, OUT2, LOOP; bits 5-7 are always 0.
constexpr u8 MCR_LOOP = 0x10, MCR_MASK = 0x1F;
// LSR: BI is the break indicator; RXFE ("error in RCVR FIFO") is set in FIFO
// mode while a character with an error (here: a break) waits in the FIFO.
constexpr u8 LSR_DR = 0x01, LSR_OE = 0x02, LSR_BI = 0x10, LSR_THRE = 0x20, LSR_TEMT = 0x40, LSR_RXFE = 0x80;
// MSR: bits 4-7 are the complemented modem inputs CTS, DSR, RI, DCD; bits 0-3 their deltas.
constexpr u8 MSR_CTS = 0x10, MSR_DSR = 0x20, MSR_RI = 0x40, MSR_DCD = 0x80;
constexpr u8 MSR_DCTS = 0x01, MSR_DDSR = 0x02, MSR_TERI = 0x04, MSR_DDCD = 0x08;

/// Receiver FIFO trigger levels selected by FCR bits 7:6 (1, 4, 8, 14 bytes).
constexpr usize trigger_level(u8 fcr) {
    constexpr usize levels[4] = {1, 4, 8, 14};
    return levels[fcr >> 6];
}
}  // namespace

Uart16550::Uart16550(Output out, IrqLine irq) : out_(std::move(out)), irq_(std::move(irq)) {}

u64 Uart16550::mmio_read(u64 offset, unsigned) {
    std::lock_guard<std::mutex> lock(mutex_);
    const u8 v = offset <= SCR ? read_locked(offset) : 0;  // the rest of the window reads as 0
    update_irq_locked();
    return v;
}

void Uart16550::mmio_write(u64 offset, unsigned, u64 value) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (offset <= SCR) write_locked(offset, static_cast<u8>(value));
    update_irq_locked();
}

void Uart16550::push_input(std::span<const u8> bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const u8 b : bytes) backlog_.push_back({b, false});
    refill_rx_locked();
    update_irq_locked();
}

void Uart16550::push_break() {
    // "When break occurs only one zero character is loaded into the FIFO" (PC16550D, LSR bit 4).
    std::lock_guard<std::mutex> lock(mutex_);
    backlog_.push_back({0, true});
    refill_rx_locked();
    update_irq_locked();
}

bool Uart16550::break_pending_locked() const {
    // In FIFO mode the error belongs to its character and shows when that
    // character is at the top; an LSR read clears BI (PC16550D, LSR bit 4).
    return !rx_fifo_.empty() && rx_fifo_.front().brk && !break_reported_;
}

void Uart16550::pop_rx_locked() {
    rx_fifo_.pop_front();
    break_reported_ = false;  // the next character's BI, if any, is new
}

usize Uart16550::input_pending() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return rx_fifo_.size() + backlog_.size();
}

u8 Uart16550::read_locked(u64 reg) {
    const bool dlab = lcr_ & LCR_DLAB;
    switch (reg) {
        case RBR_THR: {
            if (dlab) return dll_;
            if (rx_fifo_.empty()) return 0;
            const u8 v = rx_fifo_.front().byte;
            pop_rx_locked();
            refill_rx_locked();
            return v;
        }
        case IER:
            return dlab ? dlm_ : ier_;
        case IIR_FCR: {
            const u8 v = iir_locked();
            // Reading IIR while it reports THRE clears that interrupt
            // (PC16550D, "Interrupt Control Functions" table).
            if ((v & 0x0F) == IIR_THRE) thre_pending_ = false;
            return v;
        }
        case LCR:
            return lcr_;
        case MCR:
            return mcr_;
        case LSR: {
            const bool bi = break_pending_locked();
            // RXFE: a break in the FIFO that no LSR read has shown yet (cleared
            // by the read unless another one follows).
            bool rxfe = false;
            if (fcr_ & FCR_ENABLE)
                for (usize i = (break_reported_ ? 1 : 0); i < rx_fifo_.size() && !rxfe; ++i) rxfe = rx_fifo_[i].brk;
            const u8 v = static_cast<u8>(LSR_THRE | LSR_TEMT | (rx_fifo_.empty() ? 0 : LSR_DR) |
                                         (overrun_ ? LSR_OE : 0) | (bi ? LSR_BI : 0) | (rxfe ? LSR_RXFE : 0));
            overrun_ = false;  // error bits clear on read
            if (bi) break_reported_ = true;
            return v;
        }
        case MSR: {
            const u8 v = static_cast<u8>(modem_inputs_locked() | msr_delta_);
            msr_delta_ = 0;  // delta bits clear on read
            return v;
        }
        case SCR:
            return scr_;
        default:
            return 0;
    }
}

void Uart16550::write_locked(u64 reg, u8 v) {
    const bool dlab = lcr_ & LCR_DLAB;
    switch (reg) {
        case RBR_THR:
            if (dlab) {
                dll_ = v;
                return;
            }
            if (mcr_ & MCR_LOOP) {
                // Loopback: the transmitter feeds the receiver and the line
                // stays idle. A full receiver loses the byte and flags overrun.
                if (rx_fifo_.size() < rx_capacity_locked()) {
                    rx_fifo_.push_back({v, false});
                } else {
                    overrun_ = true;
                }
            } else if (out_) {
                out_(std::span<const u8>(&v, 1));
            }
            // The byte left THR at once, so THR is empty again: writing THR
            // clears the THRE interrupt and the empty THR raises it anew.
            thre_pending_ = true;
            return;
        case IER:
            if (dlab) {
                dlm_ = v;
                return;
            }
            // Enabling ETBEI while THR is empty (always, here) gives a THRE interrupt.
            if ((v & IER_THRE) && !(ier_ & IER_THRE)) thre_pending_ = true;
            ier_ = v & IER_MASK;
            return;
        case IIR_FCR:
            write_fcr_locked(v);
            return;
        case LCR:
            lcr_ = v;
            return;
        case MCR:
            write_mcr_locked(v);
            return;
        case SCR:
            scr_ = v;
            return;
        default:
            return;  // LSR and MSR are read-only
    }
}

void Uart16550::write_fcr_locked(u8 v) {
    // FCR0 must be 1 for the other bits to be programmed, and changing FCR0
    // clears both FIFOs (PC16550D, "FIFO Control Register").
    if ((v & FCR_ENABLE) != (fcr_ & FCR_ENABLE)) rx_fifo_.clear();
    if (!(v & FCR_ENABLE)) {
        fcr_ = 0;
    } else {
        fcr_ = v & 0xC9;  // keep enable, DMA mode and trigger level; the reset bits self-clear
        if (v & FCR_RX_RESET) rx_fifo_.clear();
    }
    if (rx_fifo_.empty()) break_reported_ = false;
    refill_rx_locked();
}

void Uart16550::write_mcr_locked(u8 v) {
    const u8 before = modem_inputs_locked();
    const bool was_loop = mcr_ & MCR_LOOP;
    mcr_ = v & MCR_MASK;
    const u8 after = modem_inputs_locked();
    const u8 changed = before ^ after;
    if (changed & MSR_CTS) msr_delta_ |= MSR_DCTS;
    if (changed & MSR_DSR) msr_delta_ |= MSR_DDSR;
    if ((before & MSR_RI) && !(after & MSR_RI)) msr_delta_ |= MSR_TERI;  // trailing edge only
    if (changed & MSR_DCD) msr_delta_ |= MSR_DDCD;
    if (was_loop && !(mcr_ & MCR_LOOP)) refill_rx_locked();  // the serial input is connected again
}

u8 Uart16550::iir_locked() const {
    // Priorities, highest first (PC16550D, "Interrupt Control Functions"):
    // receiver line status, received data (or character timeout), THR empty,
    // modem status.
    const u8 fifos = (fcr_ & FCR_ENABLE) ? IIR_FIFOS : 0;
    if ((ier_ & IER_RLS) && (overrun_ || break_pending_locked())) return fifos | IIR_RLS;
    if ((ier_ & IER_RDA) && !rx_fifo_.empty()) {
        // With FIFOs, data below the trigger level is reported as a character
        // timeout. There is no character clock here, so the timeout counts as
        // already expired rather than leaving the bytes unannounced.
        if (!(fcr_ & FCR_ENABLE) || rx_fifo_.size() >= trigger_level(fcr_)) return fifos | IIR_RDA;
        return fifos | IIR_TIMEOUT;
    }
    if ((ier_ & IER_THRE) && thre_pending_) return fifos | IIR_THRE;
    if ((ier_ & IER_MS) && msr_delta_) return fifos | IIR_MS;
    return fifos | IIR_NONE;
}

u8 Uart16550::modem_inputs_locked() const {
    // Loopback wires DTR→DSR, RTS→CTS, OUT1→RI and OUT2→DCD (PC16550D, MCR
    // bit 4). Otherwise the far end is a modem that is always ready.
    if (!(mcr_ & MCR_LOOP)) return MSR_CTS | MSR_DSR | MSR_DCD;
    u8 v = 0;
    if (mcr_ & 0x01) v |= MSR_DSR;
    if (mcr_ & 0x02) v |= MSR_CTS;
    if (mcr_ & 0x04) v |= MSR_RI;
    if (mcr_ & 0x08) v |= MSR_DCD;
    return v;
}

usize Uart16550::rx_capacity_locked() const { return (fcr_ & FCR_ENABLE) ? kFifoDepth : 1; }

void Uart16550::refill_rx_locked() {
    // In loopback the serial input is disconnected from the receiver, so
    // typed bytes wait in the backlog.
    if (mcr_ & MCR_LOOP) return;
    while (!backlog_.empty() && rx_fifo_.size() < rx_capacity_locked()) {
        rx_fifo_.push_back(backlog_.front());
        backlog_.pop_front();
    }
}

std::string Uart16550::describe_state() const {
    std::unique_lock<std::mutex> lock(mutex_, std::try_to_lock);  // a diagnostic must not hang
    if (!lock) return "busy (its lock is held)";
    return fmt::format("ier={:#x} iir={:#x} lcr={:#x} mcr={:#x} fcr={:#x} rx={} backlog={} thre-pending={} irq={}",
                       ier_, iir_locked(), lcr_, mcr_, fcr_, rx_fifo_.size(), backlog_.size(), thre_pending_,
                       irq_level_);
}

void Uart16550::update_irq_locked() {
    const bool level = !(iir_locked() & IIR_NONE);
    if (level == irq_level_) return;
    irq_level_ = level;
    if (irq_) irq_(level);
}
}  // namespace disco::dev
