// The Goldfish RTC's registers as Linux's rtc-goldfish driver uses them.
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "vmm/dev/goldfish_rtc.hpp"

using namespace disco;
using namespace std::chrono_literals;

namespace {
enum Reg : u64 {
    TIME_LOW = 0x00,
    TIME_HIGH = 0x04,
    ALARM_LOW = 0x08,
    ALARM_HIGH = 0x0C,
    IRQ_ENABLED = 0x10,
    CLEAR_ALARM = 0x14,
    ALARM_STATUS = 0x18,
    CLEAR_INTERRUPT = 0x1C
};

/// An RTC on a clock the test sets, with its interrupt edges recorded (the
/// timer thread delivers some of them, hence the lock).
struct Rig {
    std::atomic<u64> now{0};
    std::mutex edges_mutex;
    std::vector<bool> edges_;
    std::unique_ptr<dev::GoldfishRtc> rtc;

    explicit Rig(u64 start, dev::GoldfishRtc::WallClock clock = {}) : now(start) {
        if (!clock) clock = [this] { return now.load(); };
        rtc = std::make_unique<dev::GoldfishRtc>(
            [this](bool level) {
                std::lock_guard<std::mutex> lock(edges_mutex);
                edges_.push_back(level);
            },
            0x1F010000, std::move(clock));
    }
    u32 rd(u64 reg) { return static_cast<u32>(rtc->mmio_read(reg, 4)); }
    void wr(u64 reg, u32 v) { rtc->mmio_write(reg, 4, v); }
    u64 time() {
        const u64 low = rd(TIME_LOW);
        return (u64{rd(TIME_HIGH)} << 32) | low;
    }
    void set_time(u64 t) {  // the driver's order: high, then low
        wr(TIME_HIGH, static_cast<u32>(t >> 32));
        wr(TIME_LOW, static_cast<u32>(t));
    }
    void set_alarm(u64 t) {
        wr(ALARM_HIGH, static_cast<u32>(t >> 32));
        wr(ALARM_LOW, static_cast<u32>(t));
    }
    std::vector<bool> edges() {
        std::lock_guard<std::mutex> lock(edges_mutex);
        return edges_;
    }
    /// Waits (up to 2 s) for the n-th edge; true if it came.
    bool wait_edges(usize n) {
        const auto deadline = std::chrono::steady_clock::now() + 2s;
        while (edges().size() < n) {
            if (std::chrono::steady_clock::now() > deadline) return false;
            std::this_thread::sleep_for(1ms);
        }
        return true;
    }
};

constexpr u64 kSecond = 1'000'000'000ull;
}  // namespace

