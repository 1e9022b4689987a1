// Several VMs in one monitor process (DESIGN.md: "One process runs many
// VMs"). Each VM has a supervisor thread that creates its Vm, runs it, applies
// its reboot policy and reports how it ended; each has its own console
// (FleetConsole). A VM that ends, for whatever reason, leaves the others
// running: VMs share no state but the process.
//
// Threads: add(), start_all(), stop(), stop_all(), wait() and ended() may be
// called from any thread (one Fleet mutex guards the slots), and so may the
// control plane's start(), reset(), pause(), resume(), powerdown(), remove(),
// status() and statuses().
// Messages ("disco: vm NAME ...") go to the message fd. The Fleet's destructor
// stops every VM and joins the supervisors.
#pragma once
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "vmm/monitor/fleet_console.hpp"
#include "vmm/monitor/footprint.hpp"
#include "vmm/monitor/numa_report.hpp"
#include "vmm/monitor/page_scanner.hpp"
#include "vmm/monitor/vm.hpp"
#include "vmm/monitor/vm_config_json.hpp"

namespace disco::monitor {

struct FleetVmStatus;

struct FleetOptions {
    /// Instruction limit for VMs whose definition sets none (0: none).
    u64 default_max_insns = 0;
    /// Print each VM's instruction count and guest MIPS when a run ends.
    bool stats = false;
    int message_fd = STDERR_FILENO;
    /// NUMA for the whole fleet (its VMs share one machine memory): 0 = the
    /// host's real nodes, N = N simulated nodes.
    unsigned numa_sim = 0;
    /// --numa-placement for every VM.
    RamPlacement ram_placement = RamPlacement::Home;
    /// --page-churn for every VM (0 = off).
    double page_churn = 0;
    /// --page-scan: content-based page sharing across the fleet's VMs, in
    /// pages hashed per second (0 = off; page_scanner.hpp).
    double page_scan = 0;
    /// --stats FILE: the footprint and sharing figures as JSON when the fleet ends ("" = none).
    std::string stats_file;
    /// Each node's pool holds at least this much (0: just what the VMs added
    /// before the first start need), so that VMs added later fit too (the
    /// daemon's create). Capacity is address space, committed only when used.
    u64 min_bytes_per_node = 0;
    /// --disk-cache: one disk page cache for every VM's disks (disk_page_cache.hpp).
    bool disk_cache = true;
    /// Called with a VM's new status on each change of its state (started,
    /// stopping, ended). It runs under the Fleet's lock, so that calls come in
    /// the order of the changes: it must be quick and must not call the Fleet.
    std::function<void(const FleetVmStatus&)> on_state_change = {};
};

/// How one VM of the fleet ended.
struct FleetVmEnd {
    enum class Why {
        PowerOff,     // the guest powered off (or rebooted under "reboot": "exit")
        GuestStatus,  // a bare-metal guest wrote the test device
        Error,        // the monitor stopped it: a guest crash, an instruction limit
        StartFailed,  // Vm::create failed (bad kernel, bad size, missing disk)
        Stopped,      // stop() or stop_all()
    } why = Why::PowerOff;
    int status = 0;  // the exit status it stands for
};

/// Where a VM of the fleet is in its life (FleetVmStatus::state).
enum class FleetVmState {
    Defined,   // added, never started
    Running,   // its supervisor runs it (or is building, or rebuilding after a reboot, its Vm)
    Paused,    // running, but pause() parked its vCPUs until resume()
    Stopping,  // stop() asked it to end; it has not ended yet
    Ended,     // it ended (FleetVmStatus::end says how); start() may run it again
};

/// A snapshot of one VM of the fleet, for the control plane.
struct FleetVmStatus {
    std::string name;
    FleetVmState state = FleetVmState::Defined;
    std::optional<FleetVmEnd> end;  // how it ended, when Ended
    Machine machine = Machine::Virt;
    unsigned vcpus = 1;
    u64 memory_bytes = 0;
    std::string console;  // console_where()
    std::string source;   // the file that defined it, as given
    /// Each vCPU's home NUMA node while a Vm exists (Vm::home_node); empty otherwise.
    std::vector<unsigned> vcpu_nodes;
    /// Each vCPU's host thread id while a Vm exists (Vm::vcpu_thread_id; 0 until its thread starts).
    std::vector<int> vcpu_thread_ids;
};

class Fleet {
public:
    explicit Fleet(FleetOptions options = {});
    ~Fleet();
    Fleet(const Fleet&) = delete;
    Fleet& operator=(const Fleet&) = delete;

