// What the access counters say (access_counters.hpp), as the NUMA policy
// reads it (DESIGN.md "NUMA"; the control plane's hot-pages command): how
// many counted accesses were local (a vCPU of node n reaching a frame on
// node n) or remote, over the whole machine memory and per VM, and the
// hottest guest pages. One pass over every counter, O(frames * nodes); the
// reverse map is asked only about frames that were counted.
//
// A guest page may have several frames (replicas, one per node): its entry
// sums the counts of all of them. A frame several VMs map (shared
// copy-on-write) counts for each of them, so the per-VM figures may add up
// to more than the machine's.
//
// Threads: any; the figures are a sample (access_counters.hpp), not a snapshot.
#pragma once
#include <optional>
#include <unordered_map>
#include <vector>

#include "vmm/mem/machine_memory.hpp"

namespace disco::monitor {

struct AccessSplit {
    u64 local = 0, remote = 0;
    AccessSplit& operator+=(const AccessSplit& o) {
        local += o.local;
        remote += o.remote;
        return *this;
    }
};

/// One guest page's counts, its frames' summed.
struct HotGuestPage {
    u32 vm_id = 0;
    u64 gppage = 0;
    std::vector<u64> counts;  // per node
    u64 total = 0;
    bool written = false;  // a store to any of its frames was noted
};

struct AccessReport {
    AccessSplit all;
    std::unordered_map<u32, AccessSplit> per_vm;  // by reverse-map VM id
    std::vector<AccessSplit> per_node;            // by the accessing vCPUs' node: local when the frame is on it
    std::vector<HotGuestPage> pages;              // hottest first (ties: lower VM id, then lower page)
};

/// Local and remote counts over every frame.
AccessSplit count_accesses(const MachineMemory& mm);

/// The figures, with at most `limit` pages (0: the totals only); `only_vm`:
/// pages of that VM only (the totals still cover everything).
AccessReport read_access_report(const MachineMemory& mm, usize limit, std::optional<u32> only_vm);
}  // namespace disco::monitor
