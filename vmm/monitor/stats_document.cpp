#include "vmm/monitor/stats_document.hpp"

#include <fmt/format.h>

#include <cstdio>
#include <nlohmann/json.hpp>

namespace disco::monitor {

std::string stats_document(const Footprint& now, const Footprint& peak, const PageScanner* scanner,
                           const AccessSplit* numa, const DiskCacheStats* disk_cache) {
    nlohmann::json j;
    j["footprint"] = now.to_json();
    j["peak"] = peak.to_json();
    if (scanner) {
        const ScanStats s = scanner->stats();
        j["page_scan"] = {{"pages_scanned", s.pages_scanned}, {"passes", s.passes}, {"merged", s.merged},
                          {"not_identical", s.not_identical}, {"busy", s.busy},     {"cpu_seconds", s.cpu_seconds}};
    }
    if (numa) {
        const u64 all = numa->local + numa->remote;
        j["numa"] = {{"local_accesses", numa->local},
                     {"remote_accesses", numa->remote},
                     {"local_ratio", all ? static_cast<double>(numa->local) / static_cast<double>(all) : 0.0}};
    }
    if (disk_cache) {
        const DiskCacheStats& c = *disk_cache;
        j["disk_cache"] = {{"hits", c.hits},
                           {"loads", c.loads},
                           {"pages_mapped", c.pages_mapped},
                           {"pages_copied", c.pages_copied},
                           {"frames_held", c.frames_held},
                           {"frames_only_cached", c.frames_only_cached},
                           {"evictions", c.evictions},
                           {"refused", c.refused},
                           {"images_refused", c.images_refused},
                           {"capacity", c.capacity}};
    }
    return j.dump(2) + "\n";
}

std::string disk_cache_summary(const DiskCacheStats& c) {
    return fmt::format(
        "disk cache: {} hits, {} loads, {} guest pages mapped, {} copied, {} frames held ({} by the "
        "cache alone)",
        c.hits, c.loads, c.pages_mapped, c.pages_copied, c.frames_held, c.frames_only_cached);
}

bool write_stats_document(const std::string& path, const std::string& text) {
    FILE* f = std::fopen(path.c_str(), "w");
    if (!f) return false;
    const bool written = std::fputs(text.c_str(), f) >= 0;
    return std::fclose(f) == 0 && written;
}
}  // namespace disco::monitor
