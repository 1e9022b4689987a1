// Machine memory (DESIGN.md "The memory path", "NUMA"): host memory owned by
// the monitor and shared by every VM, in 4 KiB machine frames, each on one
// (real or simulated) NUMA node. Per frame it keeps a reference count and the
// reverse map frame -> {VM, guest-physical page} that shootdowns and sharing
// need. Pmap (one per VM) builds on it; it knows nothing of guests itself.
//
// Layout: every frame lives in one sparse memfd, "disco-machine-memory"
// (MemoryFile), mapped once MAP_SHARED into the monitor; node-major: node n
// owns frames [n * frames_per_node(), (n + 1) * frames_per_node()). So
// host(frame) is base + index * 4 KiB, file_offset(frame) index * 4 KiB, and
// node_of(frame) one division. Host memory is committed only when a frame is
// first written, through whichever mapping.
//
// Views: the monitor may map any frame again, at an address of its choosing:
// mmap(addr, n * 4 KiB, prot, MAP_SHARED | MAP_FIXED, fd(), file_offset(f))
// shows frames f .. f + n - 1, the same bytes host() shows. Guest RAM does not
// (its pmap hands out host() pointers page by page, guest_ram.hpp), so page
// operations never change a host mapping. A view must not call mbind (see
// NUMA), must be moved off a frame before its last release (the next owner's
// bytes would show through), and keeps the file alive until unmapped.
//
// NUMA: on a host with several real nodes each node's slice of the main
// mapping is mbind()-bound to it. tmpfs keeps that policy with the file
// range (a shared policy, mbind(2)), not just with the mapping, so a page
// first faulted in through a view lands on the frame's node too; a view that
// called mbind itself would rebind the range for every mapping. With one real
// node, no NUMA support, or simulated nodes, nothing is bound.
//
// Zeroing: on allocation, and only when needed. A frame never handed out is
// still a hole and reads zero. A frame handed out before is cleared by
// allocate() with a 4 KiB memset through the main mapping: about 0.1 us for
// the cache-warm frame LIFO reuse gives, 1 us cold. Punching it out of the
// file on release instead was measured at 4-9 us, plus a 3-7 us fault on the
// next touch (the higher figures with a second monitor thread running, whose
// TLB the punch shoots down), so single frames stay backed while free.
// allocate_run() zeroes the used frames of a run with one hole punch instead
// (0.6-1.2 us a frame, about the cost of memset over 256 MiB, and the run is
// unbacked again, like a fresh one). Either way an allocated frame reads zero.
//
// Thread model: every method may be called from any thread at any time
// (vCPU threads, the migration thread, device I/O threads).
//  - allocate / the final release: the node's pool mutex, held for a few
//    instructions (zeroing runs outside it).
//  - allocate_run: the same mutex; when the never-used frames cannot serve
//    the run, held for a scan linear in the node's size (see NodePool).
//  - add_ref / release: lock-free atomics on the frame's count.
//  - add_user / remove_user / users / user_count: one of 256 mutexes striped
//    by frame number.
//  - host, fd, file_offset, node_of, node_count, node_info, distance, topology: immutable
//    after create(), no synchronisation.
//  - access_counters: its own thread model (access_counters.hpp).
//  - node_stats / totals: relaxed atomics; each figure is exact, but figures
//    read while others allocate are not a consistent snapshot.
// Rule for callers: touch a frame's bytes, add references or users only while
// holding a reference of your own. MachineMemory does not order accesses to
// frame contents between holders (that is the pmap's shootdown and COW
// protocol); it does order everything before the last release before the
// zeroing of the next allocation. It must outlive every VM that uses it.
#pragma once
#include <memory>
#include <optional>
#include <vector>

#include "vmm/mem/access_counters.hpp"
#include "vmm/mem/frame_rmap.hpp"
#include "vmm/mem/host_mapping.hpp"
#include "vmm/mem/machine_frame.hpp"
#include "vmm/mem/memory_error.hpp"
#include "vmm/mem/memory_file.hpp"
#include "vmm/mem/node_pool.hpp"
#include "vmm/mem/numa_topology.hpp"
#include "vmm/util/result.hpp"

