// The daemon's figures, rewritten atomically (a temporary file renamed over it) at the end of
// every interval, so that `disco-numad --status` — another process, any time — reads one whole
// interval's state without talking to the daemon. numad/README.md shows the format.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "vmm/util/result.hpp"

namespace disco::numad {

struct VmFigures {
    std::string name;
    std::uint64_t local = 0;  // accesses counted since the daemon started
    std::uint64_t remote = 0;
    std::uint64_t interval_local = 0;  // in the last interval
    std::uint64_t interval_remote = 0;
    std::uint64_t migrations = 0;
    std::uint64_t replications = 0;
    std::uint64_t failed = 0;  // moves the monitor refused
    std::uint64_t frozen = 0;  // pages frozen now
};

struct DaemonStatus {
    long pid = 0;
    std::int64_t updated = 0;  // unix time of the write
    std::uint64_t interval = 0;
    bool connected = false;
    bool dry_run = false;
    std::string socket;
    std::string access_source;  // which counters drive the policy
    std::string topology;       // Topology::describe()
    double cpu_user_s = 0;
    double cpu_system_s = 0;
    std::vector<VmFigures> vms;
};

nlohmann::json to_json(const DaemonStatus& s);
Result<DaemonStatus, Error> status_from_json(const nlohmann::json& j);

/// Writes `s` to `path` atomically, making the folder (0755) if it is missing.
Result<void, Error> write_status(const std::string& path, const DaemonStatus& s);
/// Reads the file; the raw JSON text goes to `raw` when asked for.
Result<DaemonStatus, Error> read_status(const std::string& path, std::string* raw = nullptr);

/// The table `disco-numad --status` prints; `now` (unix time) says how old the figures are.
std::string format_status(const DaemonStatus& s, std::int64_t now);

double local_ratio(std::uint64_t local, std::uint64_t remote);  // 0..1; 0 when no accesses

}  // namespace disco::numad