    /// Opens the VM's console and adds it, not yet started. Fails on a name
    /// already in the fleet or a console that cannot be opened.
    Result<void, Error> add(VmDefinition vm);
    /// Starts every VM not yet started, each on its own supervisor thread.
    /// Fails only when the fleet's machine memory cannot be created.
    Result<void, Error> start_all();
    /// Machine frames in use (every VM's; 0 once all have ended).
    u64 machine_frames_in_use() const;
    /// Ends one VM (its supervisor reports it as stopped); false if unknown.
    bool stop(const std::string& name);
    /// Ends every VM, and any added later never starts.
    void stop_all();
    /// Blocks until every started VM has ended; returns 0 if each ended with
    /// status 0, else the first non-zero status in the order of add().
    int wait();
    /// How the VM ended, once it has.
    std::optional<FleetVmEnd> ended(const std::string& name) const;
    /// Every running VM's vCPU and device state (Vm::describe_state), for SIGUSR1.
    std::string describe_state() const;
    /// The footprint of the running VMs now (footprint.hpp), and the one with
    /// the most pages saved that was seen (sampled whenever a VM ends and on request).
    Footprint footprint();
    Footprint peak_footprint() const;
    /// The page scanner's figures ("" when --page-scan is off).
    std::string scan_summary() const;
    /// The page scanner's figures (nothing when --page-scan is off or no VM started).
    std::optional<ScanStats> scan_stats() const;
    /// The disk page cache's figures (nothing when --disk-cache is off or no VM started).
    std::optional<DiskCacheStats> disk_cache_stats() const;
    /// Drops the disk page cache's entries (once every VM has ended: its frames go back).
    void drop_disk_cache();
    /// The figures --stats FILE writes: {"footprint": {...}, "peak": {...}, "page_scan": {...}, "numa": {...}}.
    std::string stats_json();
    /// The VM's console's log file or /dev/pts/N ("" for stdio); "" if unknown.
    std::string console_where(const std::string& name) const;

    // The control plane's (vmm/control): one VM at a time, by name.
    /// Starts a VM that was never started or has ended (afresh from its
    /// definition). Fails on an unknown name, a VM that is running or
    /// stopping, a fleet that stop_all() ended, or machine memory that cannot
    /// be created.
    Result<void, Error> start(const std::string& name);
    /// A guest reset: the running Vm ends as if the guest had rebooted, and
    /// the VM's reboot policy applies (a fresh Vm, or the end under "exit").
    /// False if the VM is unknown or not running. A paused VM stays paused:
    /// its fresh Vm starts with its vCPUs parked, as QEMU keeps a stopped
    /// guest stopped across system_reset.
    bool reset(const std::string& name);
    /// Pauses a running VM (Vm::pause) and waits until every vCPU has parked,
    /// at most `limit`. Fails on an unknown VM, one that is not running (or
    /// already paused), or vCPUs that did not park in time (the pause is then
    /// undone: the VM runs on). A VM whose Vm is being rebuilt has nothing to
    /// wait for: its next Vm starts paused. stop() and reset() still work on a
    /// paused VM.
    Result<void, Error> pause(const std::string& name,
                              std::chrono::milliseconds limit = std::chrono::milliseconds(5000));
    /// Wakes a paused VM. Fails on an unknown VM or one that is not paused.
    Result<void, Error> resume(const std::string& name);
    /// Asks a running virt VM's guest to power off (Vm::request_powerdown);
    /// it then ends as a guest power-off. Fails on an unknown VM, a bare-metal
    /// one, one that is not running, or one whose Vm is being (re)built.
    Result<void, Error> powerdown(const std::string& name);
    /// Takes a VM that is not running (never started, or ended) out of the
    /// fleet; its name may be used again. Fails on an unknown name or a VM
    /// that is running or stopping.
    Result<void, Error> remove(const std::string& name);
    /// One VM's status; nullopt if unknown.
    std::optional<FleetVmStatus> status(const std::string& name) const;
    /// Every VM's status, in the order of add().
    std::vector<FleetVmStatus> statuses() const;

