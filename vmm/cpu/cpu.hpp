// One MIPS64 Release 2 virtual CPU: architectural state, the software MMU
// (architected JTLB + per-vCPU soft TLB) and the pre-decoded interpreter's
// run loop. Per-VM things (RAM, MMIO bus, code watch, stop flag) come in
// through CpuBus; the Cpu owns nothing shared.
//
// Thread model: a Cpu is driven by exactly one host thread (its vCPU thread).
// Other threads touch only the atomics marked "any thread" (interrupt lines,
// kick), following Firecracker's written thread model.
#pragma once
#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "vmm/cpu/cp0.hpp"
#include "vmm/cpu/exception.hpp"
#include "vmm/cpu/fpu/fpu.hpp"
#include "vmm/mem/access_counters.hpp"
#include "vmm/mem/code_watch.hpp"
#include "vmm/mem/endian.hpp"
#include "vmm/mem/guest_ram.hpp"
#include "vmm/mem/mmio.hpp"
#include "vmm/mem/shootdown.hpp"

namespace disco::cpu {

class Cpu;
struct Decoded;
/// Executes one pre-decoded instruction and returns the next one to run on
/// the same code page, or nullptr after setting pc (jump off the page,
/// exception, or a change that the run loop must look at).
using Handler = const Decoded* (*)(Cpu&, const Decoded*);

/// One pre-decoded instruction. Register fields are already remapped: a write
/// to $zero goes to the sink register 32, so handlers never test for it.
struct Decoded {
    Handler fn;
    u32 raw;
    u8 rs, rt, rd, sa;
    i64 imm;  // sign- or zero-extended immediate, branch offset, or bit-field mask
};

constexpr unsigned kSlotsPerPage = kPageSize / 4;

/// The decoded instructions of one guest-physical page, decoded lazily slot by
/// slot. The extra last slot is a sentinel that leaves the page.
struct CodePage {
    u64 ppage = 0;
    u32 generation = 0;
    bool ops64 = true;  // decoded for a mode with 64-bit operations enabled (run_loop.cpp code_page())
    const u8* host = nullptr;
    Decoded insns[kSlotsPerPage + 1];
};

/// Soft-TLB entry: guest-virtual page -> host address. A tag is the page's
/// virtual address (low 12 bits clear) or kNoTag; comparing it with
/// (va & (~0xFFF | (size-1))) checks page and alignment in one compare.
struct SoftTlbEntry {
    u64 read_tag, write_tag, fetch_tag;
    uintptr_t addend;  // host = va + addend
    u64 ppage;
};
constexpr u64 kNoTag = ~0ull;
constexpr unsigned kSoftTlbSize = 256;

/// One JTLB entry (MD00091 §4.6): a pair of pages selected by the bit above the page size.
struct TlbEntry {
    u64 hi = 0;        // EntryHi: R, VPN2, ASID (as written)
    u64 pagemask = 0;  // PageMask as written
    u64 lo[2] = {};    // EntryLo0/1 as written, G folded into both
    bool global() const { return lo[0] & lo[1] & 1; }
    u64 vpn_mask() const { return ~(pagemask | 0x1FFFull) & (((1ull << kSegBits) - 1) | (3ull << 62)); }
};

/// What a vCPU reaches of its VM (DESIGN.md: per-VM state hangs off the Vm).
struct CpuBus {
    GuestRam* ram = nullptr;
    MmioBus* mmio = nullptr;
    CodeWatch* code = nullptr;
    const std::atomic<bool>* stop = nullptr;        // set when the VM must stop
    std::function<void(const std::string&)> fatal;  // guest did something the VM cannot go on from
    /// The vCPU executed WAIT with every interrupt masked in Status.IM: nothing
    /// can ever wake it (Linux's machine_hang after "Power down", guest-board.md
    /// §6.6). The board decides what that means; unset = the vCPU just sleeps.
    std::function<void(unsigned vcpu)> halted;
    /// The VM's soft-TLB shootdown coordinator (null: no page operations).
    Shootdown* shootdown = nullptr;
    /// Which view of guest RAM this vCPU reads: its home NUMA node's (guest_ram.hpp).
    unsigned view = 0;
    /// Machine memory's access counters, told of each soft-TLB fill as a miss
    /// of node `view` (access_counters.hpp); null: not counted. Last, so that
    /// positional initialisers of the fields above stay valid.
    AccessCounters* access_counters = nullptr;
    /// Called on the vCPU's own thread once it has taken a new home node
    /// (request_home), so that the monitor can move the thread there too.
    std::function<void(unsigned node)> rehomed = {};
    /// Set while the VM is paused (the monitor's stop / cont): the vCPU parks
    /// at its next safe point and sleeps until it is cleared, or the VM stops
    /// (null: never paused). The setter kicks the vCPU after either change.
    const std::atomic<bool>* pause = nullptr;
};

/// Why run() returned.
enum class RunExit : u8 { Stopped, BudgetSpent };

class Cpu {
public:
    Cpu(CpuBus bus, ByteOrder order, unsigned cpu_index);
    ~Cpu();
    Cpu(const Cpu&) = delete;
    Cpu& operator=(const Cpu&) = delete;