namespace disco {

struct MachineMemoryConfig {
    /// Capacity, rounded down to whole frames: set exactly one of the two.
    u64 bytes_per_node = 0;
    u64 total_bytes = 0;  // split evenly between the nodes
    /// 0: the host's real nodes (libnuma); N >= 1: N simulated nodes over host memory.
    unsigned numa_sim = 0;
    /// Distance between two different simulated nodes (SLIT units; local is 10).
    u32 sim_remote_distance = NumaTopology::kDefaultRemoteDistance;
};

/// Where allocate() may take a frame from.
enum class Placement {
    Preferred,  // the node asked for, else the nearest node with a free frame
    Bind,       // the node asked for or nothing (a replica must be on its node)
};

struct NodeStats {
    u64 frames_total = 0;
    u64 frames_free = 0;
    u64 frames_in_use = 0;
    /// Allocations that preferred this node but were served by another.
    u64 fallback_allocations = 0;
    /// Frames this node handed out for allocations that preferred another node.
    u64 foreign_allocations = 0;
};

class MachineMemory {
public:
    static constexpr unsigned kMaxNodes = 64;

    /// Errors: InvalidConfig (no or both capacities, < 1 frame per node, more
    /// than kMaxNodes or 2^32 - 1 frames), HostMapping.
    static Result<std::unique_ptr<MachineMemory>, MemoryError> create(const MachineMemoryConfig& config);
    MachineMemory(const MachineMemory&) = delete;
    MachineMemory& operator=(const MachineMemory&) = delete;

    // --- Topology -----------------------------------------------------------
    unsigned node_count() const { return topology_.node_count(); }
    /// Host node number, CPU list (for binding vCPU threads), simulated or not.
    /// Precondition: node < node_count().
    const NumaNode& node_info(NodeId node) const { return topology_.node(node); }
    /// numa_distance() of real nodes, or the simulated cost. Precondition: both < node_count().
    u32 distance(NodeId from, NodeId to) const { return topology_.distance(from, to); }
    const NumaTopology& topology() const { return topology_; }

    // --- Frames -------------------------------------------------------------
    u32 frame_count() const { return frame_count_; }
    u32 frames_per_node() const { return frames_per_node_; }
    bool contains(MachineFrame f) const { return f.index < frame_count_; }
    /// Precondition: contains(f).
    NodeId node_of(MachineFrame f) const { return f.index / frames_per_node_; }
    /// The frame's 4 KiB of host memory. Precondition: contains(f).
    u8* host(MachineFrame f) const { return arena_.data() + file_offset(f); }
    /// The frame whose 4 KiB hold `host` (any byte of them); nothing for a
    /// pointer outside machine memory.
    std::optional<MachineFrame> frame_of(const u8* host) const {
        const uintptr_t offset = reinterpret_cast<uintptr_t>(host) - reinterpret_cast<uintptr_t>(arena_.data());
        if (offset >= u64(frame_count_) << kPageShift) return std::nullopt;
        return MachineFrame(static_cast<u32>(offset >> kPageShift));
    }
    /// The machine memory file, for mapping views of frames (see Views above).
    int fd() const { return file_.fd(); }
    /// Where the frame's 4 KiB lie in fd(). Precondition: contains(f).
    u64 file_offset(MachineFrame f) const { return u64(f.index) << kPageShift; }

