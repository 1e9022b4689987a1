#include "vmm/control/cli_commands.hpp"

#include <fmt/format.h>
#include <grp.h>
#include <pwd.h>

#include <charconv>
#include <cstdio>

#include "vmm/control/cli_console.hpp"
#include "vmm/control/qmp_server.hpp"
#include "vmm/util/size.hpp"

namespace disco::control {
namespace {
/// A number, or a name looked up with `lookup`.
template <class Id, class Lookup>
std::optional<Id> id_of(const std::string& text, Lookup lookup) {
    unsigned long value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec == std::errc() && end == text.data() + text.size()) return static_cast<Id>(value);
    return lookup(text.c_str());
}

std::optional<gid_t> group_id(const std::string& name) {
    return id_of<gid_t>(name, [](const char* n) -> std::optional<gid_t> {
        const group* g = ::getgrnam(n);
        return g ? std::optional<gid_t>(g->gr_gid) : std::nullopt;
    });
}

std::optional<uid_t> user_id(const std::string& name) {
    return id_of<uid_t>(name, [](const char* n) -> std::optional<uid_t> {
        const passwd* p = ::getpwnam(n);
        return p ? std::optional<uid_t>(p->pw_uid) : std::nullopt;
    });
}

int usage_error(const std::string& message) {
    std::fprintf(stderr, "disco: %s\n", message.c_str());
    return 2;
}
}  // namespace

ControlSubcommands::ControlSubcommands(CLI::App& app) {
    daemon_ = app.add_subcommand("daemon",
                                 "Run the VMs of a config folder as a service, controlled over a QMP socket "
                                 "(configs/control-schema.md)");
    daemon_
        ->add_option("--config-dir", daemon_options_.config_dir,
                     "Folder of VM definitions: every *.json file in it (configs/vm-schema.md)")
        ->required();
    daemon_->add_option("--socket", daemon_options_.socket_path,
                        fmt::format("The control socket (default {})", default_socket_path()));
    daemon_->add_option("--socket-group", group_,
                        "Let this group's members connect too: the socket becomes 0660 and its folder 0750");
    daemon_->add_option("--allow-user", allow_users_,
                        "A further user (name or uid) allowed to connect, besides this one and root; repeat for more");
    daemon_
        ->add_option("--machine-memory", machine_memory_,
                     "Machine memory per NUMA node for all the VMs together, e.g. 8G (address space, "
                     "committed as used)")
        ->capture_default_str();
    daemon_
        ->add_option("--numa-sim", daemon_options_.numa_sim,
                     "Present N simulated NUMA nodes to every VM (0: the host's real nodes)")
        ->check(CLI::Range(0u, 64u))
        ->capture_default_str();
    daemon_->add_option("--max-vms", daemon_options_.max_vms, "The most VMs the monitor holds")
        ->check(CLI::Range(1u, 4096u))
        ->capture_default_str();
    daemon_->add_option("--metrics", metrics_,
                        "Serve the monitor's figures for Prometheus (GET /metrics) at ADDR: unix:PATH or "
                        "tcp:HOST:PORT, HOST a loopback address (configs/control-schema.md, \"Metrics\"); off unless "
                        "given");

    const std::pair<const char*, const char*> clients[] = {
        {"list", "List the VMs of a running monitor (disco daemon)"},
        {"status", "Show one VM of a running monitor"},
        {"start", "Start a VM that is shut off"},
        {"stop", "Stop a running VM and wait until it has stopped"},
        {"suspend", "Pause a running VM: its vCPUs stop until resume"},
        {"resume", "Let a paused VM run again"},
        {"shutdown", "Ask a running VM's guest to power off (QMP system_powerdown); returns at once"},
    };
    const auto connection_flags = [this](CLI::App* sub) {
        sub->add_option("--socket", client_options_.socket_path,
                        fmt::format("The monitor's control socket (default {})", default_socket_path()));
        sub->add_option("--timeout", client_options_.timeout_s, "Seconds to wait for the monitor")
            ->capture_default_str();
    };
    const auto client_flags = [&](CLI::App* sub) {
        connection_flags(sub);
        sub->add_flag("--json", client_options_.json, "Print the monitor's reply as JSON, for scripts");
    };
    for (const auto& [name, help] : clients) {
        CLI::App* sub = app.add_subcommand(name, help);
        client_flags(sub);
        if (std::string(name) != "list") sub->add_option("name", vm_, "The VM")->required();
        clients_.emplace_back(name, sub);
    }

    console_ = app.add_subcommand("console",
                                  "Attach this terminal to a running VM's console (a pty both ways, a log read-only); "
                                  "Ctrl-A x leaves");
    connection_flags(console_);
    console_->add_option("name", vm_, "The VM")->required();
    CLI::App* stats = app.add_subcommand("stats", "Memory footprint of a running monitor's VMs (KSM's figures)");
    client_flags(stats);
    stats->add_option("name", numa_request_.vm, "Only this VM");
    numa_clients_.emplace_back("stats", stats);
    CLI::App* numa = app.add_subcommand("numa", "NUMA nodes and each VM's placement; page operations");
    client_flags(numa);
    numa->add_option("name", numa_request_.vm, "Only this VM");
    numa_clients_.emplace_back("numa", numa);
    CLI::App* hot = numa->add_subcommand("hot", "The hottest guest pages by the access counters");
    client_flags(hot);
    hot->add_option("name", numa_request_.vm, "Only this VM's pages");
    hot->add_option("--limit", numa_request_.limit, "At most this many pages")
        ->check(CLI::Range(1u, 4096u))
        ->capture_default_str();
    numa_clients_.emplace_back("hot", hot);
    const std::pair<const char*, const char*> page_ops[] = {
        {"migrate", "Move a guest page to a node"},
        {"replicate", "Copy a read-shared guest page to every node"},
        {"collapse", "Back to one copy of a replicated guest page"},
    };
    for (const auto& [name, help] : page_ops) {
        CLI::App* sub = numa->add_subcommand(name, help);
        client_flags(sub);
        sub->add_option("name", numa_request_.vm, "The VM")->required();
        sub->add_option("gpa", numa_request_.gpa, "The page's guest-physical address (decimal or 0x hex)")->required();
        if (std::string(name) == "migrate") sub->add_option("node", numa_request_.node, "The node")->required();
        numa_clients_.emplace_back(name, sub);
    }
}

