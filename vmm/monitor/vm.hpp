// One virtual machine: its guest memory, device bus, code watch and vCPUs
// (DESIGN.md: per-VM state hangs off a Vm, never a global). Thread model:
// run() starts one host thread per vCPU and waits; devices and vCPUs end the
// VM through request_exit(), which every thread may call. Device I/O threads
// (virtio, GIC timer, RTC) belong to the board's devices and end with the Vm.
#pragma once
#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "vmm/accel/engine.hpp"
#include "vmm/board/virt.hpp"
#include "vmm/mem/code_watch.hpp"
#include "vmm/mem/disk_page_cache.hpp"
#include "vmm/mem/guest_ram.hpp"
#include "vmm/mem/machine_memory.hpp"
#include "vmm/mem/mmio.hpp"
#include "vmm/mem/shootdown.hpp"
#include "vmm/util/result.hpp"

namespace disco::monitor {

enum class Machine { Virt, BareMetal };

struct VmConfig {
    Machine machine = Machine::Virt;
    std::string kernel, initrd, cmdline;
    u64 memory_bytes = 256ull << 20;
    unsigned smp = 1;
    std::vector<board::DiskSpec> disks;
    /// Stop after this many instructions per vCPU (0 = no limit); benchmarks and tests use it.
    u64 max_insns = 0;
    /// NUMA: 0 = the host's real nodes; N >= 1 = N simulated nodes (vCPUs round-robin).
    unsigned numa_sim = 0;
    /// --numa-placement: where the RAM's frames start out (guest_ram.hpp RamPlacement).
    RamPlacement ram_placement = RamPlacement::Home;
    /// --page-churn: page operations per second on random guest pages (0 = off).
    double page_churn = 0;
    /// --access-counters: count each vCPU's soft-TLB misses per machine frame
    /// and node (access_counters.hpp; machine memory only, so not baremetal).
    bool access_counters = true;
    /// Machine memory shared with other VMs; null = the VM makes its own.
    std::shared_ptr<MachineMemory> machine_memory;
    /// --disk-cache: read-time sharing of base-image blocks (disk_page_cache.hpp).
    bool disk_cache = true;
    /// The disk page cache shared with other VMs (over machine_memory); null
    /// with disk_cache = the VM makes its own.
    std::shared_ptr<DiskPageCache> disk_page_cache;
    /// The VM's number in machine memory's reverse map (unique among the VMs sharing it; not 0).
    u32 vm_id = 1;
    /// Where the guest's console output goes (the process's stdout by default).
    std::function<void(std::span<const u8>)> console_out;
};

/// How a VM ended.
struct VmExit {
    enum class Kind { PowerOff, Reboot, GuestStatus, Error } kind = Kind::PowerOff;
    int status = 0;  // the process exit status it stands for
};

class Vm {
public:
    /// Builds the board, loads the kernel and creates the vCPUs.
    static Result<std::unique_ptr<Vm>, Error> create(const VmConfig& config);
    ~Vm();

    /// Runs every vCPU on its own thread until the guest ends the VM.
    VmExit run();
    /// Ends the VM (any thread).
    void request_exit(VmExit exit);
    /// Ends the VM because of what the guest did; the message names it (any thread).
    void abort_with(const std::string& message);
    /// Bytes typed on the console (any thread).
    void console_input(std::span<const u8> bytes);
    /// Pauses the VM (QMP stop; any thread): each vCPU parks at its next safe
    /// point (between run slices, in WAIT, held in reset) and sleeps there,
    /// quiescent for shootdowns, so that page operations never wait for it.
    /// Returns at once: parked() says when every vCPU has. A paused VM still
    /// ends on request_exit (stop, reset). Before run() it starts paused.
    void pause();
    /// Wakes a paused VM's vCPUs (QMP cont; any thread).
    void resume();
    bool paused() const { return pause_.load(std::memory_order_acquire); }
    /// Whether no vCPU runs guest code: each is parked, or the VM is ending (any thread).
    bool parked() const;
    /// A graceful power-off request (QMP system_powerdown; any thread), which
    /// an unmodified Linux guest honours: the board has no power button, so it
    /// types magic SysRq on the serial console, break + 's' (sync), break + 'u'
    /// (remount read-only), break + 'o' (power off), one second of the guest's
    /// running time apart, on a thread of its own. Returns at once; a second
    /// request changes nothing. Fails on a bare-metal VM.
    Result<void, Error> request_powerdown();
    /// Diagnostics for a hung guest: each vCPU's state (reported by the vCPU
    /// at a safe point; one that does not answer within a second is named as
    /// stuck) and the devices' state, one line each, prefixed with `prefix`.
    std::string describe_state(const std::string& prefix) const;