TEST_CASE("goldfish-rtc: time reads the host's wall clock in nanoseconds", "[rtc]") {
    dev::GoldfishRtc rtc([](bool) {}, 0x1F010000);
    const u64 before = dev::GoldfishRtc::host_realtime_ns();
    const u64 low = rtc.mmio_read(TIME_LOW, 4);
    const u64 t = (rtc.mmio_read(TIME_HIGH, 4) << 32) | low;
    const u64 after = dev::GoldfishRtc::host_realtime_ns();
    CHECK(t >= before);
    CHECK(t <= after);
    CHECK(t > 1'600'000'000ull * kSecond);  // after 2020: a real date, in ns
    CHECK(rtc.name() == "goldfish-rtc");
}

TEST_CASE("goldfish-rtc: reading TIME_LOW latches TIME_HIGH", "[rtc]") {
    Rig r(0x1'FFFF'FFF0ull);
    CHECK(r.rd(TIME_LOW) == 0xFFFF'FFF0u);
    r.now = 0x2'0000'0010ull;  // the low half carries before the driver reads the high half
    CHECK(r.rd(TIME_HIGH) == 1);
    CHECK(r.rd(TIME_HIGH) == 1);
    CHECK(r.rd(TIME_LOW) == 0x10u);
    CHECK(r.rd(TIME_HIGH) == 2);
}

TEST_CASE("goldfish-rtc: setting the time keeps it running from the host clock", "[rtc]") {
    Rig r(1000 * kSecond);
    const u64 guest = 0x0123'4567'89AB'CDEFull;
    r.set_time(guest);
    CHECK(r.time() == guest);
    r.now += 5 * kSecond;
    CHECK(r.time() == guest + 5 * kSecond);

    SECTION("a time before the host's (an offset below zero)") {
        r.set_time(7);
        CHECK(r.time() == 7);
        r.now += 3;
        CHECK(r.time() == 10);
    }
    SECTION("a carry between the TIME_HIGH and TIME_LOW writes does not move the new time") {
        r.set_time(0x5'FFFF'FFFFull);
        r.wr(TIME_HIGH, 9);
        r.now += 10;  // guest time crosses into high half 10 between the two writes
        r.wr(TIME_LOW, 0x100);
        CHECK(r.time() == 0x9'0000'0100ull);
    }
    SECTION("a TIME_LOW write alone keeps the high half") {
        r.wr(TIME_LOW, 0x42);
        CHECK(r.time() == ((guest + 5 * kSecond) & ~0xFFFF'FFFFull) + 0x42);
    }
}

TEST_CASE("goldfish-rtc: an alarm raises the interrupt when the clock reaches it", "[rtc]") {
    Rig r(1000 * kSecond);
    r.wr(IRQ_ENABLED, 1);
    r.set_alarm(1001 * kSecond);
    CHECK(r.rd(ALARM_STATUS) == 1);
    CHECK(r.rd(ALARM_LOW) == static_cast<u32>(1001 * kSecond));
    CHECK(r.rd(ALARM_HIGH) == static_cast<u32>((1001 * kSecond) >> 32));
    std::this_thread::sleep_for(50ms);
    CHECK(r.edges().empty());  // not due yet

    r.now = 1001 * kSecond;  // the timer thread notices within its recheck interval
    REQUIRE(r.wait_edges(1));
    CHECK(r.edges() == std::vector<bool>{true});
    CHECK(r.rd(ALARM_STATUS) == 0);  // one-shot

    r.wr(CLEAR_INTERRUPT, 1);
    CHECK(r.edges() == std::vector<bool>{true, false});
}

TEST_CASE("goldfish-rtc: the alarm fires at its time on a running clock", "[rtc]") {
    const auto epoch = std::chrono::steady_clock::now();
    const u64 base = 2000 * kSecond;
    Rig r(0, [epoch, base] {
        return base + static_cast<u64>(std::chrono::nanoseconds(std::chrono::steady_clock::now() - epoch).count());
    });
    r.wr(IRQ_ENABLED, 1);
    r.set_alarm(base + 60'000'000);  // 60 ms after the epoch
    REQUIRE(r.wait_edges(1));
    const auto fired = std::chrono::steady_clock::now() - epoch;
    CHECK(fired >= 60ms);
    CHECK(r.time() >= base + 60'000'000);
}

TEST_CASE("goldfish-rtc: the line is pending && IRQ_ENABLED", "[rtc]") {
    Rig r(500);
    r.set_alarm(100);  // already past: fires as it is armed
    CHECK(r.rd(ALARM_STATUS) == 0);
    CHECK(r.edges().empty());  // interrupt disabled: pending, line low
    r.wr(IRQ_ENABLED, 1);
    CHECK(r.rd(IRQ_ENABLED) == 1);
    CHECK(r.edges() == std::vector<bool>{true});
    r.wr(IRQ_ENABLED, 0);
    CHECK(r.edges() == std::vector<bool>{true, false});
    r.wr(IRQ_ENABLED, 1);  // still pending
    CHECK(r.edges() == std::vector<bool>{true, false, true});
    r.wr(CLEAR_INTERRUPT, 1);
    CHECK(r.edges() == std::vector<bool>{true, false, true, false});
    r.wr(IRQ_ENABLED, 1);
    CHECK(r.edges().size() == 4);  // nothing pending any more
}

TEST_CASE("goldfish-rtc: CLEAR_ALARM disarms an alarm", "[rtc]") {
    Rig r(1000);
    r.wr(IRQ_ENABLED, 1);
    r.set_alarm(2000);
    CHECK(r.rd(ALARM_STATUS) == 1);
    r.wr(CLEAR_ALARM, 1);
    CHECK(r.rd(ALARM_STATUS) == 0);
    r.now = 3000;
    std::this_thread::sleep_for(dev::GoldfishRtc::kRecheckInterval + 100ms);
    CHECK(r.rd(ALARM_STATUS) == 0);
    CHECK(r.edges().empty());

    r.wr(ALARM_LOW, 4000);  // re-arming takes ALARM_LOW alone, keeping ALARM_HIGH
    CHECK(r.rd(ALARM_STATUS) == 1);
    r.now = 4000;
    REQUIRE(r.wait_edges(1));
}

TEST_CASE("goldfish-rtc: setting the time forward makes an armed alarm due", "[rtc]") {
    Rig r(1000 * kSecond);
    r.wr(IRQ_ENABLED, 1);
    r.set_alarm(5000 * kSecond);
    r.set_time(6000 * kSecond);
    CHECK(r.edges() == std::vector<bool>{true});
    CHECK(r.rd(ALARM_STATUS) == 0);
}

TEST_CASE("goldfish-rtc: other widths and offsets read 0 and change nothing", "[rtc]") {
    Rig r(1000);
    r.rtc->mmio_write(ALARM_LOW, 1, 5);
    r.rtc->mmio_write(IRQ_ENABLED, 8, 1);
    r.rtc->mmio_write(0x20, 4, 1);
    r.rtc->mmio_write(0x0A, 4, 1);
    CHECK(r.rd(ALARM_STATUS) == 0);
    CHECK(r.rd(IRQ_ENABLED) == 0);
    CHECK(r.rtc->mmio_read(TIME_LOW, 8) == 0);
    CHECK(r.rtc->mmio_read(0xFFC, 4) == 0);
    CHECK(r.rd(CLEAR_ALARM) == 0);
    CHECK(r.rd(CLEAR_INTERRUPT) == 0);
}

TEST_CASE("goldfish-rtc: destruction with an alarm armed ends the timer thread at once", "[rtc]") {
    const auto start = std::chrono::steady_clock::now();
    {
        Rig r(0);
        r.set_alarm(~0ull);  // the far future
        std::this_thread::sleep_for(10ms);
    }
    CHECK(std::chrono::steady_clock::now() - start < 150ms);
}
