// The interpreter's run loop: fetch through the soft TLB, find (or decode)
// the code page, and run pre-decoded handlers until one leaves the page.
#include <fmt/format.h>

#include "vmm/cpu/cpu.hpp"
#include "vmm/cpu/decoder.hpp"
#include "vmm/cpu/interp/handlers.hpp"

namespace disco::cpu {
namespace {
/// Decoded pages kept per vCPU before the cache is dropped wholesale (~25 KiB each).
constexpr usize kMaxCodePages = 2048;
/// Instructions between looks at the stop flag and the timer.
constexpr u64 kSliceInsns = 1 << 15;
/// Consecutive failed instruction fetches after which the guest is stopped
/// (its exception vectors are themselves unfetchable: it can never recover).
constexpr unsigned kMaxFetchFaults = 64;
/// Set in the code-page key of a page decoded with 64-bit operations disabled.
constexpr u64 kOps64DisabledKey = 1ull << 63;
}  // namespace

Cpu::Cpu(CpuBus bus, ByteOrder order, unsigned cpu_index)
    : bus_(std::move(bus)), order_(order), index_(cpu_index), handlers_(interp::handler_table(order)) {
    cp0.cpu_num = cpu_index;
    fpu.fr = false;
    flush_soft_tlb();
    update_mode();
    count_offset_ticks = 0 - now_ns() / 10;
    rearm_timer();
    seen_flush_epoch_ = bus_.code->flush_epoch();
}

Cpu::~Cpu() = default;

CodePage* Cpu::code_page(u64 ppage, const u8* host) {
    // A page is decoded once per 64-bit-operations setting, each under its own
    // key: with them disabled, its 64-bit operations decode to their Reserved
    // Instruction forms (interp/handlers.cpp), so neither setting pays a check
    // per instruction. Physical page numbers leave the key's top bit free.
    const u64 key = ppage | (ops64_enabled_ ? 0 : kOps64DisabledKey);
    auto it = code_pages_.find(key);
    if (it == code_pages_.end()) {
        if (code_pages_.size() >= kMaxCodePages) code_pages_.clear();
        auto page = std::make_unique<CodePage>();
        page->ppage = ppage;
        page->ops64 = ops64_enabled_;
        page->generation = ~0u;  // forces the first validation below
        it = code_pages_.emplace(key, std::move(page)).first;
    }
    CodePage* page = it->second.get();
    // The page's frame may have moved since it was decoded (a migration keeps
    // the bytes, so the decoded slots stay right); slots decoded from now on
    // read the frame the soft TLB shows now.
    page->host = host;
    if (page->generation != bus_.code->generation(ppage) || !bus_.code->watched(ppage)) {
        // New, or written since it was decoded: decode again, lazily.
        page->generation = bus_.code->watch(ppage);
        for (auto& slot : page->insns) slot = Decoded{handlers_[interp::kDecodeStub], 0, 0, 0, 0, 0, 0};
        page->insns[kSlotsPerPage].fn = handlers_[interp::kLeavePage];
    }
    return page;
}

RunExit Cpu::run(u64 max_insns) {
    // Outside run() this vCPU touches no guest memory: quiescent for shootdowns.
    leave_quiescent();
    struct Quiesce {
        Cpu& c;
        ~Quiesce() {
            c.retired_published_.store(c.retired(), std::memory_order_relaxed);
            c.enter_quiescent();
        }
    } quiesce{*this};
    const u64 end = retired_ + max_insns;
    unsigned fetch_faults = 0;
    while (retired_ < end) {
        if (bus_.stop->load(std::memory_order_acquire)) return RunExit::Stopped;
        if (pause_requested()) [[unlikely]]
            if (!park()) return RunExit::Stopped;
        if (power_request_.load(std::memory_order_relaxed) != kNoPowerRequest || !powered()) [[unlikely]]
            if (!service_power()) return RunExit::Stopped;
        check_timer(now_ns());
        poll_shootdown();
        poll_report("running");
        poll_home();
        retired_published_.store(retired(), std::memory_order_relaxed);
        const u64 slice_end = std::min(end, retired_ + kSliceInsns);
        while (retired_ < slice_end) {
            if (!pending_delay && interrupt_pending()) take_interrupt();
            const u64 fetch_pc = pc;
            const SoftTlbEntry* e = &stlb[(fetch_pc >> kPageShift) % kSoftTlbSize];
            if ((fetch_pc & (~(kPageSize - 1) | 3)) != e->fetch_tag) {
                poll_shootdown();
                if (!fetch_page(fetch_pc)) {
                    if (++fetch_faults > kMaxFetchFaults) {
                        bus_.fatal(
                            fmt::format("vCPU {}: guest cannot fetch instructions at {:#x} (exception vectors "
                                        "unbacked?); stopping the VM",
                                        index_, pc));
                        return RunExit::Stopped;
                    }
                    continue;
                }
                e = &stlb[(fetch_pc >> kPageShift) % kSoftTlbSize];
            }
            const u64 vbase = fetch_pc & ~(kPageSize - 1);
            CodePage* page = code_page(e->ppage, reinterpret_cast<const u8*>(vbase + e->addend));
            // Pages newly watched for code anywhere in the VM (this one
            // included): forget write permissions so stores to them are seen.
            if (const u64 epoch = bus_.code->flush_epoch(); epoch != seen_flush_epoch_) [[unlikely]] {
                seen_flush_epoch_ = epoch;
                for (auto& set : stlb_sets_)
                    for (auto& entry : set) entry.write_tag = kNoTag;
            }
            cur_page = page;
            cur_vbase = vbase;
            const Decoded* d = &page->insns[(fetch_pc & (kPageSize - 1)) >> 2];
            fetch_faults = 0;
            if (pending_delay) [[unlikely]] {
                // The delay slot of a branch that ended the previous page.
                pending_delay = false;
                in_delay = true;
                const Decoded* next = d->fn(*this, d);
                in_delay = false;
                ++retired_;
                if (next) pc = delay_target;
                continue;
            }
            // The hot loop: one indirect call per instruction.
            u64 n = 0;
            const u64 budget = slice_end - retired_;
            do {
                d = d->fn(*this, d);
                ++n;
            } while (d != nullptr && n < budget);
            retired_ += n;
            if (d) pc = pc_of(d);
        }
    }
    return RunExit::BudgetSpent;
}

void Cpu::request_report() {
    report_requested_.store(true, std::memory_order_relaxed);
    kick();
}

std::pair<u64, std::string> Cpu::last_report() const {
    std::lock_guard<std::mutex> lock(report_mutex_);
    return {report_seq_, report_};
}

void Cpu::make_report(const char* activity) {
    report_requested_.store(false, std::memory_order_relaxed);
    std::string text =
        fmt::format("vCPU {}: {}, {} status={:#x} cause={:#x} (lines {:#x}) epc={:#x} count-compare={} retired={}",
                    index_, activity, where(), cp0.status, (cp0.cause & ~cause::IP) | cause_ip(), irq_lines_.load(),
                    cp0.epc, static_cast<i64>(static_cast<i32>(cp0.compare - read_count())), retired());
    std::lock_guard<std::mutex> lock(report_mutex_);
    report_ = std::move(text);
    ++report_seq_;
}

std::string Cpu::where() const {
    std::string text = fmt::format("pc={:#018x}", pc);
    // Only unmapped kernel segments are decoded here: this must not disturb the TLB state.
    u64 pa = ~0ull;
    if (pc >= 0xFFFFFFFF80000000ull && pc < 0xFFFFFFFFC0000000ull)
        pa = pc & 0x1FFFFFFF;
    else if ((pc >> 62) == 2)
        pa = pc & ((1ull << kPaBits) - 1);
    if (pa != ~0ull) {
        if (auto span = bus_.ram->host_span(GuestPhysAddr(pa), 4)) {
            const u32 raw = order_ == ByteOrder::Little ? load_guest<ByteOrder::Little, u32>(span->data())
                                                        : load_guest<ByteOrder::Big, u32>(span->data());
            text += fmt::format(" [{:08x}] {}", raw, disassemble(raw, pc));
        }
    }
    return text;
}
}  // namespace disco::cpu