    u64 retired_instructions() const;
    GuestRam& ram() { return ram_; }
    /// The NUMA node vCPU i calls home.
    unsigned home_node(unsigned vcpu) const;
    unsigned vcpu_count() const { return static_cast<unsigned>(vcpus_.size()); }
    /// vCPU i's host thread id (gettid()), recorded when its thread starts; 0
    /// before that or for a vCPU that does not exist (any thread).
    int vcpu_thread_id(unsigned vcpu) const;
    /// Re-homes a vCPU on a node (any thread): it takes the node at its next
    /// safe point (its view of guest RAM, the node its misses count for) and
    /// its host thread moves to the node's CPUs as at start. Fails on a vCPU
    /// or node that does not exist, or RAM that is not in machine memory.
    Result<void, Error> pin_vcpu(unsigned vcpu, unsigned node);
    double run_seconds() const { return run_seconds_; }
    /// The page-churn figures of the last run ("" when it was off).
    const std::string& churn_summary() const { return churn_summary_; }
    /// The disk page cache its disks read through (null when off).
    const DiskPageCache* disk_cache() const { return disk_cache_.get(); }

private:
    Vm() = default;
    Result<accel::ResetState, Error> build_virt(const VmConfig& config);
    Result<accel::ResetState, Error> build_baremetal(const VmConfig& config);
    void on_halted(unsigned vcpu);
    void bind_to_home_node(unsigned vcpu);
    void powerdown_sequence();
    /// Ends and joins the powerdown thread (before the devices it types on go).
    void end_powerdown();

    // Declared first, destroyed last: RAM views and frames belong to it.
    std::shared_ptr<MachineMemory> machine_memory_;
    std::shared_ptr<DiskPageCache> disk_cache_;  // after the devices that read through it go
    std::unique_ptr<Shootdown> shootdown_;
    GuestRam ram_;
    MmioBus mmio_;
    std::unique_ptr<CodeWatch> code_;
    std::vector<std::unique_ptr<accel::VcpuEngine>> vcpus_;
    /// Each vCPU's home node (pin_vcpu changes it; any thread reads it).
    std::unique_ptr<std::atomic<unsigned>[]> homes_;
    /// Each vCPU thread's host TID (vcpu_thread_id), 0 until it starts.
    std::unique_ptr<std::atomic<int>[]> tids_;
    board::VirtBoard virt_;
    std::function<void(std::span<const u8>)> console_in_;
    ByteOrder byte_order_ = ByteOrder::Little;
    Machine machine_ = Machine::Virt;
    std::atomic<bool> stop_{false};
    /// Set while paused (CpuBus::pause); pause() and resume() kick every vCPU after changing it.
    std::atomic<bool> pause_{false};
    // request_powerdown's thread, and what wakes it (a pause change, the VM's end).
    std::thread powerdown_;
    std::mutex powerdown_mutex_;
    std::condition_variable powerdown_cv_;
    bool powerdown_end_ = false;  // under powerdown_mutex_
    VmExit exit_;
    std::atomic<bool> exit_set_{false};
    u64 max_insns_ = 0;
    double page_churn_ = 0;
    std::string churn_summary_;
    double run_seconds_ = 0;
};
}  // namespace disco::monitor
