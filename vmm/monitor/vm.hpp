// One virtual machine: its guest memory, device bus, code watch and vCPUs
// (DESIGN.md: per-VM state hangs off a Vm, never a global). Thread model:
// run() starts one host thread per vCPU and waits; a device or a vCPU ends the
// VM through request_exit(), which every thread may call.
#pragma once
#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "vmm/accel/engine.hpp"
#include "vmm/mem/code_watch.hpp"
#include "vmm/mem/guest_ram.hpp"
#include "vmm/mem/mmio.hpp"
#include "vmm/util/result.hpp"

namespace disco::monitor {

struct VmConfig {
    std::string kernel;
    u64 memory_bytes = 64ull << 20;
    unsigned smp = 1;
    /// Stop after this many instructions per vCPU (0 = no limit); benchmarks and tests use it.
    u64 max_insns = 0;
};

class Vm {
public:
    /// Builds the bare-metal board, loads the kernel and creates the vCPUs.
    static Result<std::unique_ptr<Vm>, Error> create(const VmConfig& config);
    ~Vm();

    /// Runs every vCPU on its own thread until the guest exits; returns the
    /// exit status the guest reported (or 1 when the VM was stopped on an error).
    int run();
    /// Ends the VM with a status (any thread).
    void request_exit(int status);
    /// Ends the VM because of what the guest did; the message names it (any thread).
    void abort_with(const std::string& message);

    u64 retired_instructions() const;
    double run_seconds() const { return run_seconds_; }

private:
    Vm() = default;
    GuestRam ram_;
    MmioBus mmio_;
    std::unique_ptr<CodeWatch> code_;
    std::vector<std::unique_ptr<accel::VcpuEngine>> vcpus_;
    std::atomic<bool> stop_{false};
    std::atomic<int> exit_status_{0};
    u64 max_insns_ = 0;
    double run_seconds_ = 0;
};
}  // namespace disco::monitor
