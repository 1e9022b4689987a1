// Host PMU samples (perf_sampler.hpp) as page accesses: each interval's samples are mapped to
// guest pages by the monitor (resolve-addresses, in batches of max_resolve_batch) and merged
// into that interval's hot-page counts before the policy runs. One sample stands for `weight`
// accesses by the node of the vCPU that took it (--sample-weight, numad/README.md).
//
// A sampled page the monitor's own counters did not list is added with the sampled counts
// alone: its home is the sampled frame's node and it is taken as written (a sample does not
// say whether it was a store), so samples alone can migrate a page but never replicate one.
// Samples whose thread is no vCPU's (a device I/O thread, the monitor's own) have no node to
// count for and are left out.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "numad/hot_pages.hpp"
#include "numad/monitor_api.hpp"
#include "numad/perf_sampler.hpp"

namespace disco::numad {

struct SampleMerge {
    std::uint64_t samples = 0;      // sent to the monitor
    std::uint64_t unresolved = 0;   // outside machine memory, or on frames no VM maps
    std::uint64_t no_accessor = 0;  // resolved pages whose thread is no vCPU's
    std::uint64_t merged = 0;       // resolved pages counted
    std::uint64_t added_pages = 0;  // pages the batch did not list before
};

/// Adds `weight` accesses by each page's accessor node to `batch` (counts saturate).
void merge_resolved(HotPageBatch& batch, const std::vector<ResolvedPage>& pages, std::uint32_t weight,
                    SampleMerge& figures);

/// Resolves `samples` with as many requests as they need and merges them into `batch`.
Result<SampleMerge, ClientError> add_sampled_accesses(MonitorClient& client, HotPageBatch& batch,
                                                      std::span<const PerfSample> samples, std::uint32_t weight);

}  // namespace disco::numad
