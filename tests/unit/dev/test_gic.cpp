// The MIPS GIC as Linux's irq-mips-gic / mips-gic-timer drive it on CM2
// (guest-board.md §4): IPIs, masking, level and edge inputs, the COMPARE
// timer on an injected clock and on the host clock, the 64-bit counter, the
// VP-local / VP-other sections and the user page.
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <random>
#include <thread>
#include <utility>
#include <vector>

#include "vmm/dev/gic.hpp"

using namespace disco;

namespace {
constexpr u64 SH_CONFIG = 0x0, SH_COUNTER_LO = 0x10, SH_COUNTER_HI = 0x14, SH_POL = 0x100, SH_TRIG = 0x180,
              SH_DUAL = 0x200, SH_WEDGE = 0x280, SH_RMASK = 0x300, SH_SMASK = 0x380, SH_MASK = 0x400, SH_PEND = 0x480;
constexpr u64 map_pin(unsigned n) { return 0x500 + 4 * n; }
constexpr u64 map_vp(unsigned n) { return 0x2000 + 0x20 * n; }
constexpr u64 VL = 0x8000, VO = 0xC000;
constexpr u64 VX_CTL = 0x00, VX_PEND = 0x04, VX_MASK = 0x08, VX_RMASK = 0x0C, VX_SMASK = 0x10, VX_COMPARE_MAP = 0x44,
              VX_OTHER = 0x80, VX_IDENT = 0x88, VX_COMPARE_LO = 0xA0, VX_COMPARE_HI = 0xA4;
constexpr u32 COMPARE_BIT = 1u << 1;
constexpr u64 kHz = 100'000'000;  // 10 ns per tick

/// Names the vCPU making accesses from this (test) thread, and restores vCPU 0 after.
struct AsVcpu {
    explicit AsVcpu(unsigned v) { set_current_vcpu(v); }
    ~AsVcpu() { set_current_vcpu(0); }
};

/// A 4-VP GIC on a clock the test moves, with every cpu_line call recorded.
struct Rig {
    std::atomic<u64> now_ns{1'000'000};
    std::mutex m;
    std::condition_variable changed;
    std::vector<std::pair<unsigned, bool>> calls;
    std::vector<bool> level = std::vector<bool>(4, false);
    dev::Gic gic{4, kHz,
                 [this](unsigned vp, bool l) {
                     std::lock_guard<std::mutex> lock(m);
                     calls.emplace_back(vp, l);
                     level[vp] = l;
                     changed.notify_all();
                 },
                 0x1F400000, [this] { return now_ns.load(); }};

    u32 rd(u64 off) { return static_cast<u32>(gic.mmio_read(off, 4)); }
    void wr(u64 off, u32 v) { gic.mmio_write(off, 4, v); }
    bool line(unsigned vp) {
        std::lock_guard<std::mutex> lock(m);
        return level[vp];
    }
    usize ncalls() {
        std::lock_guard<std::mutex> lock(m);
        return calls.size();
    }
    void advance(u64 ns) {
        now_ns += ns;
        gic.update_timers();
    }
    u64 counter() { return u64{rd(SH_COUNTER_HI)} << 32 | rd(SH_COUNTER_LO); }
    /// What Linux does for a shared line: route to (pin 0, vp) and unmask.
    void route(unsigned n, unsigned vp) {
        wr(map_pin(n), 0x80000000);
        wr(map_vp(n), 1u << vp);
        wr(SH_SMASK + 4 * (n / 32), 1u << (n % 32));
    }
    void set_bit(u64 bitmap, unsigned n, bool v) {
        const u64 off = bitmap + 4 * (n / 32);
        const u32 bit = 1u << (n % 32);
        wr(off, v ? rd(off) | bit : rd(off) & ~bit);
    }
    bool pend(unsigned n) { return rd(SH_PEND + 4 * (n / 32)) >> (n % 32) & 1; }
    /// gic_next_event's store order on CM2: high word, then low.
    void write_compare(u64 section, u64 v) {
        wr(section + VX_COMPARE_HI, static_cast<u32>(v >> 32));
        wr(section + VX_COMPARE_LO, static_cast<u32>(v));
    }
};
}  // namespace

