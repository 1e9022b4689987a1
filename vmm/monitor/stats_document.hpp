// `disco run --stats FILE`: the footprint and sharing figures as one JSON
// document, for one VM or a fleet, written when the monitor ends:
//   {"footprint": {...now...}, "peak": {...most pages saved...},
//    "page_scan": {"pages_scanned", "passes", "merged", "not_identical", "busy", "cpu_seconds"},
//    "numa": {"local_accesses", "remote_accesses", "local_ratio"},
//    "disk_cache": {"hits", "loads", "pages_mapped", "pages_copied", "frames_held",
//                   "frames_only_cached", "evictions", "refused", "images_refused", "capacity"}}
// ("page_scan" only with --page-scan; "numa" only with machine memory: the
// access counters' figures since the start, every interval a policy reset
// included; local_ratio is local / (local + remote), 0 when nothing was
// counted; "disk_cache" only with the disk page cache: read-time sharing of
// base-image blocks, disk_page_cache.hpp, apart from the scanner's sharing,
// though the footprint's pages_shared/pages_sharing count both). Footprint
// fields: footprint.hpp.
#pragma once
#include <string>

#include "vmm/mem/disk_page_cache.hpp"
#include "vmm/monitor/footprint.hpp"
#include "vmm/monitor/numa_report.hpp"
#include "vmm/monitor/page_scanner.hpp"

namespace disco::monitor {

/// The document's text; scanner and numa may be null.
std::string stats_document(const Footprint& now, const Footprint& peak, const PageScanner* scanner,
                           const AccessSplit* numa = nullptr, const DiskCacheStats* disk_cache = nullptr);
/// One line of the disk page cache's figures, for --stats on stderr.
std::string disk_cache_summary(const DiskCacheStats& s);
/// Writes it; false (errno set) when the file cannot be written.
bool write_stats_document(const std::string& path, const std::string& text);
}  // namespace disco::monitor
