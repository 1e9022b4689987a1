#include "vmm/dev/goldfish_rtc.hpp"

#include <time.h>

#include <algorithm>

namespace disco::dev {
namespace {
// Register offsets (GOLDFISH-VIRTUAL-HARDWARE.TXT, "Goldfish real-time clock";
// the same map as Linux's rtc-goldfish.c). All are 32 bits wide.
constexpr u64 TIME_LOW = 0x00, TIME_HIGH = 0x04, ALARM_LOW = 0x08, ALARM_HIGH = 0x0C, IRQ_ENABLED = 0x10,
              CLEAR_ALARM = 0x14, ALARM_STATUS = 0x18, CLEAR_INTERRUPT = 0x1C;

constexpr u64 low_half(u64 v) { return v & 0xFFFF'FFFFull; }
constexpr u64 high_half(u64 v) { return v >> 32; }
constexpr u64 with_low(u64 v, u64 low) { return (v & ~0xFFFF'FFFFull) | low_half(low); }
constexpr u64 with_high(u64 v, u64 high) { return (high << 32) | low_half(v); }
}  // namespace

u64 GoldfishRtc::host_realtime_ns() {
    timespec ts{};
    ::clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<u64>(ts.tv_sec) * 1'000'000'000ull + static_cast<u64>(ts.tv_nsec);
}

GoldfishRtc::GoldfishRtc(IrqLine irq, u64 mmio_base, WallClock clock)
    : irq_(std::move(irq)), clock_(std::move(clock)), unimplemented_("goldfish-rtc", mmio_base) {
    timer_ = std::thread([this] { timer_loop(); });
}

GoldfishRtc::~GoldfishRtc() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    timer_.join();
}

u64 GoldfishRtc::mmio_read(u64 offset, unsigned size) {
    if (size != 4 || offset > CLEAR_INTERRUPT || offset % 4 != 0) {
        unimplemented_.note(offset, size, false);
        return 0;
    }
    std::lock_guard<std::mutex> lock(mutex_);
    fire_if_due_locked();
    switch (offset) {
        case TIME_LOW: {
            const u64 now = guest_now_locked();
            latched_high_ = static_cast<u32>(high_half(now));
            return low_half(now);
        }
        case TIME_HIGH:
            return latched_high_;
        case ALARM_LOW:
            return low_half(alarm_ns_);
        case ALARM_HIGH:
            return high_half(alarm_ns_);
        case IRQ_ENABLED:
            return irq_enabled_ ? 1 : 0;
        case ALARM_STATUS:
            return alarm_armed_ ? 1 : 0;
        default:  // CLEAR_ALARM and CLEAR_INTERRUPT are write-only
            return 0;
    }
}

void GoldfishRtc::mmio_write(u64 offset, unsigned size, u64 value) {
    if (size != 4 || offset > CLEAR_INTERRUPT || offset % 4 != 0) {
        unimplemented_.note(offset, size, true);
        return;
    }
    value = low_half(value);
    std::lock_guard<std::mutex> lock(mutex_);
    switch (offset) {
        case TIME_LOW: {
            // Linux writes TIME_HIGH then TIME_LOW (rtc-goldfish.c set_time);
            // taking the high half from that write, rather than from the clock
            // now, keeps a carry out of the low half between the two writes
            // from moving the new time by 2^32 ns.
            const u64 high = time_high_written_ ? pending_time_high_ : high_half(guest_now_locked());
            time_high_written_ = false;
            set_guest_time_locked(with_high(value, high));
            break;
        }
        case TIME_HIGH:
            // Takes effect at once too, for a guest that only sets the high half.
            pending_time_high_ = static_cast<u32>(value);
            time_high_written_ = true;
            set_guest_time_locked(with_high(guest_now_locked(), value));
            break;
        case ALARM_LOW:
            alarm_ns_ = with_low(alarm_ns_, value);
            arm_alarm_locked();
            break;
        case ALARM_HIGH:
            alarm_ns_ = with_high(alarm_ns_, value);
            break;
        case IRQ_ENABLED:
            irq_enabled_ = value & 1;
            break;
        case CLEAR_ALARM:
            alarm_armed_ = false;
            wake_.notify_all();
            break;
        case CLEAR_INTERRUPT:
            irq_pending_ = false;
            break;
        default:  // ALARM_STATUS is read-only
            break;
    }
    fire_if_due_locked();
    update_irq_locked();
}

u64 GoldfishRtc::guest_now_locked() const { return clock_() + offset_ns_; }

void GoldfishRtc::set_guest_time_locked(u64 t) {
    offset_ns_ = t - clock_();  // modulo 2^64: any guest time is reachable
    wake_.notify_all();         // an armed alarm's distance changed
}

void GoldfishRtc::arm_alarm_locked() {
    alarm_armed_ = true;
    wake_.notify_all();
}

void GoldfishRtc::fire_if_due_locked() {
    if (!alarm_armed_ || guest_now_locked() < alarm_ns_) return;
    // One-shot: the alarm disarms as it fires (ALARM_STATUS reads 0 after).
    alarm_armed_ = false;
    irq_pending_ = true;
    update_irq_locked();
}

void GoldfishRtc::update_irq_locked() {
    const bool level = irq_pending_ && irq_enabled_;
    if (level == irq_level_) return;
    irq_level_ = level;
    if (irq_) irq_(level);
}

void GoldfishRtc::timer_loop() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!stopping_) {
        fire_if_due_locked();
        if (!alarm_armed_) {
            wake_.wait(lock);
            continue;
        }
        // Sleep until the alarm is due on the current clock, but never longer
        // than kRecheckInterval: the wall clock may step meanwhile.
        // Unsigned: the clock may pass the alarm between the two reads (a
        // huge difference, capped, and the next turn fires it).
        const u64 remaining = alarm_ns_ - guest_now_locked();
        const u64 cap = std::chrono::nanoseconds(kRecheckInterval).count();
        wake_.wait_for(lock, std::chrono::nanoseconds(std::min(remaining, cap)));
    }
}
}  // namespace disco::dev
