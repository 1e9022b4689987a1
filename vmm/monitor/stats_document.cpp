#include "vmm/monitor/stats_document.hpp"

#include <cstdio>
#include <nlohmann/json.hpp>

namespace disco::monitor {

std::string stats_document(const Footprint& now, const Footprint& peak, const PageScanner* scanner) {
    nlohmann::json j;
    j["footprint"] = now.to_json();
    j["peak"] = peak.to_json();
    if (scanner) {
        const ScanStats s = scanner->stats();
        j["page_scan"] = {{"pages_scanned", s.pages_scanned}, {"passes", s.passes}, {"merged", s.merged},
                          {"not_identical", s.not_identical}, {"busy", s.busy},     {"cpu_seconds", s.cpu_seconds}};
    }
    return j.dump(2) + "\n";
}

bool write_stats_document(const std::string& path, const std::string& text) {
    FILE* f = std::fopen(path.c_str(), "w");
    if (!f) return false;
    const bool written = std::fputs(text.c_str(), f) >= 0;
    return std::fclose(f) == 0 && written;
}
}  // namespace disco::monitor
