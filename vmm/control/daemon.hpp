// `disco daemon`: the monitor as a service. It runs every VM defined by a
// *.json file in the config folder (configs/vm-schema.md; a bad file is
// reported — file, field, reason — and skipped, the others run), serves the
// control socket (configs/control-schema.md), tells systemd when it is ready
// and how its VMs are doing (Type=notify: READY=1, STATUS=, STOPPING=1),
// serves the Prometheus endpoint if asked (--metrics, metrics_server.hpp), and
// on SIGTERM or SIGINT — or QMP's quit — stops every VM and exits 0. A
// second signal exits at once. SIGUSR1 prints every running VM's state.
#pragma once
#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "vmm/control/metrics_server.hpp"
#include "vmm/util/types.hpp"

namespace disco::control {

struct DaemonOptions {
    std::string config_dir;
    std::string socket_path;  // "" = default_socket_path()
    std::optional<gid_t> socket_group;
    std::vector<uid_t> allowed_uids;
    /// Machine memory each node can hold, for every VM together (address space; committed when used).
    u64 machine_bytes_per_node = 8ull << 30;
    /// 0: the host's NUMA nodes; N: N simulated nodes (as `disco run --numa-sim`).
    unsigned numa_sim = 0;
    usize max_vms = 64;
    /// --metrics ADDR: the Prometheus endpoint (metrics_server.hpp); none unless given.
    std::optional<MetricsAddress> metrics;
};

/// Runs the daemon; returns the process exit status (2 when it cannot start).
int run_daemon(const DaemonOptions& options);
}  // namespace disco::control
