// Machine memory (DESIGN.md "The memory path", "NUMA"): host memory owned by
// the monitor and shared by every VM, in 4 KiB machine frames, each on one
// (real or simulated) NUMA node. Per frame it keeps a reference count and the
// reverse map frame -> {VM, guest-physical page} that shootdowns and sharing
// need. Pmap (one per VM) builds on it; it knows nothing of guests itself.
//
// Layout: one MAP_NORESERVE reservation holds every frame, node-major: node n
// owns frames [n * frames_per_node(), (n + 1) * frames_per_node()). So
// host(frame) is base + index * 4 KiB and node_of(frame) one division. On a
// host with several real nodes each node's slice is mbind()-bound to it; with
// one real node, no NUMA support, or simulated nodes, nothing is bound.
// Host memory is committed only when a frame is first written.
//
// Zeroing: on allocation, and only when needed. A frame never handed out is
// still unbacked and reads zero; a frame handed out before is cleared with a
// 4 KiB memset by allocate() before it returns. Either way a frame from
// allocate() reads as zero.
//
// Thread model: every method may be called from any thread at any time
// (vCPU threads, the migration thread, device I/O threads).
//  - allocate / the final release: the node's pool mutex, held for a few
//    instructions (zeroing runs outside it).
//  - add_ref / release: lock-free atomics on the frame's count.
//  - add_user / remove_user / users / user_count: one of 256 mutexes striped
//    by frame number.
//  - host, node_of, node_count, node_info, distance, topology: immutable
//    after create(), no synchronisation.
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

#include "vmm/mem/frame_rmap.hpp"
#include "vmm/mem/host_mapping.hpp"
#include "vmm/mem/machine_frame.hpp"
#include "vmm/mem/memory_error.hpp"
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
    u8* host(MachineFrame f) const { return arena_.data() + (u64(f.index) << kPageShift); }

    /// A zeroed frame holding one reference. Errors: InvalidNode; NodeExhausted
    /// (Bind, node empty); Exhausted (every node empty).
    Result<MachineFrame, MemoryError> allocate(NodeId node, Placement placement = Placement::Preferred);
    /// Errors: InvalidFrame, FrameNotAllocated, RefCountOverflow.
    Result<void, MemoryError> add_ref(MachineFrame f);
    /// Drops one reference and returns how many remain; at 0 the frame goes back
    /// to its node's pool and its reverse map is cleared. Errors: InvalidFrame,
    /// FrameNotAllocated (a double release).
    Result<u32, MemoryError> release(MachineFrame f);
    /// 0 for a free frame or one beyond machine memory.
    u32 ref_count(MachineFrame f) const;

    // --- Reverse map --------------------------------------------------------
    /// Errors: InvalidFrame, FrameNotAllocated, InvalidUser, DuplicateUser.
    Result<void, MemoryError> add_user(MachineFrame f, FrameUser user);
    /// Errors: InvalidFrame, UnknownUser.
    Result<void, MemoryError> remove_user(MachineFrame f, FrameUser user);
    /// Every {vm, page} mapping the frame, in no particular order. Errors: InvalidFrame.
    Result<std::vector<FrameUser>, MemoryError> users(MachineFrame f) const;
    /// 0 for a frame beyond machine memory.
    usize user_count(MachineFrame f) const;

    // --- Statistics ---------------------------------------------------------
    /// Precondition: node < node_count().
    NodeStats node_stats(NodeId node) const;
    /// The sum over all nodes.
    NodeStats totals() const;

private:
    MachineMemory(NumaTopology topology, u32 frames_per_node, HostMapping arena, HostMapping refs,
                  std::unique_ptr<FrameRmap> rmap, std::vector<std::unique_ptr<NodePool>> pools);
    std::optional<MachineFrame> take_from(NodeId node);
    Result<void, MemoryError> check(MachineFrame f) const;

    const NumaTopology topology_;
    const u32 frames_per_node_;
    const u32 frame_count_;
    HostMapping arena_;  // the frames themselves
    HostMapping refs_;   // u32[frame_count_], used through std::atomic_ref; 0 = free
    std::unique_ptr<FrameRmap> rmap_;
    std::vector<std::unique_ptr<NodePool>> pools_;  // one per node
    std::vector<std::vector<NodeId>> fallback_;     // per node: the others, nearest first
};
}  // namespace disco
