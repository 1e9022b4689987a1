// Access counters (DESIGN.md "NUMA"): per machine frame and per node, how
// often that node's vCPUs reached for the frame. They stand in for FLASH's
// per-page, per-processor cache-miss counters that drive Disco's migration
// and replication policy (disco-paper.md §4.1): a daemon reads the hottest
// frames each interval, decides, and resets them.
//
// What counts as an access: a soft-TLB fill of a RAM page (Cpu::fill_soft_tlb).
// The soft TLB is each vCPU's small cache of pages, so a fill is a miss of
// that cache, as a FLASH count is a miss of the processor cache. It misses
// far less often than a hardware cache (256 entries of 4 KiB each), so a page
// the guest keeps touching from its TLB-resident working set is under-counted;
// the paper's own caveat ("TLB misses may not be a consistent approximation
// for cache misses") applies. It costs one relaxed atomic add on a path that
// has already walked the guest TLB and the pmap.
//
// Layout: node-major, u32 counts[node][frame] in one lazily committed host
// mapping (host_mapping.hpp). Node-major because vCPUs of different nodes
// then never write the same cache line, and a node's slice is contiguous.
// Size: frames * nodes * 4 bytes of address space (0.1% of machine memory
// per node), committed only where counts are non-zero or were once.
//
// Counters saturate at 2^32 - 1 rather than wrap: a page that stays hot for
// long between resets must keep ranking as the hottest, where a wrapped count
// would make it look cold. The compare-and-swap costs the same as a plain
// atomic add when uncontended.
//
// Written flags: beside the counts, one byte per frame says whether a vCPU
// filled its soft TLB for a store to the frame since the last reset (the
// policy must not replicate a page that is written). It is set with a plain
// relaxed store, and only when not already set, so that a frame's hot line is
// read, not bounced between vCPUs. A store that hits a soft-TLB entry filled
// by a load (with write permission) or filled before the last reset is not
// seen: like the counts, the flag samples misses, not every access.
//
// Thread model: note() from any vCPU thread, everything else from any thread;
// all relaxed atomics. Each count is exact, but figures read while vCPUs count
// (total, hottest) are not one consistent snapshot, and a count that races
// with reset() may survive it or be lost. That is what a policy sampling
// counters needs; nothing orders guest memory through them.
#pragma once
#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "vmm/mem/host_mapping.hpp"
#include "vmm/mem/machine_frame.hpp"
#include "vmm/mem/memory_error.hpp"
#include "vmm/util/result.hpp"

namespace disco {

/// One frame of a hottest() answer.
struct HotFrame {
    MachineFrame frame;
    u64 total = 0;            // the sum of counts
    std::vector<u32> counts;  // per node, node_count() of them
};

class AccessCounters {
public:
    static constexpr u32 kMaxCount = ~0u;

    /// Counts for frames [0, frames) on `nodes` nodes, whose bytes lie at
    /// arena + index * 4 KiB (MachineMemory's main mapping). Errors: HostMapping.
    static Result<std::unique_ptr<AccessCounters>, MemoryError> create(const u8* arena, u32 frames, unsigned nodes);
    AccessCounters(const AccessCounters&) = delete;
    AccessCounters& operator=(const AccessCounters&) = delete;

    /// One access by a vCPU of `node` to the frame holding `host`, a store
    /// when `write`. Ignores a pointer outside the arena (plain guest RAM) and
    /// a node beyond the count. While disabled it does one relaxed load and
    /// nothing else.
    void note(const u8* host, NodeId node, bool write = false) {
        if (!enabled_.load(std::memory_order_relaxed)) return;
        const uintptr_t offset = reinterpret_cast<uintptr_t>(host) - reinterpret_cast<uintptr_t>(arena_);
        if (offset >= arena_bytes_ || node >= nodes_) return;  // below the arena, offset wrapped: also ignored
        const u32 frame = static_cast<u32>(offset >> kPageShift);
        bump(frame, node);
        if (write) mark_written(frame);
    }

    /// A store by a vCPU to the frame holding `host` that fills no soft-TLB
    /// entry (LL/SC): sets the written flag only, counting no access.
    void note_store(const u8* host) {
        if (!enabled_.load(std::memory_order_relaxed)) return;
        const uintptr_t offset = reinterpret_cast<uintptr_t>(host) - reinterpret_cast<uintptr_t>(arena_);
        if (offset < arena_bytes_) mark_written(static_cast<u32>(offset >> kPageShift));
    }

    /// Counting on or off (on after create). Off, counts keep their values.
    void set_enabled(bool on) { enabled_.store(on, std::memory_order_relaxed); }
    bool enabled() const { return enabled_.load(std::memory_order_relaxed); }

    /// 0 for a frame beyond machine memory or a node beyond the count.
    u32 count(MachineFrame f, NodeId node) const;
    /// The frame's counts over all nodes (0 beyond machine memory).
    u64 total(MachineFrame f) const;
    /// Whether a store to the frame was noted since the last reset (false beyond machine memory).
    bool written(MachineFrame f) const;
    /// Every count since the last reset, summed.
    u64 sum() const;
    /// At most k frames with non-zero totals, highest first (ties: lower frame
    /// first). One pass over the counters keeping a heap of k entries.
    std::vector<HotFrame> hottest(usize k) const;
    /// Every count back to zero and every written flag clear (the policy
    /// daemon, each interval). Writes only what is not zero, so it commits no memory.
    void reset();

    u32 frame_count() const { return frames_; }
    unsigned node_count() const { return nodes_; }
    /// "N misses counted, top page frame F (node counts a/b/c/d)", or
    /// "... top page frame none" when nothing was counted (--stats).
    std::string summary() const;

private:
    AccessCounters(const u8* arena, u32 frames, unsigned nodes, HostMapping counts, HostMapping written)
        : arena_(arena),
          arena_bytes_(u64(frames) << kPageShift),
          frames_(frames),
          nodes_(nodes),
          counts_(std::move(counts)),
          written_(std::move(written)) {}
    std::atomic_ref<u32> counter(u32 frame, NodeId node) const {
        return std::atomic_ref<u32>(counts_.as<u32>()[u64(node) * frames_ + frame]);
    }
    void bump(u32 frame, NodeId node) {
        std::atomic_ref<u32> c = counter(frame, node);
        u32 cur = c.load(std::memory_order_relaxed);
        while (cur != kMaxCount && !c.compare_exchange_weak(cur, cur + 1, std::memory_order_relaxed)) {
        }
    }

    std::atomic_ref<u8> written_flag(u32 frame) const { return std::atomic_ref<u8>(written_.as<u8>()[frame]); }
    void mark_written(u32 frame) {
        std::atomic_ref<u8> w = written_flag(frame);
        if (!w.load(std::memory_order_relaxed)) w.store(1, std::memory_order_relaxed);
    }

    const u8* const arena_;
    const u64 arena_bytes_;
    const u32 frames_;
    const unsigned nodes_;
    HostMapping counts_;   // u32[nodes_][frames_], used through std::atomic_ref
    HostMapping written_;  // u8[frames_]: 1 = a store was noted, used through std::atomic_ref
    std::atomic<bool> enabled_{true};
};
}  // namespace disco
