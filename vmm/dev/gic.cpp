#include "vmm/dev/gic.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <utility>

#include "vmm/dev/reg32_access.hpp"

namespace disco::dev {
namespace {
// Section bases (guest-board.md §4.1).
constexpr u64 kLocalBase = 0x08000, kOtherBase = 0x0C000, kUserBase = 0x10000, kSectionSize = 0x4000;

// Shared section (guest-board.md §4.2; Linux arch/mips/include/asm/mips-gic.h).
constexpr u64 SH_CONFIG = 0x0000, SH_COUNTER_LO = 0x0010, SH_COUNTER_HI = 0x0014;
constexpr u64 SH_POL = 0x0100, SH_TRIG = 0x0180, SH_DUAL = 0x0200, SH_WEDGE = 0x0280, SH_RMASK = 0x0300,
              SH_SMASK = 0x0380, SH_MASK = 0x0400, SH_PEND = 0x0480, kBitmapSpan = 0x80;
constexpr u64 SH_MAP_PIN = 0x0500, SH_MAP_VP = 0x2000, kMapVpStride = 0x20;
constexpr u32 CONFIG_COUNTSTOP = 1u << 28;
constexpr u32 CONFIG_COUNTBITS_64 = 8u << 24;  // width = 32 + 4 * COUNTBITS
constexpr u32 CONFIG_NUMINTERRUPTS = (Gic::kSharedInterrupts / 8 - 1) << 16;
constexpr u32 WEDGE_RW = 1u << 31, WEDGE_INTR = 0xFF;

// MAPn_PIN and Vx_*_MAP: MAP_TO_PIN(31), MAP_TO_NMI(30), MAP_TO_YQ(29), MAP(5:0).
constexpr u32 MAP_TO_PIN = 1u << 31, MAP_WRITABLE = 0xE000'003F, MAP_ROUTE_BITS = MAP_TO_PIN | 0x3F;
constexpr u32 kMapReset = MAP_TO_PIN;  // pin 0: secondaries rely on it for COMPARE (guest-board.md §4.3)
/// The interrupt drives CPU pin 0, the only one wired to the vCPU.
constexpr bool routes_to_pin0(u32 map) { return (map & MAP_ROUTE_BITS) == MAP_TO_PIN; }

// Local sections.
constexpr u64 VX_CTL = 0x00, VX_PEND = 0x04, VX_MASK = 0x08, VX_RMASK = 0x0C, VX_SMASK = 0x10, VX_MAP = 0x40,
              VX_OTHER = 0x80, VX_IDENT = 0x88, VX_COMPARE_LO = 0xA0, VX_COMPARE_HI = 0xA4;
constexpr u32 kLocalMaskBits = (1u << Gic::kLocalInterrupts) - 1;
constexpr u32 VPNUM = 0x3F;
constexpr unsigned LOCAL_COMPARE = 1;  // Vx_PEND/MASK bit of the GIC timer
/// Index of a local interrupt's Vx_*_MAP register: the map registers list FDC
/// (pending bit 6) right after TIMER, moving PERFCTR/SWINT0/SWINT1 up by one.
constexpr unsigned map_index(unsigned local_bit) {
    constexpr unsigned kIndex[Gic::kLocalInterrupts] = {0, 1, 2, 4, 5, 6, 3};
    return kIndex[local_bit];
}

constexpr u64 kUserCounterLo = 0x10000, kUserCounterHi = 0x10004;

// The timer thread re-checks at least this often, so that a clock that is
// not the host's (tests) or a lost wake-up never stalls a timer for long.
constexpr u64 kMaxTimerSleepNs = 1'000'000'000;

u64 host_monotonic_ns() {
    return static_cast<u64>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
            .count());
}

u32 bitmap_word(u64 bits, u64 word) { return word < 2 ? static_cast<u32>(bits >> (32 * word)) : 0; }
void set_bitmap_word(u64& bits, u64 word, u32 v) {
    if (word < 2) bits = reg32::with_word(bits, word * 4, v);
}
}  // namespace

Gic::Gic(unsigned n_vps, u64 counter_hz, CpuLine cpu_line, u64 mmio_base, Clock now_ns)
    : n_vps_(std::clamp(n_vps, 1u, kMaxVps)),
      cpu_line_(std::move(cpu_line)),
      clock_(now_ns ? std::move(now_ns) : Clock(host_monotonic_ns)),
      unimplemented_("mips-gic", mmio_base),
      counter_(counter_hz, clock_()),
      vps_(n_vps_),
      reported_(n_vps_, false) {
    map_pin_.fill(kMapReset);
    map_vp_.fill(1);  // VP 0 until the kernel routes the line
    for (Vp& vp : vps_) vp.map.fill(kMapReset);
    timer_ = std::thread([this] { timer_main(); });
}

