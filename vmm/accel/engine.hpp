// The execution-engine interface (DESIGN.md "accel"): what the monitor needs
// from something that runs a vCPU. The software CPU implements it today; a
// KVM backend (on hosts that run MIPS64 natively) and a JIT will implement the
// same interface later.
#pragma once
#include <memory>
#include <string>

#include "vmm/cpu/cpu.hpp"

namespace disco::accel {

/// Architectural state a vCPU starts from (the board decides it).
struct ResetState {
    u64 pc = 0;
    u64 gpr[32] = {};
    u64 status = 0;
    u64 ebase = 0xFFFFFFFF80000000ull;
    u64 cmgcr_base = 0;
    /// false: the vCPU starts held in reset until start() (CPS secondaries).
    bool powered = true;
};

class VcpuEngine {
public:
    virtual ~VcpuEngine() = default;
    /// Runs guest code on the calling thread until the VM's stop flag is set
    /// or about max_insns instructions have run.
    virtual cpu::RunExit run(u64 max_insns) = 0;
    /// Sets hardware interrupt line IP2..IP7 (any thread).
    virtual void set_irq_line(unsigned ip, bool level) = 0;
    /// Wakes the vCPU if it sleeps in WAIT (any thread).
    virtual void kick() = 0;
    /// Cold-resets the vCPU and runs it from pc (any thread; the CPC's RESET).
    virtual void start(u64 pc) = 0;
    /// Stops the vCPU until start() (any thread; the CPC's PWRDOWN).
    virtual void power_down() = 0;
    /// Guest instructions retired so far (benchmarks, statistics); any thread:
    /// while the vCPU runs, as of its latest time slice (exact once run() returns).
    virtual u64 retired() const = 0;
    /// Where the vCPU is, for error messages and traces.
    virtual std::string describe() const = 0;
    /// Asks the vCPU to report its state at its next safe point (any thread).
    virtual void request_report() = 0;
    /// The latest report and its sequence number (0: none yet); any thread.
    virtual std::pair<u64, std::string> last_report() const = 0;
    /// Moves the vCPU to NUMA node `node` at its next safe point (Cpu::request_home); any thread.
    virtual void set_home_node(unsigned node) = 0;
    /// Whether the vCPU sleeps parked while its VM is paused (CpuBus::pause); any thread.
    virtual bool parked() const = 0;
};

/// The software CPU: the pre-decoded interpreter of vmm/cpu.
std::unique_ptr<VcpuEngine> make_interpreter(cpu::CpuBus bus, ByteOrder order, unsigned index, const ResetState& reset);
}  // namespace disco::accel
