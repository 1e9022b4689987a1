#include "vmm/monitor/footprint.hpp"

#include <fmt/format.h>

#include <nlohmann/json.hpp>
#include <unordered_map>

#include "vmm/mem/machine_memory.hpp"

namespace disco::monitor {

Footprint measure_footprint(std::span<const std::pair<std::string, const GuestRam*>> vms) {
    Footprint f;
    // Guest pages per frame, over every VM: a frame with more than one is shared.
    std::unordered_map<u32, u32> maps;
    std::vector<std::vector<u32>> frames_of(vms.size());
    const MachineMemory* mm = nullptr;
    for (usize i = 0; i < vms.size(); ++i) {
        const GuestRam& ram = *vms[i].second;
        if (ram.machine_memory()) mm = ram.machine_memory();
        VmFootprint v;
        v.name = vms[i].first;
        v.guest_pages = ram.total_size() >> kPageShift;
        ram.for_each_frame([&](u64, MachineFrame frame, u32) {
            ++maps[frame.index];
            frames_of[i].push_back(frame.index);
        });
        f.vms.push_back(std::move(v));
    }
    const std::vector<bool> resident = mm ? mm->resident_frames() : std::vector<bool>{};
    const auto backed = [&](u32 frame) { return frame < resident.size() && resident[frame]; };
    for (usize i = 0; i < vms.size(); ++i) {
        for (u32 frame : frames_of[i]) {
            if (maps[frame] > 1)
                ++f.vms[i].pages_on_shared;
            else
                ++f.vms[i].frames_private;
            if (backed(frame)) ++f.vms[i].guest_pages_used;
        }
    }
    for (const auto& [frame, n] : maps) {
        if (n < 2) continue;
        ++f.pages_shared;
        f.pages_sharing += n - 1;
    }
    if (mm) {
        f.machine_frames_in_use = mm->totals().frames_in_use;
        for (u32 i = 0; i < resident.size(); ++i)
            if (resident[i] && mm->ref_count(MachineFrame(i)) > 0) ++f.machine_frames_used;
    }
    return f;
}

nlohmann::json Footprint::to_json() const {
    nlohmann::json vms_json = nlohmann::json::array();
    for (const VmFootprint& v : vms)
        vms_json.push_back({{"name", v.name},
                            {"guest_pages", v.guest_pages},
                            {"frames_private", v.frames_private},
                            {"pages_on_shared", v.pages_on_shared},
                            {"guest_pages_used", v.guest_pages_used}});
    return {{"page_size", kPageSize},
            {"machine_frames_in_use", machine_frames_in_use},
            {"machine_frames_used", machine_frames_used},
            {"pages_shared", pages_shared},
            {"pages_sharing", pages_sharing},
            {"bytes_saved", bytes_saved()},
            {"vms", std::move(vms_json)}};
}

std::string Footprint::summary() const {
    u64 guest = 0;
    for (const VmFootprint& v : vms) guest += v.guest_pages;
    return fmt::format(
        "footprint: {} guest pages in {} VMs, {} machine frames in use, pages_shared={} "
        "pages_sharing={} ({:.1f} MiB saved)",
        guest, vms.size(), machine_frames_in_use, pages_shared, pages_sharing,
        static_cast<double>(bytes_saved()) / (1 << 20));
}
}  // namespace disco::monitor