Gic::~Gic() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stopping_ = true;
    }
    timer_cv_.notify_all();
    timer_.join();
}

u64 Gic::mmio_read(u64 offset, unsigned size) {
    bool ok = false;
    bool fired = false;
    u64 v;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        const u64 t = now();
        // A PEND read must not miss a COMPARE the timer thread has yet to see.
        fired = expire_compares_locked(t);
        v = reg32::read(offset, size, ok, [&](u64 off) { return read_word_locked(off, t); });
    }
    if (!ok) unimplemented_.note(offset, size, false);
    if (fired) deliver_lines();
    return v;
}

void Gic::mmio_write(u64 offset, unsigned size, u64 value) {
    bool ok, timer_moved;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        const u64 t = now();
        ok = reg32::write(offset, size, value, [&](u64 off, u32 v) { write_word_locked(off, v, t); });
        timer_moved = std::exchange(deadlines_changed_, false);
    }
    if (!ok) unimplemented_.note(offset, size, true);
    if (timer_moved) timer_cv_.notify_one();  // let the timer thread re-plan its sleep
    deliver_lines();
}

void Gic::set_input(unsigned irq, bool level) {
    if (irq >= kSharedInterrupts) return;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        const u64 bit = u64{1} << irq;
        if (((input_ & bit) != 0) == level) return;
        input_ ^= bit;
        // Edge detection (TRIG=1): the edge POL selects, or either with DUAL.
        const bool wanted_edge = (dual_ & bit) || level == ((pol_ & bit) != 0);
        if ((trig_ & bit) && wanted_edge) edge_latch_ |= bit;
    }
    deliver_lines();
}

void Gic::update_timers() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        expire_compares_locked(now());
    }
    // Deliver even when the timer thread expired the COMPARE first: it may
    // not have reported the line yet, and the caller expects it reported
    // when this returns.
    deliver_lines();
}

u32 Gic::read_word_locked(u64 offset, u64 now_ns) {
    if (offset < kLocalBase) return read_shared_locked(offset, now_ns);
    if (offset < kUserBase) {
        const unsigned vp = section_vp_locked(offset);
        return vp < n_vps_ ? read_local_locked(vp, offset) : 0;
    }
    if (offset == kUserCounterLo || offset == kUserCounterHi) return reg32::word_of(counter_.value(now_ns), offset);
    unimplemented_.note(offset, 4, false);
    return 0;
}

void Gic::write_word_locked(u64 offset, u32 value, u64 now_ns) {
    if (offset < kLocalBase) return write_shared_locked(offset, value, now_ns);
    if (offset < kUserBase) {
        const unsigned vp = section_vp_locked(offset);
        if (vp < n_vps_) write_local_locked(vp, offset, value, now_ns);
        return;
    }
    unimplemented_.note(offset, 4, true);  // the user section is read-only
}

unsigned Gic::section_vp_locked(u64 offset) const {
    const unsigned self = current_vcpu();
    if (self >= n_vps_) return n_vps_;
    return offset < kOtherBase ? self : vps_[self].other;
}

u32 Gic::read_shared_locked(u64 offset, u64 now_ns) {
    const auto in_bitmap = [offset](u64 base) { return offset >= base && offset < base + kBitmapSpan; };
    const u64 word = (offset % kBitmapSpan) / 4;
    if (offset == SH_CONFIG)
        return (counter_.stopped() ? CONFIG_COUNTSTOP : 0) | CONFIG_COUNTBITS_64 | CONFIG_NUMINTERRUPTS | (n_vps_ - 1);
    if (offset == SH_COUNTER_LO || offset == SH_COUNTER_HI) return reg32::word_of(counter_.value(now_ns), offset);
    if (in_bitmap(SH_POL)) return bitmap_word(pol_, word);
    if (in_bitmap(SH_TRIG)) return bitmap_word(trig_, word);
    if (in_bitmap(SH_DUAL)) return bitmap_word(dual_, word);
    if (in_bitmap(SH_MASK)) return bitmap_word(mask_, word);
    if (in_bitmap(SH_PEND)) return bitmap_word(pending_locked(), word);
    // Write-only registers read as 0.
    if (offset == SH_WEDGE || in_bitmap(SH_RMASK) || in_bitmap(SH_SMASK)) return 0;
    if (offset >= SH_MAP_PIN && offset < SH_MAP_PIN + 4 * 256) {
        const u64 n = (offset - SH_MAP_PIN) / 4;
        return n < kSharedInterrupts ? map_pin_[n] : 0;
    }
    if (offset >= SH_MAP_VP && offset < SH_MAP_VP + kMapVpStride * 256) {
        const u64 n = (offset - SH_MAP_VP) / kMapVpStride;
        const bool first_word = offset % kMapVpStride == 0;  // VPs 0-31; the rest of the bitmap is empty
        return n < kSharedInterrupts && first_word ? map_vp_[n] : 0;
    }
    unimplemented_.note(offset, 4, false);
    return 0;
}