    // ---- architectural state (hot fields first) ----
    u64 r[33] = {};  // GPRs; r[32] is the sink for writes to $zero
    u64 hi = 0, lo = 0;
    u64 pc = 0;

    // ---- run loop state ----
    const CodePage* cur_page = nullptr;
    u64 cur_vbase = 0;
    SoftTlbEntry* stlb = nullptr;  // the soft TLB of the current mode
    bool in_delay = false;         // executing a branch's delay slot
    bool pending_delay = false;    // a branch at a page's end left its slot to the run loop
    u64 delay_target = 0;          // where execution goes after the delay slot
    u64 slot_insns = 0;            // delay-slot instructions executed inside branch handlers

    Cp0State cp0;
    fpu::FpuState fpu;
    TlbEntry tlb[kTlbEntries];
    bool llbit = false;
    u64 ll_paddr = 0, ll_value = 0;

    /// Runs until the VM's stop flag is set or max_insns instructions retired.
    RunExit run(u64 max_insns);
    /// Instructions retired so far.
    u64 retired() const { return retired_ + slot_insns; }
    /// retired() as of the start of the vCPU's current time slice or its last
    /// sleep in WAIT (exact once run() has returned), for other threads:
    /// statistics while it runs.
    u64 retired_published() const { return retired_published_.load(std::memory_order_relaxed); }

    /// Hardware interrupt lines IP2..IP6 (bit n = Cause.IP[n]); any thread.
    void set_irq_line(unsigned ip, bool level);
    /// Wakes the vCPU from WAIT (any thread).
    void kick();

    // ---- power (vmm/cpu/power.cpp): requested from any thread, applied by
    // the vCPU thread at an instruction boundary, as the CPC's commands act
    // on a core (guest-board.md §3) ----
    /// Cold reset, then run from pc (CPC RESET / PWRUP).
    void request_start(u64 pc);
    /// Stop running guest code until started again (CPC PWRDOWN).
    void request_power_down();
    /// Whether the vCPU runs guest code (false while held in reset).
    bool powered() const { return powered_.load(std::memory_order_acquire); }
    /// Puts a vCPU that has not run yet into the powered-down state (board set-up).
    void hold_in_reset() { powered_.store(false, std::memory_order_release); }
    /// Whether the vCPU sleeps parked because its VM is paused (CpuBus::pause): it
    /// runs no guest code and is quiescent for shootdowns until resumed (any thread).
    bool parked() const { return parked_.load(std::memory_order_acquire); }

    ByteOrder byte_order() const { return order_; }
    const CpuBus& bus() const { return bus_; }
    unsigned index() const { return index_; }
    /// A one-line description of where the CPU is (pc and the instruction there).
    std::string where() const;
    /// Diagnostics (a hung guest): asks the vCPU to describe its state at its
    /// next safe point (any thread). Only the vCPU's own thread reads its
    /// registers; a vCPU that never answers is stuck inside the monitor.
    void request_report();
    /// The latest report and its sequence number (0: none yet); any thread.
    std::pair<u64, std::string> last_report() const;

