#include "vmm/monitor/numa_report.hpp"

#include <algorithm>
#include <map>

namespace disco::monitor {
namespace {
/// Calls fn(frame, split, counts) for each frame with a non-zero count.
template <class Fn>
void for_each_counted(const MachineMemory& mm, Fn fn) {
    const AccessCounters& ac = mm.access_counters();
    const unsigned nodes = ac.node_count();
    std::vector<u32> counts(nodes);
    for (u32 f = 0; f < ac.frame_count(); ++f) {
        const MachineFrame frame(f);
        bool any = false;
        for (NodeId n = 0; n < nodes; ++n) any |= (counts[n] = ac.count(frame, n)) != 0;
        if (!any) continue;
        AccessSplit split;
        const NodeId home = mm.node_of(frame);
        for (NodeId n = 0; n < nodes; ++n) (n == home ? split.local : split.remote) += counts[n];
        fn(frame, split, counts);
    }
}
}  // namespace

AccessSplit count_accesses(const MachineMemory& mm) {
    AccessSplit all;
    for_each_counted(mm, [&](MachineFrame, const AccessSplit& s, const std::vector<u32>&) { all += s; });
    return all;
}

AccessReport read_access_report(const MachineMemory& mm, usize limit, std::optional<u32> only_vm) {
    AccessReport report;
    const AccessCounters& ac = mm.access_counters();
    std::map<FrameUser, HotGuestPage> pages;  // ordered: ties break by VM, then page
    report.per_node.resize(ac.node_count());
    for_each_counted(mm, [&](MachineFrame frame, const AccessSplit& split, const std::vector<u32>& counts) {
        report.all += split;
        const NodeId home = mm.node_of(frame);
        for (NodeId n = 0; n < counts.size(); ++n)
            (n == home ? report.per_node[n].local : report.per_node[n].remote) += counts[n];
        auto users = mm.users(frame);
        if (!users) return;
        const bool written = ac.written(frame);
        for (const FrameUser& u : *users) {
            report.per_vm[u.vm] += split;
            if (limit == 0 || (only_vm && u.vm != *only_vm)) continue;
            HotGuestPage& p = pages[u];
            if (p.counts.empty()) {
                p.vm_id = u.vm;
                p.gppage = u.gppage;
                p.counts.assign(counts.size(), 0);
            }
            for (usize n = 0; n < counts.size(); ++n) p.counts[n] += counts[n];
            p.total += split.local + split.remote;
            p.written |= written;
        }
    });
    report.pages.reserve(pages.size());
    for (auto& [user, page] : pages) report.pages.push_back(std::move(page));
    const auto hotter = [](const HotGuestPage& a, const HotGuestPage& b) {
        if (a.total != b.total) return a.total > b.total;
        return a.vm_id != b.vm_id ? a.vm_id < b.vm_id : a.gppage < b.gppage;
    };
    const usize keep = std::min(limit, report.pages.size());
    std::partial_sort(report.pages.begin(), report.pages.begin() + static_cast<std::ptrdiff_t>(keep),
                      report.pages.end(), hotter);
    report.pages.resize(keep);
    return report;
}
}  // namespace disco::monitor