TEST_CASE("gic: SH_CONFIG reports a 64-bit counter, 64 lines and the VP count; only COUNTSTOP is writable", "[gic]") {
    Rig r;
    CHECK(r.rd(SH_CONFIG) == ((8u << 24) | (7u << 16) | 3u));
    r.wr(SH_CONFIG, 0xFFFFFFFF);
    CHECK(r.rd(SH_CONFIG) == ((1u << 28) | (8u << 24) | (7u << 16) | 3u));
    r.wr(SH_CONFIG, r.rd(SH_CONFIG) & ~(1u << 28));  // gic_clocksource_of_init's start
    CHECK(r.rd(SH_CONFIG) == ((8u << 24) | (7u << 16) | 3u));
    CHECK(r.gic.name() == "mips-gic");
}

TEST_CASE("gic: an IPI sent through WEDGE asserts only its target VP's line, and the ack drops it", "[gic]") {
    Rig r;
    const unsigned ipi = 60;  // Linux takes IPIs from the top of the 64 lines
    r.set_bit(SH_TRIG, ipi, true);
    r.set_bit(SH_POL, ipi, true);  // IRQ_TYPE_EDGE_RISING
    r.route(ipi, 2);
    CHECK(r.ncalls() == 0);

    r.wr(SH_WEDGE, 0x80000000 | ipi);
    CHECK(r.pend(ipi));
    CHECK(r.line(2));
    CHECK_FALSE(r.line(0));
    CHECK_FALSE(r.line(1));
    CHECK_FALSE(r.line(3));

    r.wr(SH_WEDGE, 0x80000000 | ipi);  // a second send while pending is not a new level change
    CHECK(r.ncalls() == 1);

    r.wr(SH_WEDGE, ipi);  // gic_ack_irq
    CHECK_FALSE(r.pend(ipi));
    CHECK_FALSE(r.line(2));
    CHECK(r.calls == std::vector<std::pair<unsigned, bool>>{{2, true}, {2, false}});

    // Re-routing a pending IPI moves the line with it (gic_set_affinity).
    r.wr(SH_WEDGE, 0x80000000 | ipi);
    r.wr(map_vp(ipi), 1u << 3);
    CHECK_FALSE(r.line(2));
    CHECK(r.line(3));
    // A pin other than 0, or MAP_TO_PIN clear, does not reach IP2.
    r.wr(map_pin(ipi), 0x80000001);
    CHECK_FALSE(r.line(3));
    r.wr(map_pin(ipi), 0x00000000);
    CHECK_FALSE(r.line(3));
    CHECK(r.pend(ipi));
    r.wr(map_pin(ipi), 0x80000000);
    CHECK(r.line(3));
    CHECK(r.rd(map_pin(ipi)) == 0x80000000);
    CHECK(r.rd(map_vp(ipi)) == 1u << 3);
}

TEST_CASE("gic: SMASK and RMASK set and clear mask bits; MASK reads them back; PEND is raw", "[gic]") {
    Rig r;
    CHECK(r.rd(SH_MASK) == 0);
    CHECK(r.rd(SH_MASK + 4) == 0);
    r.wr(SH_SMASK, 0x00000011);
    r.wr(SH_SMASK + 4, 0x80000001);
    CHECK(r.rd(SH_MASK) == 0x00000011);
    CHECK(r.rd(SH_MASK + 4) == 0x80000001);
    r.wr(SH_RMASK, 0x00000010);
    r.wr(SH_RMASK + 4, 0x00000001);
    CHECK(r.rd(SH_MASK) == 0x00000001);
    CHECK(r.rd(SH_MASK + 4) == 0x80000000);
    CHECK(r.rd(SH_SMASK) == 0);  // write-only registers read 0
    CHECK(r.rd(SH_RMASK) == 0);
    CHECK(r.rd(SH_MASK + 8) == 0);  // beyond 64 lines

    // A masked line pends (PEND is not ANDed with MASK) but asserts nothing.
    r.wr(map_pin(5), 0x80000000);
    r.wr(map_vp(5), 1);
    r.gic.set_input(5, true);
    CHECK(r.pend(5));
    CHECK_FALSE(r.line(0));
    r.wr(SH_SMASK, 1u << 5);
    CHECK(r.line(0));
    r.wr(SH_RMASK, 1u << 5);
    CHECK_FALSE(r.line(0));
    CHECK(r.pend(5));
}

