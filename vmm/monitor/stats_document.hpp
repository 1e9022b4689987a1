// `disco run --stats FILE`: the footprint and sharing figures as one JSON
// document, for one VM or a fleet, written when the monitor ends:
//   {"footprint": {...now...}, "peak": {...most pages saved...},
//    "page_scan": {"pages_scanned", "passes", "merged", "not_identical", "busy", "cpu_seconds"}}
// ("page_scan" only with --page-scan). Footprint fields: footprint.hpp.
#pragma once
#include <string>

#include "vmm/monitor/footprint.hpp"
#include "vmm/monitor/page_scanner.hpp"

namespace disco::monitor {

/// The document's text; scanner may be null.
std::string stats_document(const Footprint& now, const Footprint& peak, const PageScanner* scanner);
/// Writes it; false (errno set) when the file cannot be written.
bool write_stats_document(const std::string& path, const std::string& text);
}  // namespace disco::monitor
