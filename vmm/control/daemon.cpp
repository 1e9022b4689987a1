#include "vmm/control/daemon.hpp"

#include <fmt/format.h>
#include <pthread.h>
#include <systemd/sd-daemon.h>

#include <algorithm>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <mutex>

#include "vmm/control/event_queue.hpp"
#include "vmm/control/metrics_text.hpp"
#include "vmm/control/qmp_commands.hpp"
#include "vmm/control/qmp_server.hpp"
#include "vmm/monitor/fleet.hpp"
#include "vmm/monitor/signal_watch.hpp"

namespace disco::control {
namespace {
namespace fs = std::filesystem;

void say(const std::string& line) { std::fprintf(stderr, "disco: daemon: %s\n", line.c_str()); }

/// The config folder's *.json files, in name order (so VMs start in a known order).
Result<std::vector<fs::path>, Error> config_files(const std::string& dir) {
    std::error_code ec;
    fs::directory_iterator it(dir, ec);
    if (ec) return fail(Error{fmt::format("--config-dir {}: {}", dir, ec.message())});
    std::vector<fs::path> files;
    for (const auto& entry : it)
        if (entry.path().extension() == ".json" && entry.is_regular_file(ec)) files.push_back(entry.path());
    std::sort(files.begin(), files.end());
    return files;
}

/// Why the daemon is to stop, and whether the VMs' states changed (STATUS=).
class Wakeup {
public:
    void stop(std::string why) {
        std::lock_guard lock(mutex_);
        if (why_.empty()) why_ = std::move(why);
        cv_.notify_all();
    }
    void changed() {
        std::lock_guard lock(mutex_);
        changed_ = true;
        cv_.notify_all();
    }
    /// Waits for either; returns the reason to stop, or "" for a change.
    std::string wait() {
        std::unique_lock lock(mutex_);
        cv_.wait(lock, [this] { return !why_.empty() || changed_; });
        changed_ = false;
        return why_;
    }

private:
    std::mutex mutex_;
    std::condition_variable cv_;
    std::string why_;
    bool changed_ = false;
};

std::string status_line(const monitor::Fleet& fleet, const std::string& socket, usize rejected) {
    const auto all = fleet.statuses();
    const auto running = std::count_if(all.begin(), all.end(), [](const monitor::FleetVmStatus& vm) {
        return vm.state == monitor::FleetVmState::Running || vm.state == monitor::FleetVmState::Stopping;
    });
    const auto paused = std::count_if(all.begin(), all.end(), [](const monitor::FleetVmStatus& vm) {
        return vm.state == monitor::FleetVmState::Paused;
    });
    std::string line = fmt::format("{} of {} VM{} running", running, all.size(), all.size() == 1 ? "" : "s");
    if (paused) line += fmt::format(", {} paused", paused);
    line += fmt::format("; control socket {}", socket);
    if (rejected) line += fmt::format("; {} config file{} rejected", rejected, rejected == 1 ? "" : "s");
    return line;
}
}  // namespace

int run_daemon(const DaemonOptions& options) {
    // SIGINT and SIGTERM go to the watcher: blocked before any thread exists, so every thread inherits it.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

    auto files = config_files(options.config_dir);
    if (!files) {
        say(files.error().message);
        return 2;
    }
    auto events = EventQueue::create();
    if (!events) {
        say(events.error().message);
        return 2;
    }
    Wakeup wakeup;
    EventQueue& queue = **events;
    monitor::FleetOptions fleet_options;
    fleet_options.numa_sim = options.numa_sim;
    fleet_options.min_bytes_per_node = options.machine_bytes_per_node;
    fleet_options.on_state_change = [&queue, &wakeup](const monitor::FleetVmStatus& vm) {
        queue.push(vm_state_event(vm));
        wakeup.changed();
    };
    monitor::Fleet fleet(std::move(fleet_options));

    // Every good file's VMs; a bad one is named with its field and reason, and skipped.
    usize rejected = 0;
    for (const fs::path& file : *files) {
        auto defs = monitor::load_vm_file(file.string());
        if (!defs) {
            say(fmt::format("{} (file skipped)", defs.error().message));
            ++rejected;
            continue;
        }
        for (auto& def : *defs) {
            if (auto added = fleet.add(std::move(def)); !added) {
                say(fmt::format("{}: {} (VM skipped)", file.string(), added.error().message));
                ++rejected;
            }
        }
    }

    QmpCommands commands(fleet, {.base_dir = options.config_dir,
                                 .max_vms = options.max_vms,
                                 .on_quit = [&wakeup] { wakeup.stop("quit"); },
                                 .events = &queue});
    const std::string socket = options.socket_path.empty() ? default_socket_path() : options.socket_path;
    auto server = QmpServer::start(
        {.socket_path = socket, .group = options.socket_group, .allowed_uids = options.allowed_uids}, commands, queue);
    if (!server) {
        say(server.error().message);
        return 2;
    }
    std::unique_ptr<MetricsServer> metrics;
    if (options.metrics) {
        auto started = MetricsServer::start({.address = *options.metrics}, [&fleet] { return fleet_metrics(fleet); });
        if (!started) {
            say(fmt::format("--metrics {}: {}", to_string(*options.metrics), started.error().message));
            return 2;
        }
        metrics = std::move(*started);
    }

    bool signalled = false;  // the watcher thread's own
    monitor::SignalWatch signals({SIGINT, SIGTERM, SIGUSR1}, [&](int sig) {
        if (sig == SIGUSR1) {
            std::fputs(("\ndisco: SIGUSR1: the VMs' state\n" + fleet.describe_state()).c_str(), stderr);
            return;
        }
        if (signalled) {
            std::fprintf(stderr, "disco: daemon: SIG%s again: exiting without waiting for the VMs\n",
                         sigabbrev_np(sig));
            std::_Exit(128 + sig);
        }
        signalled = true;
        wakeup.stop(fmt::format("SIG{}", sigabbrev_np(sig)));
    });

    if (auto started = fleet.start_all(); !started) {
        say(started.error().message);
        return 2;
    }
    say(fmt::format("serving {}", socket));
    if (metrics) say(fmt::format("metrics at {}", metrics->where()));

    // STATUS= again whenever it changes (sd_notify blocks while systemd's queue is full: say only what is new).
    std::string why, said = status_line(fleet, socket, rejected);
    sd_notifyf(0, "READY=1\nSTATUS=%s", said.c_str());
    while ((why = wakeup.wait()).empty()) {
        if (std::string now = status_line(fleet, socket, rejected); now != said) {
            said = std::move(now);
            sd_notifyf(0, "STATUS=%s", said.c_str());
        }
    }

    say(fmt::format("{}: stopping every VM", why));
    sd_notify(0, "STOPPING=1\nSTATUS=Stopping every VM");
    fleet.stop_all();
    fleet.wait();
    server->reset();  // after the VMs' last events, which it sends on its way out
    metrics.reset();
    say("every VM has stopped; exiting");
    return 0;
}
}  // namespace disco::control
