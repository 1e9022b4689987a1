#include "vmm/dev/virtio/cached_reads.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <unordered_set>

#include "vmm/mem/machine_memory.hpp"

namespace disco::dev {

CachedReads::CachedReads(DiskPageCache& cache, const DiskBackend& backend)
    : cache_(cache), backend_(backend), base_(*backend.shareable_base()) {}

bool CachedReads::base_unchanged() {
    if (refused_) return false;
    const auto now = image_identity(base_.fd);
    if (now && *now == base_.id) return true;
    refused_ = true;
    cache_.forget(base_.id);
    std::fputs(fmt::format("disco: disk base {} changed under the monitor (size or modification time): its blocks "
                           "are no longer shared through the disk page cache; reads copy them\n",
                           base_.path)
                   .c_str(),
               stderr);
    return false;
}

std::vector<CachedPiece> CachedReads::plan(const GuestRam& ram, const BlkRequest& r) {
    std::vector<CachedPiece> pieces;
    if (refused_ || r.op != BlkRequest::Op::Read || ram.machine_memory() != &cache_.machine_memory()) return pieces;
    std::unordered_set<u64> seen;
    u64 data = 0;  // the segment's first byte, as an offset into the data
    for (const DescSegment& s : r.chain.writable) {
        if (data >= r.length) break;
        const u64 take = std::min<u64>(s.len, r.length - data);
        // A page-aligned guest address and a block-aligned disk offset can
        // only coincide in a segment where they are congruent.
        const u64 first = (kPageSize - (s.addr.value & (kPageSize - 1))) & (kPageSize - 1);
        if (((r.offset + data + first) & (kPageSize - 1)) == 0) {
            for (u64 at = first; at + kPageSize <= take; at += kPageSize) {
                const GuestPhysAddr guest = s.addr + at;
                const u64 disk = r.offset + data + at;
                const u64 ppage = guest.page();
                // The same page twice in one chain (a hostile one): the later one is copied.
                if (!ram.is_ram(guest, kPageSize) || !backend_.reads_base(disk) || !seen.insert(ppage).second) continue;
                pieces.push_back(CachedPiece{data + at, ppage, disk >> kPageShift, {}, false});
            }
        }
        data += take;
    }
    if (!pieces.empty() && !base_unchanged()) pieces.clear();
    return pieces;
}
}  // namespace disco::dev
