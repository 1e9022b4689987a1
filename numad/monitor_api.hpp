// The monitor commands disco-numad uses (configs/control-schema.md, `__com.disco-project_`
// names), typed: each reply is checked in full and turned into plain data, so that a monitor
// that sends something unexpected gives a `protocol` error, not a wrong decision.
#pragma once
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "numad/hot_pages.hpp"
#include "numad/monitor_client.hpp"
#include "numad/perf_sampler.hpp"

namespace disco::numad {

inline constexpr unsigned max_hot_pages_limit = 4096;  // the monitor's bound on `limit`

/// Pulls at most `limit` hottest pages (1..4096) and, with `reset`, zeroes the counters.
Result<HotPageBatch, ClientError> pull_hot_pages(MonitorClient& client, unsigned limit, bool reset);

/// Parses a hot-pages reply (exposed for tests).
Result<HotPageBatch, ClientError> parse_hot_pages(const nlohmann::json& reply);

Result<unsigned, ClientError> migrate_page(MonitorClient& client, const std::string& vm, std::uint64_t gpa,
                                           unsigned node);
/// The most pages one pages-migrate request names (the monitor's bound).
inline constexpr std::size_t max_migrate_batch = 1024;
/// Migrates a batch of one VM's pages to one node with one request (two shootdowns in all,
/// where page-migrate costs two a page). Returns the refused pages with the monitor's reasons;
/// the others moved. At most max_migrate_batch gpas.
Result<std::vector<std::pair<std::uint64_t, std::string>>, ClientError> migrate_pages(
    MonitorClient& client, const std::string& vm, const std::vector<std::uint64_t>& gpas, unsigned node);
/// One guest page a sampled host address falls in (resolve-addresses): the node of the frame
/// that was touched, the page's state, and the home node of the vCPU that touched it (none when
/// the sampled thread is no vCPU's).
struct ResolvedPage {
    std::string vm;
    std::uint64_t gpa = 0;
    unsigned node = 0;
    PageState state = PageState::private_page;
    std::optional<unsigned> accessor_node;
};
struct ResolvedSamples {
    std::vector<ResolvedPage> pages;
    std::uint64_t unresolved = 0;  // samples outside machine memory, or on frames no VM maps
};
/// The most samples one resolve-addresses request carries (the monitor's bound).
inline constexpr std::size_t max_resolve_batch = 1024;
/// Maps 1..max_resolve_batch samples to guest pages with one request.
Result<ResolvedSamples, ClientError> resolve_addresses(MonitorClient& client, std::span<const PerfSample> samples);
/// Parses a resolve-addresses reply (exposed for tests).
Result<ResolvedSamples, ClientError> parse_resolved(const nlohmann::json& reply);

Result<std::vector<unsigned>, ClientError> replicate_page(MonitorClient& client, const std::string& vm,
                                                          std::uint64_t gpa);

}  // namespace disco::numad