    // The NUMA control plane's (hot-pages, page operations, numa, memory).
    /// The machine memory every VM uses (null before the first start).
    std::shared_ptr<MachineMemory> machine_memory() const;
    /// Runs fn on the VM's live Vm under the Fleet's lock, so that the Vm
    /// cannot end meanwhile; fn must be short and must not call the Fleet.
    /// False (fn not run) if the VM is unknown or has no live Vm.
    bool with_running(const std::string& name, const std::function<void(Vm&)>& fn);
    /// fn(name, reverse-map id, Vm) for each VM with a live Vm, in the order
    /// of add(), under the Fleet's lock (as with_running).
    void for_each_running(const std::function<void(const std::string&, u32, Vm&)>& fn);
    /// The local/remote access figures since the fleet started: `read`'s
    /// figures for the counters now (run on the machine memory) added to the
    /// sums of every interval reset before. With `reset`, the counters are then
    /// zeroed and the interval's figures kept in those sums, so that they
    /// survive it. One sampler at a time; all zero when there is no machine memory.
    AccessSplit sample_accesses(bool reset, const std::function<AccessSplit(const MachineMemory&)>& read);

private:
    struct Slot {
        VmDefinition def;
        std::unique_ptr<FleetConsole> console;
        std::thread supervisor;
        Vm* running = nullptr;  // the live Vm, if any (under Fleet::mutex_)
        bool stop_requested = false;
        /// pause() until resume(); every Vm of the run starts paused while set.
        bool paused = false;
        std::optional<FleetVmEnd> end;
        /// Its number in machine memory's reverse map: unique in the fleet for
        /// the fleet's life (a removed VM's is not reused), never 0.
        u32 vm_id = 0;
    };

    void supervise(Slot& slot);
    /// One Vm from creation to exit; nullopt when the guest rebooted and the
    /// policy says to restart it.
    std::optional<FleetVmEnd> run_once(Slot& slot);
    void finish(Slot& slot, FleetVmEnd end);
    void message(const std::string& text) const;
    const Slot* find(const std::string& name) const;
    Slot* find(const std::string& name);
    /// Opens the slot's console input and starts its supervisor (mutex_ held).
    void launch_locked(Slot& slot);
    FleetVmStatus status_locked(const Slot& slot) const;
    /// Started, not ended and not being stopped (mutex_ held).
    static bool live_locked(const Slot& slot) {
        return slot.supervisor.joinable() && !slot.end && !slot.stop_requested;
    }
    /// options_.on_state_change with the slot's status (mutex_ held).
    void notify_locked(const Slot& slot) const;

    /// Creates the machine memory every VM of the fleet uses (before the first start).
    Result<void, Error> make_machine_memory_locked();

    FleetOptions options_;
    /// One machine memory for every VM (DESIGN.md: the one thing VMs share),
    /// sized for the VMs added before the first start_all().
    std::shared_ptr<MachineMemory> machine_memory_;
    /// Content-based sharing across the VMs (null when off); made with the machine memory.
    std::unique_ptr<PageScanner> scanner_;
    /// The disk page cache every VM's disks share (null when off); made with the machine memory.
    std::shared_ptr<DiskPageCache> disk_cache_;
    Footprint peak_;  // under mutex_
    Footprint footprint_locked();
    mutable std::mutex mutex_;
    std::condition_variable ended_cv_;
    bool stopping_ = false;
    std::vector<std::unique_ptr<Slot>> slots_;  // stable addresses for the supervisors
    u32 next_vm_id_ = 1;
    std::mutex accesses_mutex_;   // sample_accesses, one at a time
    AccessSplit accesses_reset_;  // the intervals' figures before each reset (accesses_mutex_)
};

/// What runs beside run_fleet's VMs (`disco run --control`: the control
/// socket): made once every VM has started, its result held until they have
/// all ended. An error ends the run with status 2.
using FleetCompanion = std::function<Result<std::shared_ptr<void>, Error>(Fleet&)>;

/// `disco run --vm FILE...`: loads the files, runs the fleet, stops every VM
/// on SIGINT or SIGTERM, and returns the process exit status (2 for a bad file,
/// before any VM starts).
int run_fleet(const std::vector<std::string>& files, const FleetOptions& options, const FleetCompanion& companion = {});
/// The same for VMs already defined (`disco run --kernel ... --control`: a fleet of one).
int run_fleet(std::vector<VmDefinition> defs, const FleetOptions& options, const FleetCompanion& companion = {});
}  // namespace disco::monitor
