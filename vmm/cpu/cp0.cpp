// CP0 register access, exception entry, interrupts and the Count/Compare
// timer (MD00091 chapters 6 and 9).
#include <time.h>

#include <chrono>

#include "vmm/cpu/cpu.hpp"

namespace disco::cpu {
namespace {
constexpr u64 kNsPerCountTick = 10;                         // Count runs at 100 MHz (half of a 200 MHz core clock)
constexpr u64 kEntryLoMask = 0x3FFFFFFFull | (3ull << 62);  // PFN(PABITS 36), C, D, V, G, RI, XI
constexpr u64 kHwrEnaMask = 0xFull | (1ull << 29);          // CPUNum, SYNCI_Step, CC, CCRes, ULR
constexpr u64 kPageGrainMask = (1ull << 31) | (1ull << 30) | (1ull << 27);  // RIE, XIE, IEC
}  // namespace

const char* exc_name(Exc e) {
    switch (e) {
        case Exc::Int:
            return "Int";
        case Exc::Mod:
            return "Mod";
        case Exc::TLBL:
            return "TLBL";
        case Exc::TLBS:
            return "TLBS";
        case Exc::AdEL:
            return "AdEL";
        case Exc::AdES:
            return "AdES";
        case Exc::IBE:
            return "IBE";
        case Exc::DBE:
            return "DBE";
        case Exc::Sys:
            return "Sys";
        case Exc::Bp:
            return "Bp";
        case Exc::RI:
            return "RI";
        case Exc::CpU:
            return "CpU";
        case Exc::Ov:
            return "Ov";
        case Exc::Tr:
            return "Tr";
        case Exc::FPE:
            return "FPE";
        case Exc::TLBRI:
            return "TLBRI";
        case Exc::TLBXI:
            return "TLBXI";
        case Exc::MCheck:
            return "MCheck";
    }
    return "?";
}

u64 Cpu::now_ns() const {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<u64>(ts.tv_sec) * 1000000000ull + static_cast<u64>(ts.tv_nsec);
}

u32 Cpu::read_count() const { return static_cast<u32>(now_ns() / kNsPerCountTick + count_offset_ticks); }

void Cpu::rearm_timer() {
    const u64 now = now_ns();
    const u32 count = static_cast<u32>(now / kNsPerCountTick + count_offset_ticks);
    u64 ticks = static_cast<u32>(static_cast<u32>(cp0.compare) - count);
    if (ticks == 0) ticks = 1ull << 32;
    timer_deadline_ns_ = now + ticks * kNsPerCountTick;
}

void Cpu::check_timer(u64 now) {
    if (now < timer_deadline_ns_) return;
    // Count reached Compare: raise the timer interrupt (Cause.TI, routed to
    // IP7 by IntCtl.IPTI) and wait for the next wrap of Count.
    cp0.cause |= cause::TI;
    const u64 period = (1ull << 32) * kNsPerCountTick;
    timer_deadline_ns_ += ((now - timer_deadline_ns_) / period + 1) * period;
}

u64 Cpu::cause_ip() const {
    u64 ip = (cp0.cause & cause::IP_SW) | irq_lines_.load(std::memory_order_acquire);
    if (cp0.cause & cause::TI) ip |= 1u << (cause::IP_SHIFT + 7);
    return ip;
}

bool Cpu::interrupt_pending() const {
    const u64 st = cp0.status;
    if ((st & (status::IE | status::EXL | status::ERL)) != status::IE) return false;
    return (cause_ip() & st & status::IM) != 0;
}

void Cpu::take_interrupt() { raise_at(pc, false, Exc::Int, 0, false, false); }

void Cpu::set_irq_line(unsigned ip, bool level) {
    const u32 bit = 1u << (cause::IP_SHIFT + ip);
    if (level)
        irq_lines_.fetch_or(bit, std::memory_order_acq_rel);
    else
        irq_lines_.fetch_and(~bit, std::memory_order_acq_rel);
    kick();
}

void Cpu::kick() {
    kicks_.fetch_add(1, std::memory_order_acq_rel);
    { std::lock_guard<std::mutex> lock(wait_mutex_); }
    wait_cv_.notify_all();
}

void Cpu::wait_for_interrupt() {
    // WAIT ends when an interrupt is pending and unmasked by IM, whatever IE
    // says (MD00087 WAIT); the host thread sleeps until then or the next timer.
    for (;;) {
        const u64 seen = kicks_.load(std::memory_order_acquire);
        if (bus_.stop->load(std::memory_order_acquire)) return;
        if (pause_requested()) {
            // Parked inside WAIT: after the pause it goes on waiting.
            if (!park()) return;
            continue;
        }
        const u64 now = now_ns();
        check_timer(now);
        poll_report("waiting (WAIT)");
        poll_home();
        if (cause_ip() & cp0.status & status::IM) return;
        if (power_request_.load(std::memory_order_acquire) != kNoPowerRequest) return;
        if (!(cp0.status & status::IM) && bus_.halted) {
            bus_.halted(index_);
            if (bus_.stop->load(std::memory_order_acquire)) return;
        }
        // A vCPU that mostly waits may not start a new slice for a long time:
        // publish what it retired before it sleeps, so statistics stay current.
        retired_published_.store(retired(), std::memory_order_relaxed);
        enter_quiescent();
        {
            std::unique_lock<std::mutex> lock(wait_mutex_);
            const auto deadline = std::chrono::steady_clock::time_point(
                std::chrono::nanoseconds(std::min<u64>(timer_deadline_ns_, now + 1000000000ull)));
            wait_cv_.wait_until(lock, deadline, [&] { return kicks_.load(std::memory_order_acquire) != seen; });
        }
        leave_quiescent();
    }
}

// ---- Exceptions (MD00091 §6.2, "General Exception Processing") -------------
const Decoded* Cpu::raise(const Decoded* d, Exc e, u64 badvaddr, bool has_badvaddr) {
    u64 epc = pc_of(d);
    if (in_delay) epc -= 4;
    raise_at(epc, in_delay, e, badvaddr, has_badvaddr, false);
    return nullptr;
}

const Decoded* Cpu::raise_cpu_unusable(const Decoded* d, unsigned unit) {
    cp0.cause = (cp0.cause & ~cause::CE) | (static_cast<u64>(unit) << cause::CE_SHIFT);
    return raise(d, Exc::CpU);
}

void Cpu::raise_at(u64 epc_pc, bool delay, Exc e, u64 badvaddr, bool has_badvaddr, bool refill) {
    if (has_badvaddr) cp0.badvaddr = badvaddr;
    u64 offset = 0x180;
    if (!(cp0.status & status::EXL)) {
        cp0.epc = epc_pc;
        cp0.cause = delay ? (cp0.cause | cause::BD) : (cp0.cause & ~cause::BD);
        if (refill) {
            // XTLB refill for 64-bit segments that are enabled (QEMU's rule).
            const u64 r = cp0.badvaddr >> 62;
            const bool xtlb = (r != 0 || (cp0.status & status::UX)) && (r != 3 || (cp0.status & status::KX));
            offset = xtlb ? 0x080 : 0x000;
        } else if (e == Exc::Int && (cp0.cause & cause::IV)) {
            offset = 0x200;
        }
    }
    cp0.cause = (cp0.cause & ~cause::EXC_MASK) | (static_cast<u64>(e) << cause::EXC_SHIFT);
    cp0.status |= status::EXL;
    const u64 base = (cp0.status & status::BEV) ? 0xFFFFFFFFBFC00200ull : (cp0.ebase & ~0xFFFull);
    pc = base + offset;
    pending_delay = false;
    update_mode();
}

void Cpu::eret() {
    if (cp0.status & status::ERL) {
        pc = cp0.errorepc;
        cp0.status &= ~status::ERL;
        flush_soft_tlb();  // useg is mapped again
    } else {
        pc = cp0.epc;
        cp0.status &= ~status::EXL;
    }
    llbit = false;  // ERET breaks any LL/SC sequence (MD00087 SC)
    update_mode();
}

void Cpu::update_mode() {
    const u64 st = cp0.status;
    if (st & (status::EXL | status::ERL)) {
        mode_ = 0;
    } else {
        const u64 ksu = (st & status::KSU) >> status::KSU_SHIFT;
        mode_ = ksu == 0 ? 0 : ksu == 1 ? 1 : 2;
    }
    // Kernel mode always has 64-bit operations; Supervisor and User mode need
    // SX / UX (MD00091 ch. 3; Status.PX is not implemented).
    ops64_enabled_ = mode_ == 0 || (st & (mode_ == 1 ? status::SX : status::UX)) != 0;
    stlb = stlb_sets_[mode_];
}

bool Cpu::cp0_usable() const { return mode_ == 0 || (cp0.status & status::CU0); }

// ---- Register access ---------------------------------------------------------
u64 Cpu::read_cp0(unsigned reg) {
    switch (reg) {
        case cp0::Index:
            return cp0.index;
        case cp0::Random: {
            // Between Wired and the last entry (MD00091 §9.5); pseudo-random.
            random_state_ ^= random_state_ << 13;
            random_state_ ^= random_state_ >> 7;
            random_state_ ^= random_state_ << 17;
            const u64 wired = cp0.wired % kTlbEntries;
            return wired + random_state_ % (kTlbEntries - wired);
        }
        case cp0::EntryLo0:
            return cp0.entrylo0;
        case cp0::EntryLo1:
            return cp0.entrylo1;
        case cp0::Context:
            return cp0.context;
        case cp0::UserLocal:
            return cp0.userlocal;
        case cp0::PageMask:
            return cp0.pagemask;
        case cp0::PageGrain:
            return cp0.pagegrain;
        case cp0::Wired:
            return cp0.wired;
        case cp0::HWREna:
            return cp0.hwrena;
        case cp0::BadVAddr:
            return cp0.badvaddr;
        case cp0::Count:
            return read_count();
        case cp0::EntryHi:
            return cp0.entryhi;
        case cp0::Compare:
            return cp0.compare;
        case cp0::Status:
            return cp0.status;
        case cp0::IntCtl:
            return ident::IntCtl;
        case cp0::SRSCtl:
            return 0;
        case cp0::Cause:
            check_timer(now_ns());
            return (cp0.cause & ~cause::IP) | cause_ip();
        case cp0::EPC:
            return cp0.epc;
        case cp0::PRId:
            return ident::PRId;
        case cp0::EBase:
            return (cp0.ebase & ~0x3FFull) | cp0.cpu_num;
        case cp0::CMGCRBase:
            return cp0.cmgcr_base >> 4;
        case cp0::Config0:
            return (cp0.config0 & 7) | (ident::Config0Base & ~7u) | (order_ == ByteOrder::Big ? ident::Config0BE : 0);
        case cp0::Config1:
            return ident::Config1;
        case cp0::Config2:
            return ident::Config2;
        case cp0::Config3:
            return ident::Config3;
        case cp0::Config4:
            return ident::Config4;
        case cp0::Config5:
            return ident::Config5;
        case cp0::Config7:
            return ident::Config7;
        case cp0::LLAddr:
            return cp0.lladdr;
        case cp0::XContext:
            return cp0.xcontext;
        case cp0::ErrorEPC:
            return cp0.errorepc;
        default:
            if (reg >= cp0::KScratch2 && reg <= cp0::KScratch7) return cp0.kscratch[reg - cp0_reg(31, 0)];
            return 0;  // unimplemented registers read as zero
    }
}

void Cpu::write_cp0(unsigned reg, u64 v) {
    switch (reg) {
        case cp0::Index:
            cp0.index = v % kTlbEntries;
            break;
        case cp0::EntryLo0:
            cp0.entrylo0 = v & kEntryLoMask;
            break;
        case cp0::EntryLo1:
            cp0.entrylo1 = v & kEntryLoMask;
            break;
        case cp0::Context:
            cp0.context = (cp0.context & 0x7FFFFFull) | (v & ~0x7FFFFFull);
            break;
        case cp0::UserLocal:
            cp0.userlocal = v;
            break;
        case cp0::PageMask:
            cp0.pagemask = v & 0x1FFFE000ull;
            break;
        case cp0::PageGrain:
            cp0.pagegrain = v & kPageGrainMask;
            flush_soft_tlb();
            break;
        case cp0::Wired:
            cp0.wired = v % kTlbEntries;
            break;
        case cp0::HWREna:
            cp0.hwrena = v & kHwrEnaMask;
            break;
        case cp0::Count:
            count_offset_ticks = static_cast<u32>(v) - now_ns() / kNsPerCountTick;
            rearm_timer();
            break;
        case cp0::EntryHi: {
            const u64 mask = (3ull << 62) | (((1ull << kSegBits) - 1) & ~0x1FFFull) | 0xFF;
            const u64 old = cp0.entryhi;
            cp0.entryhi = v & mask;
            if ((old ^ cp0.entryhi) & 0xFF) flush_soft_tlb();  // the soft TLB holds one ASID's view
            break;
        }
        case cp0::Compare:
            cp0.compare = static_cast<u32>(v);
            cp0.cause &= ~cause::TI;  // writing Compare acknowledges the timer (MD00091 §9.22)
            rearm_timer();
            break;
        case cp0::Status: {
            const u64 old = cp0.status;
            cp0.status = (old & ~status::kWritable) | (v & status::kWritable);
            fpu.fr = (cp0.status & status::FR) != 0;
            if ((old ^ cp0.status) & (status::KX | status::SX | status::UX | status::ERL)) flush_soft_tlb();
            update_mode();
            break;
        }
        case cp0::Cause: {
            const u64 writable = cause::IP_SW | cause::IV | (1ull << 27);  // IP1..0, IV, DC
            cp0.cause = (cp0.cause & ~writable) | (v & writable);
            break;
        }
        case cp0::EPC:
            cp0.epc = v;
            break;
        case cp0::EBase:
            cp0.ebase = 0xFFFFFFFF80000000ull | (v & 0x3FFFF000ull);
            break;
        case cp0::Config0:
            cp0.config0 = (cp0.config0 & ~7ull) | (v & 7);
            break;
        case cp0::XContext: {
            const u64 ptebase = ~0ull << (kSegBits - 7);
            cp0.xcontext = (cp0.xcontext & ~ptebase) | (v & ptebase);
            break;
        }
        case cp0::ErrorEPC:
            cp0.errorepc = v;
            break;
        default:
            if (reg >= cp0::KScratch2 && reg <= cp0::KScratch7) cp0.kscratch[reg - cp0_reg(31, 0)] = v;
            // Read-only and unimplemented registers ignore writes.
            break;
    }
}
}  // namespace disco::cpu
