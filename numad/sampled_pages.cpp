#include "numad/sampled_pages.hpp"

#include <algorithm>
#include <limits>
#include <map>
#include <string>
#include <utility>

namespace disco::numad {

void merge_resolved(HotPageBatch& batch, const std::vector<ResolvedPage>& pages, std::uint32_t weight,
                    SampleMerge& figures) {
    std::map<std::pair<std::string, std::uint64_t>, std::size_t> index;
    for (std::size_t i = 0; i < batch.pages.size(); ++i) index[{batch.pages[i].vm, batch.pages[i].gpa}] = i;
    for (const ResolvedPage& p : pages) {
        if (!p.accessor_node || *p.accessor_node >= batch.nodes || p.node >= batch.nodes) {
            ++figures.no_accessor;
            continue;
        }
        auto [it, added] = index.try_emplace({p.vm, p.gpa}, batch.pages.size());
        if (added) {
            HotPage page;
            page.vm = p.vm;
            page.gpa = p.gpa;
            page.home = p.node;
            page.state = p.state;
            page.written = true;  // unknown: see the header
            page.counts.assign(batch.nodes, 0);
            batch.pages.push_back(std::move(page));
            ++figures.added_pages;
        }
        HotPage& page = batch.pages[it->second];
        if (page.counts.size() != batch.nodes) continue;  // parse_hot_pages guarantees it; be sure
        std::uint32_t& count = page.counts[*p.accessor_node];
        const std::uint32_t add = std::min(weight, std::numeric_limits<std::uint32_t>::max() - count);
        count += add;
        page.total += add;
        ++figures.merged;
    }
}

Result<SampleMerge, ClientError> add_sampled_accesses(MonitorClient& client, HotPageBatch& batch,
                                                      std::span<const PerfSample> samples, std::uint32_t weight) {
    SampleMerge figures;
    if (batch.nodes == 0) return figures;  // no machine memory yet: nothing to resolve into
    for (std::size_t at = 0; at < samples.size(); at += max_resolve_batch) {
        const auto part = samples.subspan(at, std::min(max_resolve_batch, samples.size() - at));
        const ResolvedSamples r = DISCO_TRY(resolve_addresses(client, part));
        figures.samples += part.size();
        figures.unresolved += r.unresolved;
        merge_resolved(batch, r.pages, weight, figures);
    }
    return figures;
}

}  // namespace disco::numad