TEST_CASE("gic: level inputs follow the line and POL; edge inputs latch until acked", "[gic]") {
    Rig r;
    // Linux's defaults: every line level, active-high.
    for (unsigned n = 0; n < 64; ++n) r.set_bit(SH_POL, n, true);
    CHECK(r.rd(SH_PEND) == 0);
    CHECK(r.rd(SH_PEND + 4) == 0);
    r.route(0, 1);  // the UART on VP 1

    r.gic.set_input(0, true);
    CHECK(r.pend(0));
    CHECK(r.line(1));
    r.gic.set_input(0, true);  // no change, no call
    CHECK(r.ncalls() == 1);
    r.gic.set_input(0, false);
    CHECK_FALSE(r.pend(0));
    CHECK_FALSE(r.line(1));

    // Active-low: pending while the input is low.
    r.set_bit(SH_POL, 0, false);
    CHECK(r.pend(0));
    CHECK(r.line(1));
    r.gic.set_input(0, true);
    CHECK_FALSE(r.pend(0));
    CHECK_FALSE(r.line(1));
    r.gic.set_input(0, false);

    // A level line ignores WEDGE: its PEND is the input.
    r.set_bit(SH_POL, 7, true);
    r.wr(SH_WEDGE, 0x80000000 | 7);
    CHECK_FALSE(r.pend(7));

    // Falling edge: the rise does nothing, the fall latches, the latch outlives the input.
    r.set_bit(SH_TRIG, 40, true);
    r.set_bit(SH_POL, 40, false);
    r.route(40, 0);
    r.gic.set_input(40, true);
    CHECK_FALSE(r.pend(40));
    r.gic.set_input(40, false);
    CHECK(r.pend(40));
    CHECK(r.line(0));
    r.wr(SH_WEDGE, 40);
    CHECK_FALSE(r.pend(40));
    CHECK_FALSE(r.line(0));

    // DUAL: both edges latch.
    r.set_bit(SH_DUAL, 40, true);
    r.gic.set_input(40, true);
    CHECK(r.pend(40));
    r.wr(SH_WEDGE, 40);
    r.gic.set_input(40, false);
    CHECK(r.pend(40));
    CHECK(r.rd(SH_DUAL + 4) == 1u << 8);
    CHECK(r.rd(SH_TRIG + 4) == 1u << 8);

    // Inputs out of range are ignored.
    r.gic.set_input(64, true);
    r.gic.set_input(~0u, true);
}

