// Several VMs in one monitor process (DESIGN.md: "One process runs many
// VMs"). Each VM has a supervisor thread that creates its Vm, runs it, applies
// its reboot policy and reports how it ended; each has its own console
// (FleetConsole). A VM that ends, for whatever reason, leaves the others
// running: VMs share no state but the process.
//
// Threads: add(), start_all(), stop(), stop_all(), wait() and ended() may be
// called from any thread (one Fleet mutex guards the slots). Messages ("disco:
// vm NAME ...") go to the message fd. The Fleet's destructor stops every VM
// and joins the supervisors.
#pragma once
#include <unistd.h>

#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "vmm/monitor/fleet_console.hpp"
#include "vmm/monitor/vm.hpp"
#include "vmm/monitor/vm_config_json.hpp"

namespace disco::monitor {

struct FleetOptions {
    /// Instruction limit for VMs whose definition sets none (0: none).
    u64 default_max_insns = 0;
    /// Print each VM's instruction count and guest MIPS when a run ends.
    bool stats = false;
    int message_fd = STDERR_FILENO;
    /// NUMA for the whole fleet (its VMs share one machine memory): 0 = the
    /// host's real nodes, N = N simulated nodes.
    unsigned numa_sim = 0;
    /// --page-churn for every VM (0 = off).
    double page_churn = 0;
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
    /// The VM's console's log file or /dev/pts/N ("" for stdio); "" if unknown.
    std::string console_where(const std::string& name) const;

private:
    struct Slot {
        VmDefinition def;
        std::unique_ptr<FleetConsole> console;
        std::thread supervisor;
        Vm* running = nullptr;  // the live Vm, if any (under Fleet::mutex_)
        bool stop_requested = false;
        std::optional<FleetVmEnd> end;
    };

    void supervise(Slot& slot);
    /// One Vm from creation to exit; nullopt when the guest rebooted and the
    /// policy says to restart it.
    std::optional<FleetVmEnd> run_once(Slot& slot);
    void finish(Slot& slot, FleetVmEnd end);
    void message(const std::string& text) const;
    const Slot* find(const std::string& name) const;

    /// Creates the machine memory every VM of the fleet uses (before the first start).
    Result<void, Error> make_machine_memory_locked();

    FleetOptions options_;
    /// One machine memory for every VM (DESIGN.md: the one thing VMs share),
    /// sized for the VMs added before the first start_all().
    std::shared_ptr<MachineMemory> machine_memory_;
    mutable std::mutex mutex_;
    std::condition_variable ended_cv_;
    bool stopping_ = false;
    std::vector<std::unique_ptr<Slot>> slots_;  // stable addresses for the supervisors
};

/// `disco run --vm FILE...`: loads the files, runs the fleet, stops every VM
/// on SIGINT or SIGTERM, and returns the process exit status (2 for a bad file,
/// before any VM starts).
int run_fleet(const std::vector<std::string>& files, const FleetOptions& options);
}  // namespace disco::monitor