    // ---- used by the handlers (vmm/cpu/interp/) ----
    u64 pc_of(const Decoded* d) const { return cur_vbase + (static_cast<u64>(d - cur_page->insns) << 2); }
    /// Finishes an instruction that must return to the run loop: pc moves on.
    const Decoded* exit_after(const Decoded* d) {
        pc = in_delay ? delay_target : pc_of(d) + 4;
        return nullptr;
    }
    /// Raises exception e for the instruction d (EPC, BD, vectors: MD00091 §6.2).
    const Decoded* raise(const Decoded* d, Exc e, u64 badvaddr = 0, bool has_badvaddr = false);
    const Decoded* raise_cpu_unusable(const Decoded* d, unsigned unit);
    /// Raises at an explicit pc (instruction fetch faults).
    void raise_at(u64 epc_pc, bool delay, Exc e, u64 badvaddr, bool has_badvaddr, bool refill);

    u64 read_cp0(unsigned reg_sel);
    /// Writes a CP0 register; false when the write changes state the run loop
    /// must re-evaluate (the handler then exits to it).
    void write_cp0(unsigned reg_sel, u64 value);
    bool cp0_usable() const;
    bool kernel_mode() const { return mode_ == 0; }

    /// Memory access slow paths (vmm/cpu/mmu.cpp). They translate, fill the
    /// soft TLB, do MMIO, and raise the architected exception on failure
    /// (returning false / nullptr with pc at the vector).
    template <ByteOrder BO, class T>
    bool load_slow(const Decoded* d, u64 va, T& out, bool unused = false);
    template <ByteOrder BO, class T>
    const Decoded* store_slow(const Decoded* d, u64 va, T value);
    /// Host pointer for an aligned RAM access (LL/SC), or nullptr after raising.
    u8* host_for_atomic(const Decoded* d, u64 va, unsigned size, bool store, u64& paddr);

    // TLB instructions (MD00091 §4.9).
    void tlbp();
    void tlbr();
    void tlbwi();
    void tlbwr();
    void eret();
    /// WAIT: sleeps until an interrupt is pending (or the VM stops).
    void wait_for_interrupt();
    void flush_soft_tlb();
    void update_mode();
    /// Safe point for shootdowns (shootdown.hpp): drops write tags if asked.
    void poll_shootdown() {
        if (bus_.shootdown && bus_.shootdown->epoch() != shootdown_seen_) [[unlikely]]
            acknowledge_shootdown();
    }
    void acknowledge_shootdown();
    void drop_write_tags();
    /// Drops every soft-TLB entry that translates to guest-physical page ppage.
    void drop_guest_page(u64 ppage);
    /// A store to a write-denied page: makes it writable; returns its (new) host page.
    u8* resolve_write(u64 paddr);
    /// Re-homes the vCPU on NUMA node `view` (any thread). At its next safe
    /// point (a run slice, a WAIT wake-up) it reads that node's view of guest
    /// RAM and counts its misses for that node: it flushes its soft TLB, whose
    /// entries show the old view's replicas, then calls bus.rehomed.
    void request_home(unsigned view);
    /// Safe point for request_home.
    void poll_home() {
        if (home_request_.load(std::memory_order_relaxed) != kNoHomeRequest) [[unlikely]]
            apply_home();
    }
    /// Safe point for diagnostics: answers request_report(). `activity` says what the vCPU does.
    void poll_report(const char* activity) {
        if (report_requested_.load(std::memory_order_relaxed)) [[unlikely]]
            make_report(activity);
    }

