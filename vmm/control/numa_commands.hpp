// The control plane's NUMA and memory commands (configs/control-schema.md,
// "NUMA and memory"): what the NUMA daemon (disco-numad) reads and asks —
// the access counters' hottest pages, page migration, replication and
// collapse — and the placement and footprint figures the CLI shows. Each
// takes the request's arguments, already checked for names and types by
// QmpCommands, checks their values and the VM, and returns the reply's
// value or one line saying why not (a GenericError: the session goes on).
//
// Threads: any (the Fleet locks; a page operation runs under the Fleet's lock
// so that the VM's RAM cannot go away during it).
#pragma once
#include <expected>
#include <nlohmann/json.hpp>
#include <string>

#include "vmm/control/event_queue.hpp"
#include "vmm/monitor/fleet.hpp"

namespace disco::control {

using NumaResult = std::expected<nlohmann::json, std::string>;

/// hot-pages {vm?, limit?, reset?}
NumaResult numa_hot_pages(monitor::Fleet& fleet, EventQueue* events, const nlohmann::json& args);
/// pages-migrate {vm, gpas: [...] (1..kMaxMigrateBatch), node} -> {node, migrated: [gpa...],
/// failed: [{gpa, desc}]}: one batch, two shootdowns in all (GuestRam::migrate_many); event
/// PAGES_MIGRATED {vm, to, gpas} for the pages that moved.
inline constexpr u64 kMaxMigrateBatch = 1024;
NumaResult numa_pages_migrate(monitor::Fleet& fleet, EventQueue* events, const nlohmann::json& args);
/// resolve-addresses {samples: [{addr, tid?}] (1..kMaxResolveBatch)} -> {pages: [{vm, gpa,
/// node, state, accessor_node?}], unresolved}: host virtual addresses (PMU samples of the
/// monitor's accesses) turned into the guest pages whose machine frame holds them, one entry
/// per user of the frame; accessor_node is the home node of the vCPU whose host thread is tid.
inline constexpr u64 kMaxResolveBatch = 1024;
NumaResult numa_resolve_addresses(monitor::Fleet& fleet, EventQueue* events, const nlohmann::json& args);
/// page-migrate {vm, gpa, node} -> {node}; event PAGE_MIGRATED
NumaResult numa_page_migrate(monitor::Fleet& fleet, EventQueue* events, const nlohmann::json& args);
/// page-replicate {vm, gpa} -> {nodes}; event PAGE_REPLICATED
NumaResult numa_page_replicate(monitor::Fleet& fleet, EventQueue* events, const nlohmann::json& args);
/// page-collapse {vm, gpa} -> {}; event PAGE_COLLAPSED
NumaResult numa_page_collapse(monitor::Fleet& fleet, EventQueue* events, const nlohmann::json& args);
/// numa {vm?} -> nodes and per-VM placement
NumaResult numa_topology(monitor::Fleet& fleet, EventQueue* events, const nlohmann::json& args);
/// memory {vm?} -> footprint figures (KSM's names)
NumaResult numa_memory(monitor::Fleet& fleet, EventQueue* events, const nlohmann::json& args);
/// How many of the VM's machine frames are on each of the machine's nodes
/// (a replicated page's replicas each once): numa's frames_per_node, the
/// metrics' disco_vm_node_frames. One pass over the VM's pmap.
std::vector<u64> vm_frames_per_node(const GuestRam& ram, const MachineMemory& mm);
/// vcpu-pin {vm, vcpu, node} -> {}
NumaResult numa_vcpu_pin(monitor::Fleet& fleet, EventQueue* events, const nlohmann::json& args);
}  // namespace disco::control
