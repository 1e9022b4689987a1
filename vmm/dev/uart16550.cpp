#include "vmm/dev/uart16550.hpp"

namespace disco::dev {
namespace {
// Register offsets (PC16550D Table II).
constexpr u64 RBR_THR = 0, IER = 1, IIR_FCR = 2, LCR = 3, MCR = 4, LSR = 5, MSR = 6, SCR = 7;
constexpr u8 IER_RDA = 1, IER_THRE = 2;
constexpr u8 LCR_DLAB = 0x80;
constexpr u8 MCR_LOOP = 0x10;
constexpr u8 LSR_DR = 0x01, LSR_THRE = 0x20, LSR_TEMT = 0x40;
constexpr u8 IIR_NONE = 0x01, IIR_THRE = 0x02, IIR_RDA = 0x04, IIR_FIFO = 0xC0;
}  // namespace

Uart16550::Uart16550(Output out, IrqLine irq) : out_(std::move(out)), irq_(std::move(irq)) {}

u8 Uart16550::iir_locked() const {
    // Priority: received data before transmitter empty (PC16550D Table IV).
    const u8 fifo = (fcr_ & 1) ? IIR_FIFO : 0;
    if ((ier_ & IER_RDA) && !rx_.empty()) return fifo | IIR_RDA;
    if ((ier_ & IER_THRE) && thr_empty_irq_) return fifo | IIR_THRE;
    return fifo | IIR_NONE;
}

void Uart16550::update_irq_locked() {
    const bool level = (iir_locked() & IIR_NONE) == 0;
    if (level != irq_level_) {
        irq_level_ = level;
        if (irq_) irq_(level);
    }
}

u64 Uart16550::mmio_read(u64 offset, unsigned) {
    std::lock_guard<std::mutex> lock(mutex_);
    u8 v = 0;
    switch (offset) {
        case RBR_THR:
            if (lcr_ & LCR_DLAB) {
                v = dll_;
            } else if (!rx_.empty()) {
                v = rx_.front();
                rx_.pop_front();
            }
            break;
        case IER:
            v = (lcr_ & LCR_DLAB) ? dlm_ : ier_;
            break;
        case IIR_FCR:
            v = iir_locked();
            if ((v & 0x0F) == IIR_THRE) thr_empty_irq_ = false;  // reading IIR clears a THRE interrupt
            break;
        case LCR:
            v = lcr_;
            break;
        case MCR:
            v = mcr_;
            break;
        case LSR:
            v = static_cast<u8>(LSR_THRE | LSR_TEMT | (rx_.empty() ? 0 : LSR_DR));
            break;
        case MSR:
            // Loopback wires DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD; otherwise a
            // modem that is always ready (CTS, DSR, DCD).
            v = (mcr_ & MCR_LOOP)
                    ? static_cast<u8>(((mcr_ & 1) << 5) | ((mcr_ & 2) << 3) | ((mcr_ & 4) << 4) | ((mcr_ & 8) << 4))
                    : 0xB0;
            break;
        case SCR:
            v = scr_;
            break;
        default:
            break;
    }
    update_irq_locked();
    return v;
}

void Uart16550::mmio_write(u64 offset, unsigned, u64 value) {
    const u8 v = static_cast<u8>(value);
    std::unique_lock<std::mutex> lock(mutex_);
    switch (offset) {
        case RBR_THR:
            if (lcr_ & LCR_DLAB) {
                dll_ = v;
            } else if (mcr_ & MCR_LOOP) {
                rx_.push_back(v);  // loopback: transmit straight into the receiver
            } else {
                out_(std::span<const u8>(&v, 1));
            }
            thr_empty_irq_ = true;  // transmission is instant: THR is empty again
            break;
        case IER:
            if (lcr_ & LCR_DLAB) {
                dlm_ = v;
            } else {
                // Enabling THRE with an empty THR raises the interrupt at once.
                if ((v & IER_THRE) && !(ier_ & IER_THRE)) thr_empty_irq_ = true;
                ier_ = v & 0x0F;
            }
            break;
        case IIR_FCR:
            fcr_ = v & 0xC9;
            if (v & 0x02) rx_.clear();  // reset the receive FIFO
            break;
        case LCR:
            lcr_ = v;
            break;
        case MCR:
            mcr_ = v & 0x1F;
            break;
        case SCR:
            scr_ = v;
            break;
        default:
            break;  // LSR and MSR are read-only
    }
    update_irq_locked();
}

void Uart16550::push_input(std::span<const u8> bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    rx_.insert(rx_.end(), bytes.begin(), bytes.end());
    update_irq_locked();
}
}  // namespace disco::dev