    u64 count_offset_ticks = 0;

private:
    struct Translation {
        u64 paddr;
        bool cacheable_ram_ok;  // may be cached in the soft TLB
        bool writable;
        bool readable;
        bool executable;
        u64 page_va;  // start of the 4 KiB page
    };
    enum class Fault : u8 { None, AddressError, TlbRefill, TlbInvalid, TlbModified, TlbRi, TlbXi };
    Fault translate(u64 va, Access access, Translation& t);
    void raise_translation_fault(const Decoded* d, u64 va, Access access, Fault f);
    void set_tlb_fault_regs(u64 va);
    void flush_soft_tlb_range(u64 base, u64 vmask);
    /// `store`: the fill is for a store (the access counters' written flag).
    void fill_soft_tlb(u64 va, const Translation& t, u8* host_page, bool store = false);
    bool fetch_page(u64 va);
    CodePage* code_page(u64 ppage, const u8* host);
    void check_timer(u64 now_ns);
    bool interrupt_pending() const;
    u64 cause_ip() const;
    void take_interrupt();
    u64 now_ns() const;
    u32 read_count() const;
    void rearm_timer();
    int tlb_lookup(u64 va) const;
    void write_tlb_entry(unsigned i);

    CpuBus bus_;
    ByteOrder order_;
    unsigned index_;
    u8 mode_ = 0;  // 0 kernel, 1 supervisor, 2 user
    // ---- 64-bit operations enable (MD00091 ch. 3): set by update_mode(); code
    // pages are decoded and cached once per value (run_loop.cpp code_page()) ----
    bool ops64_enabled_ = true;
    u64 retired_ = 0;
    std::atomic<u64> retired_published_{0};  // retired(), stored once a slice (the hot loop counts in retired_)
    SoftTlbEntry stlb_sets_[3][kSoftTlbSize];
    u64 seen_flush_epoch_ = 0;
    u64 timer_deadline_ns_ = ~0ull;
    u64 random_state_ = 0x2545F4914F6CDD1Dull;

    std::unordered_map<u64, std::unique_ptr<CodePage>> code_pages_;
    const Handler* handlers_;  // per byte order

    std::atomic<u32> irq_lines_{0};  // Cause.IP bits 2..6, any thread
    std::mutex wait_mutex_;
    std::condition_variable wait_cv_;
    std::atomic<u64> kicks_{0};
    u64 shootdown_seen_ = 0;
    std::vector<u64> shot_pages_;  // acknowledge_shootdown's scratch: the pages named since shootdown_seen_
    std::atomic<bool> report_requested_{false};
    static constexpr u32 kNoHomeRequest = ~0u;
    std::atomic<u32> home_request_{kNoHomeRequest};
    void apply_home();
    mutable std::mutex report_mutex_;
    std::string report_;
    u64 report_seq_ = 0;
    void make_report(const char* activity);
    /// Sleeps (WAIT, held in reset) are quiescent for shootdowns.
    void enter_quiescent();
    void leave_quiescent();
    /// Quiescent for a scope (shootdown.hpp): around device accesses and waits in slow paths.
    struct Quiescent {
        Cpu& cpu;
        explicit Quiescent(Cpu& c) : cpu(c) { cpu.enter_quiescent(); }
        ~Quiescent() { cpu.leave_quiescent(); }
        Quiescent(const Quiescent&) = delete;
        Quiescent& operator=(const Quiescent&) = delete;
    };

    // Power requests (see request_start): a pending request is a start pc or kPowerDown.
    static constexpr u64 kNoPowerRequest = 1, kPowerDown = 3;  // not valid (aligned) pcs
    std::atomic<u64> power_request_{kNoPowerRequest};
    std::atomic<bool> powered_{true};
    /// Applies a pending power request and sleeps while powered down; false when the VM stops.
    bool service_power();
    void cold_reset(u64 pc);

    // Pause (power.cpp): a paused VM's vCPU parks at a safe point (between
    // run slices, in WAIT, held in reset) and sleeps there.
    bool pause_requested() const { return bus_.pause && bus_.pause->load(std::memory_order_acquire); }
    /// Sleeps, quiescent, while the VM is paused; false when the VM stops meanwhile.
    bool park();
    std::atomic<bool> parked_{false};
};

}  // namespace disco::cpu
