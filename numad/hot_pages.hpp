// One interval's counters as the monitor reports them (`__com.disco-project_hot-pages`,
// configs/control-schema.md): the hottest guest pages with their per-node access counts,
// plus per-VM local/remote totals. Plain data: the policy reads it, monitor_api.cpp fills it.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace disco::numad {

/// What the monitor says a guest page's mapping is. Only private pages may be migrated or
/// replicated; the others are left alone (a COW page belongs to several VMs, a replicated one
/// has a copy on every node already, a moving one is in the middle of an operation).
enum class PageState { private_page, replicated, shared, moving };

struct HotPage {
    std::string vm;
    std::uint64_t gpa = 0;  // guest-physical address of the page
    unsigned home = 0;      // the node of the page's primary machine frame
    PageState state = PageState::private_page;
    bool written = false;               // a store was seen since the last reset
    std::vector<std::uint32_t> counts;  // accesses per node since the last reset
    std::uint64_t total = 0;            // sum of counts
};

/// Accesses by one VM's vCPUs to frames on their own node (local) or another (remote).
struct VmAccesses {
    std::string name;
    std::uint64_t local = 0;
    std::uint64_t remote = 0;
};

struct HotPageBatch {
    unsigned nodes = 1;
    bool simulated = false;
    std::uint64_t local = 0;  // all VMs, this interval
    std::uint64_t remote = 0;
    std::vector<VmAccesses> vms;
    std::vector<HotPage> pages;  // hottest first as sent; the policy does not rely on it
};

}  // namespace disco::numad
