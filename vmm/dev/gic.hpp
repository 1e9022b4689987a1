// The MIPS Global Interrupt Controller as Linux 6.1's irq-mips-gic and
// mips-gic-timer drive it on a CM2 system (guest-board.md §4): 64 shared
// interrupts, 7 local interrupts per VP, a 64-bit shared counter with a
// per-VP COMPARE timer, and the user-visible counter page the vDSO maps.
//
// Register map (offsets in the 128 KiB window; every register is a 32-bit
// word, 64-bit ones are two words with the high word at +4):
//   Shared section 0x00000-0x07FFF
//     0x0000 SH_CONFIG      COUNTSTOP(28) RW; COUNTBITS(27:24)=8 (64-bit
//                           counter); NUMINTERRUPTS(23:16)=7 (64 lines);
//                           PVPS(6:0)=VPs-1
//     0x0010/4 SH_COUNTER   lo/hi, RW
//     0x0100 POL, 0x0180 TRIG, 0x0200 DUAL   one bit per line, RW
//     0x0280 WEDGE (W)      bit 31 set: raise line's edge latch; clear: ack it
//     0x0300 RMASK (W), 0x0380 SMASK (W)     write 1s to clear / set mask bits
//     0x0400 MASK (R), 0x0480 PEND (R)       PEND is raw, not masked
//     0x0500 + 4n MAPn_PIN  MAP_TO_PIN(31), NMI(30), YQ(29), pin(5:0)
//     0x2000 + 0x20n MAPn_VP  bitmap of VPs in the first word
//   VP-local section 0x08000 (the accessing VP), VP-other 0x0C000 (the VP the
//   accessing VP's Vx_OTHER names), same layout:
//     0x00 CTL (EIC and the *_ROUTABLE bits read 0), 0x04 PEND, 0x08 MASK,
//     0x0C RMASK (W), 0x10 SMASK (W), 0x40-0x58 WD/COMPARE/TIMER/FDC/PERFCTR/
//     SWINT0/SWINT1 MAP, 0x80 OTHER (VPNUM 5:0), 0x88 IDENT, 0xA0/4 COMPARE
//   User section 0x10000: 0x10000/4 counter lo/hi, read-only.
//
// Only CPU pin 0 (Cause.IP2) is wired: cpu_line(vp, level) reports it, and an
// interrupt mapped to another pin, NMI or YQ pends but asserts nothing.
// WEDGE acts on the edge latch, which only edge-triggered lines (TRIG=1)
// report; a level line's PEND always follows its input and POL.
//
// Threads: vCPU threads access registers while device threads call
// set_input() and the GIC's own timer thread fires COMPAREs; one mutex guards
// the registers. cpu_line is called only when a VP's level changes, from any
// of those threads, never with that mutex held; calls are serialised by a
// second, delivery-only mutex so the last level reported is always the
// current one. cpu_line must therefore not call back into the Gic.
#pragma once
#include <array>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "vmm/dev/gic_counter.hpp"
#include "vmm/dev/unimplemented.hpp"
#include "vmm/mem/mmio.hpp"

namespace disco::dev {

class Gic final : public MmioDevice {
public:
    /// The level of a VP's CPU interrupt pin 0 (Cause.IP2) changed.
    using CpuLine = std::function<void(unsigned vp, bool level)>;
    /// Host monotonic time in nanoseconds (tests inject their own).
    using Clock = std::function<u64()>;

    static constexpr u64 kWindowSize = 0x20000;
    static constexpr unsigned kSharedInterrupts = 64;
    static constexpr unsigned kLocalInterrupts = 7;
    static constexpr unsigned kMaxVps = 32;  // VP bitmaps use one word

    /// n_vps is clamped to 1..kMaxVps. now_ns defaults to CLOCK_MONOTONIC.
    Gic(unsigned n_vps, u64 counter_hz, CpuLine cpu_line, u64 mmio_base, Clock now_ns = {});
    ~Gic() override;
    Gic(const Gic&) = delete;
    Gic& operator=(const Gic&) = delete;

    u64 mmio_read(u64 offset, unsigned size) override;
    void mmio_write(u64 offset, unsigned size, u64 value) override;
    std::string name() const override { return "mips-gic"; }
    std::string describe_state() const override;

    /// Drives shared interrupt input irq (any thread); out-of-range irqs are ignored.
    void set_input(unsigned irq, bool level);
    /// Fires every COMPARE the counter has reached by now. The timer thread
    /// does this at each deadline; a test that moves an injected clock calls it.
    void update_timers();

private:
    struct Vp {
        u32 mask = 0;                           // Vx_MASK, one bit per local interrupt
        std::array<u32, kLocalInterrupts> map;  // Vx_*_MAP in register order (0x40 + 4i)
        u32 other = 0;                          // Vx_OTHER.VPNUM
        u64 compare = 0;
        bool compare_armed = false;    // COMPARE is ahead of the counter and will fire
        bool compare_pending = false;  // Vx_PEND.COMPARE
    };

    u64 now() const { return clock_(); }
    u32 read_word_locked(u64 offset, u64 now_ns);
    void write_word_locked(u64 offset, u32 value, u64 now_ns);
    u32 read_shared_locked(u64 offset, u64 now_ns);
    void write_shared_locked(u64 offset, u32 value, u64 now_ns);
    u32 read_local_locked(unsigned vp, u64 offset);
    void write_local_locked(unsigned vp, u64 offset, u32 value, u64 now_ns);
    /// The VP a local-section offset refers to; n_vps_ when there is none.
    unsigned section_vp_locked(u64 offset) const;

    u64 pending_locked() const;
    bool vp_level_locked(unsigned vp) const;
    void write_compare_locked(Vp& vp, u64 offset, u32 value, u64 now_ns);
    void rearm_compares_locked(u64 now_ns);
    bool expire_compares_locked(u64 now_ns);
    void deliver_lines();
    void timer_main();

    const unsigned n_vps_;
    const CpuLine cpu_line_;
    const Clock clock_;
    UnimplementedRegisterLog unimplemented_;

    mutable std::mutex mutex_;  // the registers below
    GicCounter counter_;
    u64 pol_ = ~u64{0};  // Linux programs every line; active-high keeps idle lines quiet until then
    u64 trig_ = 0, dual_ = 0, mask_ = 0;
    u64 input_ = 0;       // current input levels
    u64 edge_latch_ = 0;  // edge-detected (or WEDGE-raised) pending bits
    std::array<u32, kSharedInterrupts> map_pin_;
    std::array<u32, kSharedInterrupts> map_vp_;
    std::vector<Vp> vps_;

    mutable std::mutex line_mutex_;  // serialises cpu_line calls
    std::vector<bool> reported_;     // last level given to cpu_line, under line_mutex_

    std::condition_variable timer_cv_;  // with mutex_: a deadline moved, or stopping
    bool deadlines_changed_ = false;    // set by COMPARE/counter/COUNTSTOP writes
    bool stopping_ = false;
    std::thread timer_;
};
}  // namespace disco::dev
