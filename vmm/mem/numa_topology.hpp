// The nodes that machine memory is split into (DESIGN.md "NUMA"): the host's
// real nodes as libnuma reports them, or N simulated nodes on any host so that
// placement policy can be tested and measured on a one-node machine.
// Immutable once built; any thread may read it.
#pragma once
#include <vector>

#include "vmm/mem/machine_frame.hpp"

namespace disco {

/// One node of the topology.
struct NumaNode {
    /// The host's (libnuma) node number; -1 where libnuma reports NUMA unavailable.
    int host_node = -1;
    /// Simulated: a slice of host memory with no placement of its own.
    bool simulated = false;
    /// Host CPUs to bind this node's vCPU threads to: the node's CPUs that this
    /// process may run on. A simulated node lists every CPU the process may
    /// run on, since all simulated nodes share the same host memory.
    std::vector<unsigned> cpus;
};

class NumaTopology {
public:
    /// ACPI SLIT units (ACPI 6.4 §5.2.17): 10 is a node's distance to itself.
    static constexpr u32 kLocalDistance = 10;
    static constexpr u32 kDefaultRemoteDistance = 20;

    /// The host's nodes that hold memory this process may use (libnuma's
    /// mems_allowed), with their CPUs and distances; single_node() where
    /// numa_available() < 0.
    static NumaTopology host();
    /// One node standing for the whole host, used when libnuma has no NUMA support.
    static NumaTopology single_node();
    /// `n` >= 1 simulated nodes; distinct nodes are `remote_distance` apart.
    static NumaTopology simulated(unsigned n, u32 remote_distance = kDefaultRemoteDistance);

    unsigned node_count() const { return static_cast<unsigned>(nodes_.size()); }
    /// Precondition: id < node_count().
    const NumaNode& node(NodeId id) const { return nodes_[id]; }
    /// Relative access cost from a CPU of node `a` to memory of node `b`; precondition: both < node_count().
    u32 distance(NodeId a, NodeId b) const { return distance_[a * nodes_.size() + b]; }
    /// Whether nodes are the host's own, so that memory must be bound to them.
    bool real() const { return !nodes_.empty() && !nodes_[0].simulated && nodes_[0].host_node >= 0; }
    /// The other nodes in the order an allocation falls back to them: nearest first, then by number.
    std::vector<NodeId> fallback_order(NodeId from) const;

private:
    std::vector<NumaNode> nodes_;
    std::vector<u32> distance_;  // node_count() x node_count(), row = CPU's node
};

/// The CPUs this process may run on (sched_getaffinity), ascending.
std::vector<unsigned> allowed_cpus();
}  // namespace disco
