// vCPU power and reset as the Cluster Power Controller drives a core
// (guest-board.md §3): another thread asks, the vCPU's own thread applies the
// request between instructions, so architectural state is only ever touched
// by the thread that owns it (cpu.hpp's thread model). The monitor's pause
// (QMP stop) parks a vCPU the same way.
#include <chrono>

#include "vmm/cpu/cpu.hpp"

namespace disco::cpu {

void Cpu::request_start(u64 pc) {
    power_request_.store(pc & ~3ull, std::memory_order_release);
    kick();
}

void Cpu::request_power_down() {
    power_request_.store(kPowerDown, std::memory_order_release);
    kick();
}

void Cpu::cold_reset(u64 pc) {
    // Reset state of a MIPS64 core (MD00091 §6.2.1 "Reset Exception"):
    // kernel mode with BEV and ERL set, EBase at its reset value with the
    // core number, Config0.K0 back to its reset value. Count keeps running
    // (the kernel resynchronises it); TLB and GPR contents are unspecified.
    cp0.status = status::BEV | status::ERL;
    cp0.cause = 0;
    cp0.ebase = 0xFFFFFFFF80000000ull;
    cp0.config0 = ident::Config0Base;
    cp0.wired = 0;
    cp0.pagegrain = 0;
    cp0.hwrena = 0;
    fpu.fr = false;
    llbit = false;
    in_delay = pending_delay = false;
    this->pc = pc;
    flush_soft_tlb();
    update_mode();
}

bool Cpu::service_power() {
    for (;;) {
        const u64 request = power_request_.exchange(kNoPowerRequest, std::memory_order_acq_rel);
        if (request == kPowerDown) {
            powered_.store(false, std::memory_order_release);
        } else if (request != kNoPowerRequest) {
            cold_reset(request);
            powered_.store(true, std::memory_order_release);
        }
        if (powered()) return true;
        poll_report("held in reset");
        // Held in reset: sleep until a request or the VM's end.
        const u64 seen = kicks_.load(std::memory_order_acquire);
        if (bus_.stop->load(std::memory_order_acquire)) return false;
        if (power_request_.load(std::memory_order_acquire) != kNoPowerRequest) continue;
        if (pause_requested()) {
            if (!park()) return false;
            continue;
        }
        enter_quiescent();
        {
            std::unique_lock<std::mutex> lock(wait_mutex_);
            wait_cv_.wait_for(lock, std::chrono::milliseconds(500),
                              [&] { return kicks_.load(std::memory_order_acquire) != seen; });
        }
        leave_quiescent();
    }
}

bool Cpu::park() {
    // Parked, the vCPU touches no guest memory: it is quiescent, so that page
    // operations (numad, the page scanner, device DMA) never wait for a paused
    // VM; leaving, it flushes its soft TLB if any shootdown came meanwhile
    // (shootdown.hpp). It still answers diagnostics. Count and the timer are
    // not touched: guest time goes on with the host's (control-schema.md).
    enter_quiescent();
    parked_.store(true, std::memory_order_release);
    bool stopped = false;
    for (;;) {
        const u64 seen = kicks_.load(std::memory_order_acquire);
        if (bus_.stop->load(std::memory_order_acquire)) {
            stopped = true;
            break;
        }
        if (!pause_requested()) break;
        poll_report("paused");
        // Interrupt lines and requests kick too: those wake-ups just sleep again.
        std::unique_lock<std::mutex> lock(wait_mutex_);
        wait_cv_.wait(lock, [&] { return kicks_.load(std::memory_order_acquire) != seen; });
    }
    parked_.store(false, std::memory_order_release);
    leave_quiescent();
    return !stopped;
}
}  // namespace disco::cpu
