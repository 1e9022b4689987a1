// The Goldfish real-time clock (Android emulator's "goldfish" virtual
// platform, GOLDFISH-VIRTUAL-HARDWARE.TXT; Linux drivers/rtc/rtc-goldfish.c,
// DT compatible "google,goldfish-rtc", guest-board.md §5.4): a 64-bit count of
// nanoseconds since the Unix epoch and one alarm, as 32-bit registers in a
// 0x1000-byte window.
//
// The guest's time is the host's wall clock plus an offset the guest sets by
// writing the time registers, so the host clock keeps it ticking and a guest
// that never sets the time sees the host's date. Reading TIME_LOW latches the
// high half so that the TIME_LOW-then-TIME_HIGH pair the driver reads is one
// consistent 64-bit value.
//
// Alarm: when guest time reaches the armed alarm, the interrupt becomes
// pending; the IRQ line is pending && IRQ_ENABLED, and stays up until the
// guest writes CLEAR_INTERRUPT (a level interrupt, DT type 4). A timer thread
// owned by the device sleeps until the alarm is due; it re-reads the clock at
// least every kRecheckInterval so that a step of the host's wall clock (NTP,
// settimeofday) or of an injected clock is noticed. Without an armed alarm the
// thread sleeps until the guest arms one. The destructor stops and joins it.
//
// Threads: vCPU threads access registers while the timer thread fires alarms;
// one mutex guards the state. The IRQ callback runs under that mutex, only on
// a level change, so edges follow register order; it must not call back into
// the RTC.
#pragma once
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "vmm/dev/unimplemented.hpp"
#include "vmm/mem/mmio.hpp"

namespace disco::dev {

class GoldfishRtc final : public MmioDevice {
public:
    /// The interrupt output: called only when the level changes.
    using IrqLine = std::function<void(bool level)>;
    /// Nanoseconds since the Unix epoch; tests inject a fake one. Called from
    /// vCPU threads and the timer thread, so it must be thread-safe.
    using WallClock = std::function<u64()>;

    static constexpr u64 kWindowSize = 0x1000;
    static constexpr std::chrono::milliseconds kRecheckInterval{200};

    /// The host's CLOCK_REALTIME in nanoseconds since the epoch.
    static u64 host_realtime_ns();

    /// mmio_base is the window's guest-physical base, only for log messages.
    GoldfishRtc(IrqLine irq, u64 mmio_base, WallClock clock = host_realtime_ns);
    ~GoldfishRtc() override;
    GoldfishRtc(const GoldfishRtc&) = delete;
    GoldfishRtc& operator=(const GoldfishRtc&) = delete;

    u64 mmio_read(u64 offset, unsigned size) override;
    void mmio_write(u64 offset, unsigned size, u64 value) override;
    std::string name() const override { return "goldfish-rtc"; }

private:
    u64 guest_now_locked() const;
    void set_guest_time_locked(u64 t);
    void arm_alarm_locked();
    void fire_if_due_locked();
    void update_irq_locked();
    void timer_loop();

    IrqLine irq_;
    WallClock clock_;
    UnimplementedRegisterLog unimplemented_;

    mutable std::mutex mutex_;
    std::condition_variable wake_;  // the timer thread: an alarm was armed or cleared, or stop
    u64 offset_ns_ = 0;             // guest time - host time, modulo 2^64
    u32 latched_high_ = 0;          // TIME_HIGH as of the last TIME_LOW read
    u32 pending_time_high_ = 0;     // a TIME_HIGH write waiting for its TIME_LOW
    bool time_high_written_ = false;
    u64 alarm_ns_ = 0;          // ALARM_HIGH:ALARM_LOW as written
    bool alarm_armed_ = false;  // ALARM_STATUS
    bool irq_pending_ = false;  // the alarm fired and CLEAR_INTERRUPT has not been written
    bool irq_enabled_ = false;  // IRQ_ENABLED
    bool irq_level_ = false;
    bool stopping_ = false;
    std::thread timer_;  // last: it starts once everything above is initialised
};
}  // namespace disco::dev
