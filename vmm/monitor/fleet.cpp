#include "vmm/monitor/fleet.hpp"

#include <fmt/format.h>
#include <poll.h>
#include <pthread.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "vmm/monitor/signal_watch.hpp"
#include "vmm/monitor/stats_document.hpp"

namespace disco::monitor {
namespace {
std::string describe(const FleetVmEnd& end) {
    switch (end.why) {
        case FleetVmEnd::Why::PowerOff:
            return "powered off";
        case FleetVmEnd::Why::GuestStatus:
            return fmt::format("guest exit status {}", end.status);
        case FleetVmEnd::Why::Error:
            return "stopped by the monitor after an error";
        case FleetVmEnd::Why::StartFailed:
            return "could not start";
        case FleetVmEnd::Why::Stopped:
            return "stopped";
    }
    return "ended";
}

FleetVmEnd end_of(const VmExit& exit) {
    switch (exit.kind) {
        case VmExit::Kind::GuestStatus:
            return {FleetVmEnd::Why::GuestStatus, exit.status};
        case VmExit::Kind::Error:
            return {FleetVmEnd::Why::Error, exit.status};
        default:
            return {FleetVmEnd::Why::PowerOff, exit.status};
    }
}

std::string console_line(const VmDefinition& def, const FleetConsole& console) {
    switch (def.console.kind) {
        case ConsoleSpec::Kind::Pty:
            return fmt::format("vm {} console on {}", def.name, console.where());
        case ConsoleSpec::Kind::Log:
            return fmt::format("vm {} console in {}", def.name, console.where());
        case ConsoleSpec::Kind::Stdio:
            break;
    }
    return fmt::format("vm {} console on stdout", def.name);
}
}  // namespace

Fleet::Fleet(FleetOptions options) : options_(options) {}

Fleet::~Fleet() {
    stop_all();
    for (auto& slot : slots_)
        if (slot->supervisor.joinable()) slot->supervisor.join();
    for (auto& slot : slots_) slot->console->stop_input();
}

void Fleet::message(const std::string& text) const {
    const std::string line = fmt::format("disco: {}\n", text);
    [[maybe_unused]] const ssize_t n = ::write(options_.message_fd, line.data(), line.size());
}

const Fleet::Slot* Fleet::find(const std::string& name) const {
    for (const auto& slot : slots_)
        if (slot->def.name == name) return slot.get();
    return nullptr;
}

Fleet::Slot* Fleet::find(const std::string& name) {
    return const_cast<Slot*>(static_cast<const Fleet*>(this)->find(name));
}

Result<void, Error> Fleet::add(VmDefinition vm) {
    {
        std::lock_guard lock(mutex_);
        if (find(vm.name)) return fail(Error{fmt::format("a VM named \"{}\" is already in the fleet", vm.name)});
    }
    auto console = FleetConsole::open(vm.console);
    if (!console) return fail(Error{fmt::format("vm {}: {}", vm.name, console.error().message)});
    auto slot = std::make_unique<Slot>();
    slot->def = std::move(vm);
    slot->console = std::move(*console);
    std::lock_guard lock(mutex_);
    if (find(slot->def.name))
        return fail(Error{fmt::format("a VM named \"{}\" is already in the fleet", slot->def.name)});
    slot->vm_id = next_vm_id_++;
    slots_.push_back(std::move(slot));
    return {};
}

Result<void, Error> Fleet::make_machine_memory_locked() {
    if (machine_memory_) return {};
    // Every node's pool can hold every VM: capacity is reserved, committed only when used.
    MachineMemoryConfig mc;
    mc.numa_sim = options_.numa_sim;
    mc.bytes_per_node = 0;
    for (const auto& slot : slots_) mc.bytes_per_node += slot->def.config.memory_bytes + (16ull << 20);
    mc.bytes_per_node = std::max(mc.bytes_per_node, options_.min_bytes_per_node);
    if (options_.disk_cache) mc.bytes_per_node += kDiskCacheDefaultFrames << kPageShift;  // the cache's frames
    auto mm = MachineMemory::create(mc);
    if (!mm) return fail(Error{fmt::format("machine memory: {}", mm.error().message)});
    machine_memory_ = std::move(*mm);
    if (options_.disk_cache) disk_cache_ = std::make_shared<DiskPageCache>(*machine_memory_, kDiskCacheDefaultFrames);
    if (options_.page_scan > 0) scanner_ = std::make_unique<PageScanner>(options_.page_scan);
    return {};
}

Footprint Fleet::footprint_locked() {
    std::vector<std::pair<std::string, const GuestRam*>> vms;
    for (const auto& slot : slots_)
        if (slot->running) vms.emplace_back(slot->def.name, &slot->running->ram());
    Footprint f = measure_footprint(vms);
    if (f.pages_sharing >= peak_.pages_sharing) peak_ = f;
    return f;
}

Footprint Fleet::footprint() {
    std::lock_guard lock(mutex_);
    return footprint_locked();
}

Footprint Fleet::peak_footprint() const {
    std::lock_guard lock(mutex_);
    return peak_;
}

std::string Fleet::scan_summary() const { return scanner_ ? scanner_->summary() : std::string(); }

std::optional<ScanStats> Fleet::scan_stats() const {
    const PageScanner* scanner = nullptr;
    {
        // Made with the machine memory, and lives as long as the Fleet; its own
        // mutex may be held for a batch, which need not hold up the Fleet's.
        std::lock_guard lock(mutex_);
        scanner = scanner_.get();
    }
    if (!scanner) return std::nullopt;
    return scanner->stats();
}

std::optional<DiskCacheStats> Fleet::disk_cache_stats() const {
    std::lock_guard lock(mutex_);
    if (!disk_cache_) return std::nullopt;
    return disk_cache_->stats();
}

void Fleet::drop_disk_cache() {
    std::lock_guard lock(mutex_);
    if (disk_cache_) disk_cache_->clear();
}

std::string Fleet::stats_json() {
    const Footprint now = footprint();
    const AccessSplit numa = sample_accesses(false, count_accesses);
    const auto cache = disk_cache_stats();
    return stats_document(now, peak_footprint(), scanner_.get(), &numa, cache ? &*cache : nullptr);
}

std::shared_ptr<MachineMemory> Fleet::machine_memory() const {
    std::lock_guard lock(mutex_);
    return machine_memory_;
}

bool Fleet::with_running(const std::string& name, const std::function<void(Vm&)>& fn) {
    std::lock_guard lock(mutex_);
    Slot* slot = find(name);
    if (!slot || !slot->running) return false;
    fn(*slot->running);
    return true;
}

void Fleet::for_each_running(const std::function<void(const std::string&, u32, Vm&)>& fn) {
    std::lock_guard lock(mutex_);
    for (auto& slot : slots_)
        if (slot->running) fn(slot->def.name, slot->vm_id, *slot->running);
}

AccessSplit Fleet::sample_accesses(bool reset, const std::function<AccessSplit(const MachineMemory&)>& read) {
    const std::shared_ptr<MachineMemory> mm = machine_memory();
    std::lock_guard lock(accesses_mutex_);
    if (!mm) return accesses_reset_;
    AccessSplit total = accesses_reset_;
    const AccessSplit interval = read(*mm);
    total += interval;
    if (reset) {
        accesses_reset_ = total;
        mm->access_counters().reset();
    }
    return total;
}

u64 Fleet::machine_frames_in_use() const {
    std::lock_guard lock(mutex_);
    return machine_memory_ ? machine_memory_->totals().frames_in_use : 0;
}

Result<void, Error> Fleet::start_all() {
    std::lock_guard lock(mutex_);
    if (stopping_) return {};
    DISCO_TRY(make_machine_memory_locked());
    for (auto& owned : slots_) {
        Slot& slot = *owned;
        if (slot.supervisor.joinable() || slot.end) continue;
        launch_locked(slot);
    }
    return {};
}

void Fleet::launch_locked(Slot& slot) {
    message(console_line(slot.def, *slot.console));
    auto input = slot.console->start_input([this, &slot](std::span<const u8> bytes) {
        std::lock_guard in_lock(mutex_);
        if (slot.running) slot.running->console_input(bytes);
    });
    if (!input) message(fmt::format("vm {}: no console input: {}", slot.def.name, input.error().message));
    slot.supervisor = std::thread([this, &slot] { supervise(slot); });
    notify_locked(slot);
}

Result<void, Error> Fleet::start(const std::string& name) {
    std::thread finished;  // the supervisor of the VM's last run, joined outside the lock
    {
        std::lock_guard lock(mutex_);
        Slot* slot = find(name);
        if (!slot) return fail(Error{fmt::format("no VM named \"{}\"", name)});
        if (stopping_) return fail(Error{"the monitor is stopping every VM"});
        if (slot->supervisor.joinable() && !slot->end)
            return fail(
                Error{fmt::format("VM \"{}\" is already {}", name, slot->stop_requested ? "stopping" : "running")});
        DISCO_TRY(make_machine_memory_locked());
        // An ended supervisor has nothing left to do but return (finish()
        // sets `end` last, under this lock).
        finished = std::move(slot->supervisor);
        slot->end.reset();
        slot->stop_requested = false;
        slot->paused = false;
        launch_locked(*slot);
    }
    if (finished.joinable()) finished.join();
    return {};
}

bool Fleet::reset(const std::string& name) {
    std::lock_guard lock(mutex_);
    Slot* slot = find(name);
    if (!slot || !slot->running || slot->stop_requested) return false;
    slot->running->request_exit({VmExit::Kind::Reboot, 0});
    return true;
}

Result<void, Error> Fleet::pause(const std::string& name, std::chrono::milliseconds limit) {
    {
        std::lock_guard lock(mutex_);
        Slot* slot = find(name);
        if (!slot) return fail(Error{fmt::format("no VM named \"{}\"", name)});
        if (!live_locked(*slot)) return fail(Error{fmt::format("VM \"{}\" is not running", name)});
        if (slot->paused) return fail(Error{fmt::format("VM \"{}\" is paused already", name)});
        slot->paused = true;
        if (slot->running) slot->running->pause();
        notify_locked(*slot);
    }
    // The wait is outside the lock (the console's input and every status take
    // it); the Vm is looked up afresh each time, since it may end meanwhile.
    const auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
        {
            std::lock_guard lock(mutex_);
            Slot* slot = find(name);
            // Ended, resumed or being stopped meanwhile, or no Vm to wait for: done.
            if (!slot || !slot->paused || !live_locked(*slot) || !slot->running || slot->running->parked()) return {};
            if (std::chrono::steady_clock::now() >= deadline) {
                slot->paused = false;
                slot->running->resume();
                notify_locked(*slot);
                return fail(
                    Error{fmt::format("VM \"{}\": a vCPU did not reach a safe point within {} ms (stuck in "
                                      "the monitor?); the VM runs on",
                                      name, limit.count())});
            }
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
}

Result<void, Error> Fleet::resume(const std::string& name) {
    std::lock_guard lock(mutex_);
    Slot* slot = find(name);
    if (!slot) return fail(Error{fmt::format("no VM named \"{}\"", name)});
    if (!slot->paused || !live_locked(*slot)) return fail(Error{fmt::format("VM \"{}\" is not paused", name)});
    slot->paused = false;
    if (slot->running) slot->running->resume();
    notify_locked(*slot);
    return {};
}

Result<void, Error> Fleet::powerdown(const std::string& name) {
    std::lock_guard lock(mutex_);
    Slot* slot = find(name);
    if (!slot) return fail(Error{fmt::format("no VM named \"{}\"", name)});
    if (!live_locked(*slot)) return fail(Error{fmt::format("VM \"{}\" is not running", name)});
    if (!slot->running) return fail(Error{fmt::format("VM \"{}\" is starting (no guest to ask yet)", name)});
    return slot->running->request_powerdown();
}

Result<void, Error> Fleet::remove(const std::string& name) {
    std::unique_ptr<Slot> gone;
    {
        std::lock_guard lock(mutex_);
        auto it = std::find_if(slots_.begin(), slots_.end(), [&](const auto& s) { return s->def.name == name; });
        if (it == slots_.end()) return fail(Error{fmt::format("no VM named \"{}\"", name)});
        if ((*it)->supervisor.joinable() && !(*it)->end)
            return fail(Error{
                fmt::format("VM \"{}\" is {}; stop it first", name, (*it)->stop_requested ? "stopping" : "running")});
        gone = std::move(*it);
        slots_.erase(it);
    }
    // Outside the lock: the console's input reader takes it.
    if (gone->supervisor.joinable()) gone->supervisor.join();
    gone->console->stop_input();
    return {};
}

FleetVmStatus Fleet::status_locked(const Slot& slot) const {
    FleetVmStatus st;
    st.name = slot.def.name;
    if (slot.end)
        st.state = FleetVmState::Ended;
    else if (slot.supervisor.joinable())
        st.state = slot.stop_requested ? FleetVmState::Stopping
                   : slot.paused       ? FleetVmState::Paused
                                       : FleetVmState::Running;
    st.end = slot.end;
    st.machine = slot.def.config.machine;
    st.vcpus = slot.def.config.smp;
    st.memory_bytes = slot.def.config.memory_bytes;
    st.console = slot.console->where();
    st.source = slot.def.source;
    if (slot.running)
        for (unsigned i = 0; i < slot.def.config.smp; ++i) {
            st.vcpu_nodes.push_back(slot.running->home_node(i));
            st.vcpu_thread_ids.push_back(slot.running->vcpu_thread_id(i));
        }
    return st;
}

void Fleet::notify_locked(const Slot& slot) const {
    if (options_.on_state_change) options_.on_state_change(status_locked(slot));
}

std::optional<FleetVmStatus> Fleet::status(const std::string& name) const {
    std::lock_guard lock(mutex_);
    const Slot* slot = find(name);
    if (!slot) return std::nullopt;
    return status_locked(*slot);
}

std::vector<FleetVmStatus> Fleet::statuses() const {
    std::lock_guard lock(mutex_);
    std::vector<FleetVmStatus> all;
    for (const auto& slot : slots_) all.push_back(status_locked(*slot));
    return all;
}

bool Fleet::stop(const std::string& name) {
    std::lock_guard lock(mutex_);
    for (auto& slot : slots_) {
        if (slot->def.name != name) continue;
        const bool was_running = slot->supervisor.joinable() && !slot->end && !slot->stop_requested;
        slot->stop_requested = true;
        if (slot->running) slot->running->request_exit({VmExit::Kind::PowerOff, 0});
        if (was_running) notify_locked(*slot);
        return true;
    }
    return false;
}

void Fleet::stop_all() {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    for (auto& slot : slots_) {
        const bool was_running = slot->supervisor.joinable() && !slot->end && !slot->stop_requested;
        slot->stop_requested = true;
        if (slot->running) slot->running->request_exit({VmExit::Kind::PowerOff, 0});
        if (was_running) notify_locked(*slot);
    }
}

int Fleet::wait() {
    std::unique_lock lock(mutex_);
    ended_cv_.wait(lock, [this] {
        for (const auto& slot : slots_)
            if (slot->supervisor.joinable() && !slot->end) return false;
        return true;
    });
    for (const auto& slot : slots_)
        if (slot->end && slot->end->status != 0) return slot->end->status;
    return 0;
}

std::optional<FleetVmEnd> Fleet::ended(const std::string& name) const {
    std::lock_guard lock(mutex_);
    const Slot* slot = find(name);
    return slot ? slot->end : std::nullopt;
}

std::string Fleet::console_where(const std::string& name) const {
    std::lock_guard lock(mutex_);
    const Slot* slot = find(name);
    return slot ? slot->console->where() : "";
}

void Fleet::supervise(Slot& slot) {
    for (;;) {
        if (auto end = run_once(slot)) {
            finish(slot, *end);
            return;
        }
        message(fmt::format("vm {} rebooted; restarting it", slot.def.name));
    }
}

std::optional<FleetVmEnd> Fleet::run_once(Slot& slot) {
    {
        std::lock_guard lock(mutex_);
        if (slot.stop_requested) return FleetVmEnd{FleetVmEnd::Why::Stopped, 0};
    }
    VmConfig config = slot.def.config;
    if (!config.max_insns) config.max_insns = options_.default_max_insns;
    if (options_.page_churn > 0) config.page_churn = options_.page_churn;
    config.ram_placement = options_.ram_placement;
    {
        std::lock_guard lock(mutex_);
        config.machine_memory = machine_memory_;
        config.disk_cache = config.disk_cache && options_.disk_cache;
        config.disk_page_cache = disk_cache_;
        config.vm_id = slot.vm_id;  // the reverse map's id, unique for the fleet's life
    }
    FleetConsole* console = slot.console.get();
    config.console_out = [console](std::span<const u8> bytes) { console->write(bytes); };

    auto vm = Vm::create(config);
    if (!vm) {
        message(fmt::format("vm {}: {}", slot.def.name, vm.error().message));
        return FleetVmEnd{FleetVmEnd::Why::StartFailed, 2};  // as `disco run` exits on a bad kernel
    }
    {
        // A stop that came while the Vm was being built applies to it now.
        std::lock_guard lock(mutex_);
        slot.running = vm->get();
        if (slot.stop_requested) slot.running->request_exit({VmExit::Kind::PowerOff, 0});
        if (slot.paused) slot.running->pause();  // paused across a reset: the vCPUs park before running
    }
    if (scanner_) scanner_->add((*vm)->ram());
    const VmExit exit = (*vm)->run();
    bool stopped = false;
    {
        std::lock_guard lock(mutex_);
        footprint_locked();      // the last figures this VM is part of
        slot.running = nullptr;  // the pty reader no longer reaches this Vm
        stopped = slot.stop_requested;
    }
    if (scanner_) scanner_->remove((*vm)->ram());  // before the Vm and its RAM go
    console->flush();
    if (options_.stats) {
        const double secs = (*vm)->run_seconds();
        const auto insns = (*vm)->retired_instructions();
        message(fmt::format("vm {}: {} instructions in {:.3f} s: {:.1f} guest MIPS", slot.def.name, insns, secs,
                            secs > 0 ? insns / secs / 1e6 : 0.0));
    }
    if (!(*vm)->churn_summary().empty()) message(fmt::format("vm {}: {}", slot.def.name, (*vm)->churn_summary()));
    if (stopped) return FleetVmEnd{FleetVmEnd::Why::Stopped, 0};
    if (exit.kind != VmExit::Kind::Reboot) return end_of(exit);
    if (slot.def.reboot == RebootPolicy::Exit) {
        message(fmt::format("vm {} rebooted; not restarting it (\"reboot\": \"exit\")", slot.def.name));
        return FleetVmEnd{FleetVmEnd::Why::PowerOff, 0};
    }
    return std::nullopt;
}

std::string Fleet::describe_state() const {
    std::lock_guard lock(mutex_);
    std::string text;
    for (const auto& slot : slots_)
        if (slot->running) text += slot->running->describe_state(fmt::format("disco: vm {}: ", slot->def.name));
    return text;
}

void Fleet::finish(Slot& slot, FleetVmEnd end) {
    message(fmt::format("vm {} ended: {} (status {})", slot.def.name, describe(end), end.status));
    std::lock_guard lock(mutex_);
    slot.end = end;
    slot.paused = false;
    notify_locked(slot);
    ended_cv_.notify_all();
}

namespace {
/// SIGINT and SIGTERM, taken from every thread and read by one watcher: the
/// first stops every VM cleanly, a second exits at once. SIGUSR1 prints the
/// state of every running VM.
class FleetSignals {
public:
    explicit FleetSignals(Fleet& fleet) : fleet_(fleet) {
        sigemptyset(&set_);
        sigaddset(&set_, SIGINT);
        sigaddset(&set_, SIGTERM);
        // Blocked before any VM thread exists, so every thread inherits it.
        pthread_sigmask(SIG_BLOCK, &set_, &old_);
        watch_.emplace(std::initializer_list<int>{SIGINT, SIGTERM, SIGUSR1}, [this](int sig) { on_signal(sig); });
    }
    ~FleetSignals() {
        watch_.reset();
        pthread_sigmask(SIG_SETMASK, &old_, nullptr);
    }
    FleetSignals(const FleetSignals&) = delete;
    FleetSignals& operator=(const FleetSignals&) = delete;

private:
    void on_signal(int sig) {
        if (sig == SIGUSR1) {
            const std::string state = "\ndisco: SIGUSR1: the VMs' state\n" + fleet_.describe_state() +
                                      "disco: " + fleet_.footprint().summary() + "\n";
            std::fputs(state.c_str(), stderr);
            return;
        }
        if (stopping_) {
            std::fprintf(stderr, "disco: SIG%s again: exiting without waiting for the VMs\n", sigabbrev_np(sig));
            std::_Exit(128 + sig);
        }
        stopping_ = true;
        std::fprintf(stderr, "disco: SIG%s: stopping every VM\n", sigabbrev_np(sig));
        fleet_.stop_all();
    }

    Fleet& fleet_;
    sigset_t set_{}, old_{};
    bool stopping_ = false;  // the watcher thread's own
    std::optional<SignalWatch> watch_;
};
}  // namespace

int run_fleet(const std::vector<std::string>& files, const FleetOptions& options, const FleetCompanion& companion) {
    auto defs = load_vm_files(files);
    if (!defs) {
        std::fprintf(stderr, "disco: %s\n", defs.error().message.c_str());
        return 2;
    }
    return run_fleet(std::move(*defs), options, companion);
}

int run_fleet(std::vector<VmDefinition> defs, const FleetOptions& options, const FleetCompanion& companion) {
    Fleet fleet(options);
    for (auto& def : defs) {
        if (auto added = fleet.add(std::move(def)); !added) {
            std::fprintf(stderr, "disco: %s\n", added.error().message.c_str());
            return 2;
        }
    }
    FleetSignals signals(fleet);
    if (auto started = fleet.start_all(); !started) {
        std::fprintf(stderr, "disco: %s\n", started.error().message.c_str());
        return 2;
    }
    std::shared_ptr<void> beside;
    if (companion) {
        auto made = companion(fleet);
        if (!made) {
            std::fprintf(stderr, "disco: %s\n", made.error().message.c_str());
            fleet.stop_all();
            fleet.wait();
            return 2;
        }
        beside = std::move(*made);
    }
    const int status = fleet.wait();
    beside.reset();  // the control socket goes once every VM has ended
    if (options.stats) {
        std::fprintf(stderr, "disco: peak %s\n", fleet.peak_footprint().summary().c_str());
        if (const std::string scan = fleet.scan_summary(); !scan.empty())
            std::fprintf(stderr, "disco: %s\n", scan.c_str());
        if (const auto cache = fleet.disk_cache_stats())
            std::fprintf(stderr, "disco: %s\n", disk_cache_summary(*cache).c_str());
    }
    if (!options.stats_file.empty() && !write_stats_document(options.stats_file, fleet.stats_json())) {
        std::fprintf(stderr, "disco: --stats %s: %s\n", options.stats_file.c_str(), std::strerror(errno));
        return status ? status : 2;
    }
    // Every VM has ended: every machine frame must be back in its pool, once
    // the disk page cache let go of its own.
    fleet.drop_disk_cache();
    if (const u64 left = fleet.machine_frames_in_use(); left != 0) {
        std::fprintf(stderr, "disco: internal error: %llu machine frames still in use after every VM ended\n",
                     static_cast<unsigned long long>(left));
        return status ? status : 1;
    }
    return status;
}
}  // namespace disco::monitor
