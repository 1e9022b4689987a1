#include "numad/topology.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <numa.h>
#include <unistd.h>

namespace disco::numad {

using json = nlohmann::json;

Topology host_topology() {
    Topology t;
    if (numa_available() < 0) {
        NodeInfo only{0, {10}, {}, 0, 0};
        const long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        for (long c = 0; c < cpus; ++c) only.cpus.push_back(static_cast<unsigned>(c));
        t.nodes.push_back(std::move(only));
        return t;
    }
    const int max_node = numa_max_node();
    bitmask* cpus = numa_allocate_cpumask();
    for (int n = 0; n <= max_node; ++n) {
        if (!numa_bitmask_isbitset(numa_nodes_ptr, static_cast<unsigned>(n))) continue;  // a hole in the ids
        NodeInfo node;
        node.id = static_cast<unsigned>(n);
        for (int m = 0; m <= max_node; ++m) node.distances.push_back(static_cast<unsigned>(numa_distance(n, m)));
        if (numa_node_to_cpus(n, cpus) == 0) {
            for (unsigned c = 0; c < cpus->size; ++c)
                if (numa_bitmask_isbitset(cpus, c)) node.cpus.push_back(c);
        }
        t.nodes.push_back(std::move(node));
    }
    numa_free_cpumask(cpus);
    return t;
}

namespace {

std::vector<std::uint64_t> unsigned_array(const json& object, const char* name) {
    const json& a = object.at(name);
    if (!a.is_array()) throw json::type_error::create(302, fmt::format("'{}' is not an array", name), &a);
    std::vector<std::uint64_t> out;
    for (const json& v : a) {
        if (!v.is_number_unsigned())
            throw json::type_error::create(
                302, fmt::format("'{}' holds a value that is not a non-negative integer", name), &v);
        out.push_back(v.get<std::uint64_t>());
    }
    return out;
}

std::uint64_t unsigned_value(const json& object, const char* name) {
    const json& v = object.at(name);
    if (!v.is_number_unsigned())
        throw json::type_error::create(302, fmt::format("'{}' is not a non-negative integer", name), &v);
    return v.get<std::uint64_t>();
}

}  // namespace

Result<Topology, ClientError> topology_from_reply(const json& reply) {
    try {
        const bool simulated = reply.at("simulated").get<bool>();
        Topology t = simulated ? Topology{} : host_topology();
        t.simulated = simulated;
        const json& nodes = reply.at("nodes");
        if (!nodes.is_array()) throw json::type_error::create(302, "'nodes' is not an array", &nodes);
        // No nodes: the monitor has no machine memory yet; the host's nodes stand in.
        if (!simulated && !nodes.empty() && nodes.size() != t.nodes.size())
            return fail(
                ClientError{ClientError::Kind::protocol,
                            fmt::format("the monitor reports {} real nodes, libnuma {}", nodes.size(), t.nodes.size()),
                            {}});
        t.reported_nodes = static_cast<unsigned>(nodes.size());
        for (std::size_t i = 0; i < nodes.size(); ++i) {
            const json& n = nodes[i];
            if (simulated) {
                NodeInfo info;
                info.id = static_cast<unsigned>(unsigned_value(n, "node"));
                for (auto d : unsigned_array(n, "distances")) info.distances.push_back(static_cast<unsigned>(d));
                if (info.id != i || info.distances.size() != nodes.size())
                    throw json::other_error::create(
                        501, fmt::format("node {} is out of order or has {} distances", info.id, info.distances.size()),
                        &n);
                t.nodes.push_back(std::move(info));
            }
            if (i >= t.nodes.size()) break;
            t.nodes[i].frames_total = unsigned_value(n, "frames_total");
            t.nodes[i].frames_free = unsigned_value(n, "frames_free");
        }
        if (auto vms = reply.find("vms"); vms != reply.end()) {
            for (const json& v : *vms) {
                VmPlacement vm;
                vm.name = v.at("name").get<std::string>();
                for (auto n : unsigned_array(v, "vcpu_nodes")) vm.vcpu_nodes.push_back(static_cast<unsigned>(n));
                vm.frames_per_node = unsigned_array(v, "frames_per_node");
                t.vms.push_back(std::move(vm));
            }
        }
        return t;
    } catch (const json::exception& e) {
        return fail(ClientError{
            ClientError::Kind::protocol, fmt::format("__com.disco-project_numa: unexpected reply: {}", e.what()), {}});
    }
}

Result<Topology, ClientError> query_topology(MonitorClient& client) {
    const json reply = DISCO_TRY(client.execute("__com.disco-project_numa"));
    return topology_from_reply(reply);
}

std::string Topology::describe() const {
    std::vector<std::string> parts;
    for (const auto& n : nodes) {
        parts.push_back(n.cpus.empty() ? fmt::format("node {}", n.id)
                                       : fmt::format("node {} ({} CPUs)", n.id, n.cpus.size()));
    }
    return fmt::format("{} {} node{}: {}", nodes.size(), simulated ? "simulated" : "host", nodes.size() == 1 ? "" : "s",
                       fmt::join(parts, ", "));
}

}  // namespace disco::numad
