// The NUMA nodes the policy places pages on. Real nodes come from libnuma (node ids, SLIT
// distances, CPUs); when the monitor presents simulated nodes (`--numa-sim N`, DESIGN.md
// "NUMA") they come from its `__com.disco-project_numa` reply, which also says how full each
// node's frame pool is and where each VM's vCPUs live.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "numad/monitor_client.hpp"

namespace disco::numad {

struct NodeInfo {
    unsigned id = 0;
    std::vector<unsigned> distances;  // to every node, 10 = local (ACPI SLIT convention)
    std::vector<unsigned> cpus;       // host CPUs; empty for simulated nodes
    std::uint64_t frames_total = 0;   // the monitor's pool on this node (0 when unknown)
    std::uint64_t frames_free = 0;
};

struct VmPlacement {
    std::string name;
    std::vector<unsigned> vcpu_nodes;  // home node of each vCPU
    std::vector<std::uint64_t> frames_per_node;
};

struct Topology {
    bool simulated = false;
    std::vector<NodeInfo> nodes;
    std::vector<VmPlacement> vms;
    unsigned reported_nodes = 0;   // how many nodes the monitor's reply listed (0: no memory yet)
    std::string describe() const;  // one line for the log
};

/// The host's nodes as libnuma sees them (one node 0 with every CPU where NUMA is unavailable).
Topology host_topology();

/// From a `numa` reply: simulated nodes as the monitor describes them; real ones from libnuma,
/// with the monitor's pool figures added. A malformed reply is a `protocol` error.
Result<Topology, ClientError> topology_from_reply(const nlohmann::json& reply);

/// Asks the monitor (`__com.disco-project_numa`) and builds the topology.
Result<Topology, ClientError> query_topology(MonitorClient& client);

}  // namespace disco::numad