TEST_CASE("gic: COMPARE fires when the counter crosses it, any write acks, and a passed value does not re-fire",
          "[gic]") {
    Rig r;
    CHECK(r.rd(VL + VX_COMPARE_MAP) == 0x80000000);  // reset: pin 0, as secondaries rely on
    r.wr(VL + VX_RMASK, ~0u);                        // gic_cpu_startup
    r.wr(VL + VX_SMASK, COMPARE_BIT);
    CHECK(r.rd(VL + VX_MASK) == COMPARE_BIT);

    const u64 deadline = r.counter() + 1000;  // 10 us ahead
    r.write_compare(VL, deadline);
    CHECK(u64{r.rd(VL + VX_COMPARE_HI)} << 32 == (deadline & ~0xFFFFFFFFull));
    CHECK(r.rd(VL + VX_COMPARE_LO) == static_cast<u32>(deadline));
    r.advance(9'990);
    CHECK_FALSE(r.line(0));
    CHECK(r.rd(VL + VX_PEND) == 0);
    r.advance(10);
    CHECK(r.line(0));
    CHECK(r.rd(VL + VX_PEND) == COMPARE_BIT);

    // gic_compare_interrupt acks by rewriting the value it read.
    r.wr(VL + VX_COMPARE_LO, r.rd(VL + VX_COMPARE_LO));
    CHECK_FALSE(r.line(0));
    CHECK(r.rd(VL + VX_PEND) == 0);
    r.advance(1'000'000);
    CHECK_FALSE(r.line(0));

    // Writing only the high word also acks.
    r.write_compare(VL, r.counter() + 100);
    r.advance(1'000);
    CHECK(r.line(0));
    r.wr(VL + VX_COMPARE_HI, r.rd(VL + VX_COMPARE_HI));
    CHECK_FALSE(r.line(0));

    // A masked COMPARE pends without asserting the line.
    r.wr(VL + VX_RMASK, COMPARE_BIT);
    r.write_compare(VL, r.counter() + 100);
    r.advance(1'000);
    CHECK(r.rd(VL + VX_PEND) == COMPARE_BIT);
    CHECK_FALSE(r.line(0));
    r.wr(VL + VX_SMASK, COMPARE_BIT);
    CHECK(r.line(0));
    // Mapped elsewhere than pin 0: nothing on IP2.
    r.wr(VL + VX_COMPARE_MAP, 0x80000005);
    CHECK_FALSE(r.line(0));
    CHECK(r.rd(VL + VX_COMPARE_MAP) == 0x80000005);
}

TEST_CASE("gic: a PEND read sees a COMPARE the timer thread has not handled yet", "[gic]") {
    Rig r;
    r.wr(VL + VX_SMASK, COMPARE_BIT);
    r.write_compare(VL, r.counter() + 10);
    r.now_ns += 1'000;  // no update_timers()
    CHECK(r.rd(VL + VX_PEND) == COMPARE_BIT);
    CHECK(r.line(0));
}

TEST_CASE("gic: the counter is 64 bits, writable, stops with COUNTSTOP, and the user page mirrors it", "[gic]") {
    Rig r;
    CHECK(r.counter() == 0);
    r.advance(1'000);
    CHECK(r.counter() == 100);
    r.advance(50'000'000'000);  // 50 s: past 2^32 ticks at 100 MHz
    const u64 c = r.counter();
    CHECK(c == 5'000'000'100);
    CHECK(r.rd(SH_COUNTER_HI) == 1);
    CHECK(r.rd(0x10004) == 1);
    CHECK(r.rd(0x10000) == static_cast<u32>(c));
    CHECK(r.gic.mmio_read(0x10000, 8) == c);  // a 64-bit load sees both words
    CHECK(r.gic.mmio_read(SH_COUNTER_LO, 8) == c);

    r.wr(SH_CONFIG, 1u << 28);
    r.wr(SH_COUNTER_HI, 0x12345678);
    r.wr(SH_COUNTER_LO, 0x9ABCDEF0);
    r.advance(1'000'000);
    CHECK(r.counter() == 0x123456789ABCDEF0ull);  // frozen while stopped
    r.wr(SH_CONFIG, 0);
    r.advance(1'000);
    CHECK(r.counter() == 0x123456789ABCDEF0ull + 100);
    CHECK((u64{r.rd(0x10004)} << 32 | r.rd(0x10000)) == r.counter());

    r.wr(0x10000, 0);  // the user page is read-only
    CHECK(r.counter() == 0x123456789ABCDEF0ull + 100);
    CHECK(r.rd(0x10008) == 0);
    CHECK(r.rd(0x1FFFC) == 0);
}

TEST_CASE("gic: COUNTSTOP holds the timer back; a counter write re-arms a COMPARE ahead of it", "[gic]") {
    Rig r;
    r.wr(VL + VX_SMASK, COMPARE_BIT);
    r.write_compare(VL, 1'000);
    r.wr(SH_CONFIG, 1u << 28);
    r.advance(1'000'000);
    CHECK_FALSE(r.line(0));
    r.wr(SH_CONFIG, 0);
    r.advance(10'000);
    CHECK(r.line(0));
    r.wr(VL + VX_COMPARE_LO, 1'000);  // ack; the counter is past it now
    r.advance(1'000'000);
    CHECK_FALSE(r.line(0));
    // Moving the counter back below COMPARE makes it crossable again.
    r.wr(SH_COUNTER_HI, 0);
    r.wr(SH_COUNTER_LO, 500);
    CHECK_FALSE(r.line(0));
    r.advance(5'000);
    CHECK(r.line(0));
}

TEST_CASE("gic: the VP-local section answers for the accessing vCPU, VP-other for the one VL_OTHER names", "[gic]") {
    Rig r;
    for (unsigned vp = 0; vp < 4; ++vp) {
        AsVcpu as(vp);
        CHECK(r.rd(VL + VX_IDENT) == vp);
        r.wr(VL + VX_OTHER, (vp + 1) % 4);
    }
    for (unsigned vp = 0; vp < 4; ++vp) {
        AsVcpu as(vp);
        CHECK(r.rd(VL + VX_OTHER) == (vp + 1) % 4);
        CHECK(r.rd(VO + VX_IDENT) == (vp + 1) % 4);
    }
    CHECK(r.rd(VL + VX_CTL) == 0);  // no EIC, nothing routable
    r.wr(VL + VX_CTL, 0x1F);
    CHECK(r.rd(VL + VX_CTL) == 0);

    // CPU 0 programs VP 2's timer through VP-other, as gic_next_event does
    // for another CPU's clockevent, and as gic_unmask_local_irq_all_vpes unmasks.
    r.wr(VL + VX_OTHER, 2);
    r.wr(VO + VX_SMASK, COMPARE_BIT);
    r.write_compare(VO, r.counter() + 50);
    CHECK(r.rd(VL + VX_MASK) == 0);  // VP 0's own state untouched
    {
        AsVcpu as(2);
        CHECK(r.rd(VL + VX_MASK) == COMPARE_BIT);
        CHECK(r.rd(VL + VX_COMPARE_LO) == static_cast<u32>(r.counter() + 50));
    }
    r.advance(1'000);
    CHECK(r.line(2));
    CHECK_FALSE(r.line(0));
    {
        AsVcpu as(2);
        CHECK(r.rd(VL + VX_PEND) == COMPARE_BIT);
        r.wr(VL + VX_COMPARE_LO, r.rd(VL + VX_COMPARE_LO));
    }
    CHECK_FALSE(r.line(2));

    // VL_OTHER naming a VP that does not exist: the section reads 0 and ignores writes.
    r.wr(VL + VX_OTHER, 0x3F);
    CHECK(r.rd(VL + VX_OTHER) == 0x3F);
    CHECK(r.rd(VO + VX_IDENT) == 0);
    r.wr(VO + VX_SMASK, COMPARE_BIT);
    // A vCPU number beyond the GIC: both local sections are empty.
    AsVcpu stranger(17);
    CHECK(r.rd(VL + VX_IDENT) == 0);
    r.wr(VL + VX_SMASK, ~0u);
}

TEST_CASE("gic: with the host clock, the timer thread fires COMPARE while nobody touches the GIC", "[gic]") {
    std::mutex m;
    std::condition_variable cv;
    bool fired = false;
    dev::Gic gic(
        2, kHz,
        [&](unsigned vp, bool level) {
            std::lock_guard<std::mutex> lock(m);
            if (vp == 1 && level) fired = true;
            cv.notify_all();
        },
        0x1F400000);
    {
        AsVcpu as(1);
        gic.mmio_write(VL + VX_SMASK, 4, COMPARE_BIT);
        const u64 now = gic.mmio_read(SH_COUNTER_LO, 8);
        const u64 deadline = now + kHz / 500;  // 2 ms
        gic.mmio_write(VL + VX_COMPARE_HI, 4, deadline >> 32);
        gic.mmio_write(VL + VX_COMPARE_LO, 4, static_cast<u32>(deadline));
    }
    const auto start = std::chrono::steady_clock::now();
    std::unique_lock<std::mutex> lock(m);
    REQUIRE(cv.wait_for(lock, std::chrono::seconds(5), [&] { return fired; }));
    CHECK(std::chrono::steady_clock::now() - start >= std::chrono::microseconds(1500));
}

TEST_CASE("gic: concurrent IPIs, acks and device inputs leave every line at its true level", "[gic]") {
    Rig r;
    // IPI 56 + v targets VP v; device line 3 goes to VP 0.
    for (unsigned v = 0; v < 4; ++v) {
        r.set_bit(SH_TRIG, 56 + v, true);
        r.set_bit(SH_POL, 56 + v, true);
        r.route(56 + v, v);
    }
    r.set_bit(SH_POL, 3, true);
    r.route(3, 0);
    std::vector<std::thread> threads;
    for (unsigned v = 0; v < 4; ++v) {
        threads.emplace_back([&r, v] {
            AsVcpu as(v);
            for (int i = 0; i < 5'000; ++i) {
                r.wr(SH_WEDGE, 0x80000000 | (56 + (v + 1) % 4));  // send to the next VP
                r.wr(SH_WEDGE, 56 + v);                           // ack our own
                (void)r.rd(SH_PEND + 4);
            }
        });
    }
    threads.emplace_back([&r] {
        for (int i = 0; i < 20'000; ++i) r.gic.set_input(3, i & 1);
        r.gic.set_input(3, false);
    });
    for (auto& t : threads) t.join();
    for (unsigned v = 0; v < 4; ++v) r.wr(SH_WEDGE, 56 + v);

    for (unsigned v = 0; v < 4; ++v) CHECK_FALSE(r.line(v));
    // Each VP's reports alternate: a level is reported only when it changes.
    std::vector<int> last(4, 0);
    for (const auto& [vp, level] : r.calls) {
        REQUIRE(vp < 4);
        CHECK(static_cast<int>(level) != last[vp]);
        last[vp] = level;
    }
}

TEST_CASE("gic: wild offsets, widths and values never crash and leave the window sane", "[gic]") {
    Rig r;
    std::mt19937_64 rng(1234);
    const unsigned sizes[] = {1, 2, 3, 4, 5, 8, 16};
    // Mostly the real registers (nudged now and then), sometimes anywhere:
    // every odd offset is logged once, so keep their number modest.
    std::vector<u64> targets = {SH_CONFIG, SH_COUNTER_LO, SH_COUNTER_HI, SH_WEDGE, 0x10000, 0x10004};
    for (u64 b : {SH_POL, SH_TRIG, SH_DUAL, SH_RMASK, SH_SMASK, SH_MASK, SH_PEND})
        targets.insert(targets.end(), {b, b + 4});
    for (unsigned n = 0; n < 64; n += 7) targets.insert(targets.end(), {map_pin(n), map_vp(n)});
    for (u64 sec : {VL, VO})
        for (u64 reg : {VX_CTL, VX_PEND, VX_MASK, VX_RMASK, VX_SMASK, VX_COMPARE_MAP, VX_OTHER, VX_IDENT, VX_COMPARE_LO,
                        VX_COMPARE_HI})
            targets.push_back(sec + reg);
    for (int i = 0; i < 200'000; ++i) {
        u64 off = targets[rng() % targets.size()];
        if (rng() % 8 == 0) off += 2;  // sub-word or unaligned, by size
        if (rng() % 8192 == 0) off = rng() % (dev::Gic::kWindowSize + 0x100);
        const unsigned size = sizes[rng() % std::size(sizes)];
        AsVcpu as(static_cast<unsigned>(rng() % 6));
        if (rng() & 1)
            r.gic.mmio_write(off, size, rng());
        else
            (void)r.gic.mmio_read(off, size);
        if ((i & 1023) == 0) r.gic.set_input(static_cast<unsigned>(rng() % 80), rng() & 1);
    }
    (void)r.gic.mmio_read(~0ull, 4);
    r.gic.mmio_write(~0ull - 3, 4, 1);
    r.advance(1'000'000'000);
    // Still a GIC: the configuration word is intact and sub-word reads slice it.
    const u32 config = r.rd(SH_CONFIG) & ~(1u << 28);
    CHECK(config == ((8u << 24) | (7u << 16) | 3u));
    CHECK(r.gic.mmio_read(SH_CONFIG + 3, 1) == ((r.rd(SH_CONFIG) >> 24) & 0xFF));
    CHECK(r.gic.mmio_read(SH_CONFIG + 2, 2) == (r.rd(SH_CONFIG) >> 16));
    CHECK(r.gic.mmio_read(SH_CONFIG + 1, 2) == 0);  // unaligned
}
