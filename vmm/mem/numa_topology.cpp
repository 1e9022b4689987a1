#include "vmm/mem/numa_topology.hpp"

#include <numa.h>
#include <sched.h>

#include <algorithm>

namespace disco {
namespace {

std::vector<unsigned> libnuma_node_cpus(int host_node) {
    std::vector<unsigned> cpus;
    bitmask* mask = numa_allocate_cpumask();
    if (!mask) return cpus;
    if (numa_node_to_cpus(host_node, mask) == 0) {
        for (unsigned c = 0; c < mask->size; ++c)
            if (numa_bitmask_isbitset(mask, c)) cpus.push_back(c);
    }
    numa_bitmask_free(mask);
    return cpus;
}

/// Keeps the CPUs the process may use, so that binding a thread to them cannot fail;
/// when the affinity is unknown the node's list is all there is.
std::vector<unsigned> usable(std::vector<unsigned> node_cpus, const std::vector<unsigned>& allowed) {
    if (allowed.empty()) return node_cpus;
    std::erase_if(node_cpus, [&](unsigned c) { return !std::binary_search(allowed.begin(), allowed.end(), c); });
    return node_cpus;
}
}  // namespace

std::vector<unsigned> allowed_cpus() {
    std::vector<unsigned> cpus;
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0) return cpus;
    for (unsigned c = 0; c < CPU_SETSIZE; ++c)
        if (CPU_ISSET(c, &set)) cpus.push_back(c);
    return cpus;
}

NumaTopology NumaTopology::single_node() {
    NumaTopology t;
    t.nodes_.push_back(NumaNode{.host_node = -1, .simulated = false, .cpus = allowed_cpus()});
    t.distance_ = {kLocalDistance};
    return t;
}

NumaTopology NumaTopology::simulated(unsigned n, u32 remote_distance) {
    NumaTopology t;
    const auto cpus = allowed_cpus();
    for (unsigned i = 0; i < std::max(n, 1u); ++i)
        t.nodes_.push_back(NumaNode{.host_node = -1, .simulated = true, .cpus = cpus});
    const usize count = t.nodes_.size();
    t.distance_.assign(count * count, remote_distance);
    for (usize i = 0; i < count; ++i) t.distance_[i * count + i] = kLocalDistance;
    return t;
}

NumaTopology NumaTopology::host() {
    if (numa_available() < 0) return single_node();
    std::vector<int> ids;
    if (bitmask* mems = numa_get_mems_allowed()) {
        for (int n = 0; n <= numa_max_node(); ++n)
            if (numa_bitmask_isbitset(mems, static_cast<unsigned>(n))) ids.push_back(n);
        numa_bitmask_free(mems);
    }
    if (ids.empty()) return single_node();

    NumaTopology t;
    const auto allowed = allowed_cpus();
    for (int id : ids)
        t.nodes_.push_back(
            NumaNode{.host_node = id, .simulated = false, .cpus = usable(libnuma_node_cpus(id), allowed)});
    const usize count = ids.size();
    t.distance_.resize(count * count);
    for (usize a = 0; a < count; ++a) {
        for (usize b = 0; b < count; ++b) {
            // numa_distance() gives 0 when the firmware published no SLIT.
            const int d = numa_distance(ids[a], ids[b]);
            t.distance_[a * count + b] =
                d > 0 ? static_cast<u32>(d) : (a == b ? kLocalDistance : kDefaultRemoteDistance);
        }
    }
    return t;
}

std::vector<NodeId> NumaTopology::fallback_order(NodeId from) const {
    std::vector<NodeId> order;
    for (NodeId n = 0; n < node_count(); ++n)
        if (n != from) order.push_back(n);
    std::stable_sort(order.begin(), order.end(),
                     [&](NodeId a, NodeId b) { return distance(from, a) < distance(from, b); });
    return order;
}
}  // namespace disco
