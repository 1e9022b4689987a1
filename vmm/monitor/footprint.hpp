// Memory footprint accounting (issue 5): per VM and for the monitor, in the
// words of Linux's KSM (Documentation/admin-guide/mm/ksm.rst) where they fit:
//   pages_shared   machine frames that more than one guest page maps
//   pages_sharing  guest pages that map such a frame beyond the first, that
//                  is, how many frames sharing saves
// plus guest pages, machine frames in use and bytes saved; and, for Disco's
// Figure 6, the memory actually used: a guest page is used when host memory
// backs its frame (the guest, or a device, has written it), a machine frame
// when it is in use and backed. Untouched guest RAM is a hole in the machine
// memory file and costs nothing, so it counts in neither.
#pragma once
#include <nlohmann/json_fwd.hpp>
#include <span>
#include <string>
#include <vector>

#include "vmm/mem/guest_ram.hpp"

namespace disco::monitor {

struct VmFootprint {
    std::string name;
    u64 guest_pages = 0;       // RAM pages the guest has
    u64 frames_private = 0;    // frames only this VM's pages map
    u64 pages_on_shared = 0;   // this VM's pages whose frame others (or its other pages) map too
    u64 guest_pages_used = 0;  // pages whose frame host memory backs (the VM's guest footprint)
};

struct Footprint {
    std::vector<VmFootprint> vms;
    u64 machine_frames_in_use = 0;  // the whole machine memory, replicas included
    u64 machine_frames_used = 0;    // of those, the ones host memory backs (the machine footprint)
    u64 pages_shared = 0;
    u64 pages_sharing = 0;
    u64 bytes_saved() const { return pages_sharing * kPageSize; }
    nlohmann::json to_json() const;
    std::string summary() const;
};

/// The figures for these VMs, which must share one machine memory (or each
/// have none). Takes each VM's page-operation mutex for a pass over its pmap.
Footprint measure_footprint(std::span<const std::pair<std::string, const GuestRam*>> vms);
}  // namespace disco::monitor