std::optional<int> ControlSubcommands::run() const {
    for (const auto& [name, sub] : clients_)
        if (sub->parsed()) return run_client(name, vm_, client_options_);
    if (console_->parsed()) return run_console_client(vm_, client_options_);
    // Deepest first: `numa hot` parses `numa` too.
    for (auto it = numa_clients_.rbegin(); it != numa_clients_.rend(); ++it) {
        if (!it->second->parsed()) continue;
        NumaClientRequest request = numa_request_;
        request.action = it->first;
        return run_numa_client(request, client_options_);
    }
    if (!daemon_->parsed()) return std::nullopt;

    DaemonOptions options = daemon_options_;
    if (!group_.empty()) {
        options.socket_group = group_id(group_);
        if (!options.socket_group) return usage_error(fmt::format("--socket-group: no group '{}'", group_));
    }
    for (const auto& user : allow_users_) {
        const auto uid = user_id(user);
        if (!uid) return usage_error(fmt::format("--allow-user: no user '{}'", user));
        options.allowed_uids.push_back(*uid);
    }
    auto bytes = parse_size(machine_memory_);
    if (!bytes) return usage_error(fmt::format("--machine-memory: {}", bytes.error().message));
    options.machine_bytes_per_node = *bytes;
    if (daemon_->count("--metrics") > 0) {
        auto address = parse_metrics_address(metrics_);
        if (!address) return usage_error(fmt::format("--metrics {}: {}", metrics_, address.error().message));
        options.metrics = std::move(*address);
    }
    return run_daemon(options);
}
}  // namespace disco::control