void Gic::write_shared_locked(u64 offset, u32 value, u64 now_ns) {
    const auto in_bitmap = [offset](u64 base) { return offset >= base && offset < base + kBitmapSpan; };
    const u64 word = (offset % kBitmapSpan) / 4;
    if (offset == SH_CONFIG) {
        // Only COUNTSTOP is writable; the kernel read-modify-writes the rest.
        counter_.set_stopped(now_ns, value & CONFIG_COUNTSTOP);
        rearm_compares_locked(now_ns);
    } else if (offset == SH_COUNTER_LO || offset == SH_COUNTER_HI) {
        counter_.set(now_ns, reg32::with_word(counter_.value(now_ns), offset, value));
        rearm_compares_locked(now_ns);
    } else if (in_bitmap(SH_POL)) {
        set_bitmap_word(pol_, word, value);
    } else if (in_bitmap(SH_TRIG)) {
        set_bitmap_word(trig_, word, value);
    } else if (in_bitmap(SH_DUAL)) {
        set_bitmap_word(dual_, word, value);
    } else if (offset == SH_WEDGE) {
        const u32 n = value & WEDGE_INTR;
        if (n >= kSharedInterrupts) return;
        if (value & WEDGE_RW)
            edge_latch_ |= u64{1} << n;
        else
            edge_latch_ &= ~(u64{1} << n);
    } else if (in_bitmap(SH_RMASK)) {
        if (word < 2) mask_ &= ~(u64{value} << (32 * word));
    } else if (in_bitmap(SH_SMASK)) {
        if (word < 2) mask_ |= u64{value} << (32 * word);
    } else if (in_bitmap(SH_MASK) || in_bitmap(SH_PEND)) {
        // read-only
    } else if (offset >= SH_MAP_PIN && offset < SH_MAP_PIN + 4 * 256) {
        const u64 n = (offset - SH_MAP_PIN) / 4;
        if (n < kSharedInterrupts) map_pin_[n] = value & MAP_WRITABLE;
    } else if (offset >= SH_MAP_VP && offset < SH_MAP_VP + kMapVpStride * 256) {
        const u64 n = (offset - SH_MAP_VP) / kMapVpStride;
        const u32 vp_bits = n_vps_ == 32 ? ~0u : (1u << n_vps_) - 1;
        if (n < kSharedInterrupts && offset % kMapVpStride == 0) map_vp_[n] = value & vp_bits;
    } else {
        unimplemented_.note(offset, 4, true);
    }
}

u32 Gic::read_local_locked(unsigned vp, u64 offset) {
    const Vp& v = vps_[vp];
    const u64 reg = offset % kSectionSize;
    switch (reg) {
        case VX_CTL:  // no EIC mode, nothing routable: the CP0 timer stays on IP7 (§1.5)
        case VX_RMASK:
        case VX_SMASK:
            return 0;
        case VX_PEND:
            return v.compare_pending ? 1u << LOCAL_COMPARE : 0;
        case VX_MASK:
            return v.mask;
        case VX_OTHER:
            return v.other;
        case VX_IDENT:
            return vp;
        case VX_COMPARE_LO:
        case VX_COMPARE_HI:
            return reg32::word_of(v.compare, reg);
        default:
            if (reg >= VX_MAP && reg < VX_MAP + 4 * kLocalInterrupts) return v.map[(reg - VX_MAP) / 4];
            unimplemented_.note(offset, 4, false);
            return 0;
    }
}

void Gic::write_local_locked(unsigned vp, u64 offset, u32 value, u64 now_ns) {
    Vp& v = vps_[vp];
    const u64 reg = offset % kSectionSize;
    switch (reg) {
        case VX_CTL:  // EIC is read-only 0: Config3.VEIC=0 (§1.5)
        case VX_PEND:
        case VX_MASK:
        case VX_IDENT:
            return;
        case VX_RMASK:
            v.mask &= ~value;
            return;
        case VX_SMASK:
            v.mask |= value & kLocalMaskBits;
            return;
        case VX_OTHER:
            v.other = value & VPNUM;
            return;
        case VX_COMPARE_LO:
        case VX_COMPARE_HI:
            write_compare_locked(v, reg, value, now_ns);
            return;
        default:
            if (reg >= VX_MAP && reg < VX_MAP + 4 * kLocalInterrupts) {
                v.map[(reg - VX_MAP) / 4] = value & MAP_WRITABLE;
                return;
            }
            unimplemented_.note(offset, 4, true);
    }
}