    /// A zeroed frame holding one reference. Errors: InvalidNode; NodeExhausted
    /// (Bind, node empty); Exhausted (every node empty).
    Result<MachineFrame, MemoryError> allocate(NodeId node, Placement placement = Placement::Preferred);
    /// The first of `count` consecutive zeroed frames, all on one node (`node`,
    /// else under Preferred the nearest node that has such a run), each holding
    /// one reference. Each is released on its own, like any frame. Errors:
    /// InvalidNode; InvalidRunLength (0, or more than frames_per_node());
    /// NodeExhausted (Bind, no such run on the node); Exhausted (none on any node).
    Result<MachineFrame, MemoryError> allocate_run(NodeId node, u32 count, Placement placement = Placement::Preferred);
    /// Errors: InvalidFrame, FrameNotAllocated, RefCountOverflow.
    Result<void, MemoryError> add_ref(MachineFrame f);
    /// Drops one reference and returns how many remain; at 0 the frame goes back
    /// to its node's pool and its reverse map is cleared. Errors: InvalidFrame,
    /// FrameNotAllocated (a double release).
    Result<u32, MemoryError> release(MachineFrame f);
    /// 0 for a free frame or one beyond machine memory.
    u32 ref_count(MachineFrame f) const;
    /// Per frame, whether host memory backs it now (mincore(2) over the main
    /// mapping: the memfd's page is in the page cache). A frame no one ever
    /// wrote is a hole and is not resident; that is how footprints tell the
    /// memory a guest used from the memory it was given. Empty if mincore fails.
    std::vector<bool> resident_frames() const;

    // --- Reverse map --------------------------------------------------------
    /// Errors: InvalidFrame, FrameNotAllocated, InvalidUser, DuplicateUser.
    Result<void, MemoryError> add_user(MachineFrame f, FrameUser user);
    /// Errors: InvalidFrame, UnknownUser.
    Result<void, MemoryError> remove_user(MachineFrame f, FrameUser user);
    /// Every {vm, page} mapping the frame, in no particular order. Errors: InvalidFrame.
    Result<std::vector<FrameUser>, MemoryError> users(MachineFrame f) const;
    /// 0 for a frame beyond machine memory.
    usize user_count(MachineFrame f) const;

    /// What a host virtual address inside machine memory belongs to: its frame,
    /// the frame's node and the reverse map's users of it (several for a shared
    /// frame, none for a free one). Nothing for an address outside every node's
    /// pool (a PMU sample of the monitor's own data, say). Any thread; the users
    /// are a snapshot.
    struct HostAddressOwner {
        MachineFrame frame;
        NodeId node = 0;
        std::vector<FrameUser> users;
    };
    std::optional<HostAddressOwner> resolve_host_address(u64 address) const;

    // --- Statistics ---------------------------------------------------------
    /// Precondition: node < node_count().
    NodeStats node_stats(NodeId node) const;
    /// The sum over all nodes.
    NodeStats totals() const;
    /// Per frame and node, the vCPUs' soft-TLB misses (access_counters.hpp).
    AccessCounters& access_counters() { return *counters_; }
    const AccessCounters& access_counters() const { return *counters_; }

private:
    MachineMemory(NumaTopology topology, u32 frames_per_node, MemoryFile file, HostMapping arena, HostMapping refs,
                  std::unique_ptr<FrameRmap> rmap, std::vector<std::unique_ptr<NodePool>> pools,
                  std::unique_ptr<AccessCounters> counters);
    Result<void, MemoryError> check_node(NodeId node) const;
    /// Tries `node`, then, under Preferred, the others nearest first, counting
    /// fallbacks; `take(n)` gives a frame from node n or nothing.
    template <class Take>
    std::optional<MachineFrame> take_placed(NodeId node, Placement placement, Take take);
    std::optional<MachineFrame> take_from(NodeId node);
    std::optional<MachineFrame> take_run_from(NodeId node, u32 count);
    /// Frames [first, first + count) read zero afterwards. Precondition: they are free.
    void zero_run(u32 first, u32 count);
    Result<void, MemoryError> check(MachineFrame f) const;

    const NumaTopology topology_;
    const u32 frames_per_node_;
    const u32 frame_count_;
    MemoryFile file_;    // the frames themselves
    HostMapping arena_;  // file_ mapped whole: host()
    HostMapping refs_;   // u32[frame_count_], used through std::atomic_ref; 0 = free
    std::unique_ptr<FrameRmap> rmap_;
    std::vector<std::unique_ptr<NodePool>> pools_;  // one per node
    std::vector<std::vector<NodeId>> fallback_;     // per node: the others, nearest first
    std::unique_ptr<AccessCounters> counters_;
};
}  // namespace disco