void Gic::write_compare_locked(Vp& vp, u64 reg, u32 value, u64 now_ns) {
    // Any write acks the timer; it fires again only when the counter next
    // reaches COMPARE, so rewriting a value already passed (the ISR's ack)
    // does not re-fire (guest-board.md §4.3).
    vp.compare = reg32::with_word(vp.compare, reg, value);
    vp.compare_pending = false;
    vp.compare_armed = vp.compare > counter_.value(now_ns);
    deadlines_changed_ = true;
}

void Gic::rearm_compares_locked(u64 now_ns) {
    // The counter jumped (written, or restarted): a COMPARE ahead of it now
    // will be crossed again.
    const u64 c = counter_.value(now_ns);
    for (Vp& vp : vps_)
        if (vp.compare > c) vp.compare_armed = true;
    deadlines_changed_ = true;
}

bool Gic::expire_compares_locked(u64 now_ns) {
    const u64 c = counter_.value(now_ns);
    bool fired = false;
    for (Vp& vp : vps_) {
        if (vp.compare_armed && c >= vp.compare) {
            vp.compare_armed = false;
            vp.compare_pending = true;
            fired = true;
        }
    }
    return fired;
}

u64 Gic::pending_locked() const {
    const u64 level_active = ~(input_ ^ pol_);  // input equals the active level POL names
    return (level_active & ~trig_) | (edge_latch_ & trig_);
}

bool Gic::vp_level_locked(unsigned vp) const {
    const Vp& v = vps_[vp];
    const u32 local = (v.compare_pending ? 1u << LOCAL_COMPARE : 0) & v.mask;
    for (u32 bits = local; bits; bits &= bits - 1)
        if (routes_to_pin0(v.map[map_index(std::countr_zero(bits))])) return true;
    for (u64 bits = pending_locked() & mask_; bits; bits &= bits - 1) {
        const unsigned n = std::countr_zero(bits);
        if (routes_to_pin0(map_pin_[n]) && (map_vp_[n] >> vp & 1)) return true;
    }
    return false;
}

void Gic::deliver_lines() {
    // Holding line_mutex_ across "read levels, report changes" means that
    // whichever delivery runs last reads the newest state, so concurrent
    // deliveries cannot leave a stale level reported.
    std::lock_guard<std::mutex> delivery(line_mutex_);
    std::array<bool, kMaxVps> level{};
    {
        std::lock_guard<std::mutex> lock(mutex_);
        for (unsigned vp = 0; vp < n_vps_; ++vp) level[vp] = vp_level_locked(vp);
    }
    for (unsigned vp = 0; vp < n_vps_; ++vp) {
        if (level[vp] == reported_[vp]) continue;
        reported_[vp] = level[vp];
        if (cpu_line_) cpu_line_(vp, level[vp]);
    }
}

std::string Gic::describe_state() const {
    // try_lock: a diagnostic of a hung VM must not hang on the lock itself.
    std::unique_lock<std::mutex> delivery(line_mutex_, std::try_to_lock);
    std::unique_lock<std::mutex> lock(mutex_, std::try_to_lock);
    if (!delivery || !lock) return "busy (a GIC lock is held)";
    std::string text = fmt::format("pending={:#x} mask={:#x} edge-latch={:#x} counter={}", pending_locked(), mask_,
                                   edge_latch_, counter_.value(now()));
    for (u64 bits = pending_locked() & mask_; bits; bits &= bits - 1) {
        const unsigned n = std::countr_zero(bits);
        text += fmt::format(" irq{}->vp{:#x}", n, map_vp_[n]);
    }
    for (unsigned vp = 0; vp < n_vps_; ++vp)
        text += fmt::format(" vp{}:{}{}{}", vp, reported_[vp] ? "line-up" : "line-down",
                            vps_[vp].compare_pending ? ",compare-pending" : "",
                            vps_[vp].compare_armed ? fmt::format(",compare@{}", vps_[vp].compare) : "");
    return text;
}

void Gic::timer_main() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!stopping_) {
        const u64 t = now();
        if (expire_compares_locked(t)) {
            lock.unlock();
            deliver_lines();
            lock.lock();
            continue;
        }
        u64 sleep_ns = kMaxTimerSleepNs;
        for (const Vp& vp : vps_) {
            if (!vp.compare_armed) continue;
            if (const auto at = counter_.when_reaches(t, vp.compare)) sleep_ns = std::min(sleep_ns, *at - t);
        }
        // Woken early by a register write or by stopping; the loop re-checks.
        timer_cv_.wait_for(lock, std::chrono::nanoseconds(std::max<u64>(sleep_ns, 1)));
    }
}
}  // namespace disco::dev
