#include "vmm/mem/machine_memory.hpp"

#include <fmt/format.h>
#include <sys/mman.h>

#include <atomic>
#include <cstring>

namespace disco {
namespace {
MemoryError config_error(std::string message) {
    return MemoryError{MemoryError::Kind::InvalidConfig, "machine memory: " + std::move(message)};
}

Result<u32, MemoryError> frames_for_each_node(const MachineMemoryConfig& c, unsigned nodes) {
    if ((c.bytes_per_node == 0) == (c.total_bytes == 0))
        return fail(config_error("give either the bytes per node or the total bytes"));
    const u64 per_node = c.bytes_per_node ? c.bytes_per_node >> kPageShift : (c.total_bytes >> kPageShift) / nodes;
    if (per_node == 0) return fail(config_error(fmt::format("less than one 4 KiB frame for each of {} nodes", nodes)));
    if (per_node * nodes >= MachineFrame::kNone)
        return fail(config_error(fmt::format("{} nodes of {} frames exceed 2^32 - 1 frames", nodes, per_node)));
    return static_cast<u32>(per_node);
}
}  // namespace

Result<std::unique_ptr<MachineMemory>, MemoryError> MachineMemory::create(const MachineMemoryConfig& config) {
    if (config.numa_sim > kMaxNodes)
        return fail(config_error(fmt::format("{} simulated nodes; at most {}", config.numa_sim, kMaxNodes)));
    if (config.numa_sim && config.sim_remote_distance < NumaTopology::kLocalDistance)
        return fail(config_error("a remote node cannot be nearer than the local one"));
    NumaTopology topology =
        config.numa_sim ? NumaTopology::simulated(config.numa_sim, config.sim_remote_distance) : NumaTopology::host();
    const unsigned nodes = topology.node_count();
    if (nodes > kMaxNodes)
        return fail(config_error(fmt::format("the host has {} nodes; at most {}", nodes, kMaxNodes)));
    const u32 per_node = DISCO_TRY(frames_for_each_node(config, nodes));
    const u32 frames = per_node * nodes;

    auto file = DISCO_TRY(MemoryFile::create("disco-machine-memory", u64(frames) << kPageShift));
    auto arena = DISCO_TRY(HostMapping::map_shared(file.fd(), file.size()));
    // With a single node there is nowhere else for pages to go; binding would
    // only add a failure mode (mbind is often filtered in containers). The
    // policy set here is the file's, so views of the range inherit it.
    if (topology.real() && nodes > 1) {
        const u64 slice = u64(per_node) << kPageShift;
        for (NodeId n = 0; n < nodes; ++n) DISCO_TRY(arena.bind_to_node(n * slice, slice, topology.node(n).host_node));
    }
    auto refs = DISCO_TRY(HostMapping::reserve(u64(frames) * sizeof(u32)));
    auto rmap = DISCO_TRY(FrameRmap::create(frames));
    std::vector<std::unique_ptr<NodePool>> pools;
    for (NodeId n = 0; n < nodes; ++n) pools.push_back(DISCO_TRY(NodePool::create(n * per_node, per_node)));
    auto counters = DISCO_TRY(AccessCounters::create(arena.data(), frames, nodes));
    return std::unique_ptr<MachineMemory>(new MachineMemory(std::move(topology), per_node, std::move(file),
                                                            std::move(arena), std::move(refs), std::move(rmap),
                                                            std::move(pools), std::move(counters)));
}

MachineMemory::MachineMemory(NumaTopology topology, u32 per_node, MemoryFile file, HostMapping arena, HostMapping refs,
                             std::unique_ptr<FrameRmap> rmap, std::vector<std::unique_ptr<NodePool>> pools,
                             std::unique_ptr<AccessCounters> counters)
    : topology_(std::move(topology)),
      frames_per_node_(per_node),
      frame_count_(per_node * topology_.node_count()),
      file_(std::move(file)),
      arena_(std::move(arena)),
      refs_(std::move(refs)),
      rmap_(std::move(rmap)),
      pools_(std::move(pools)),
      counters_(std::move(counters)) {
    for (NodeId n = 0; n < node_count(); ++n) fallback_.push_back(topology_.fallback_order(n));
}

Result<void, MemoryError> MachineMemory::check(MachineFrame f) const {
    if (contains(f)) return {};
    return fail(
        MemoryError{MemoryError::Kind::InvalidFrame,
                    fmt::format("machine frame {:#x} is beyond machine memory ({:#x} frames)", f.index, frame_count_)});
}

Result<void, MemoryError> MachineMemory::check_node(NodeId node) const {
    if (node < node_count()) return {};
    return fail(MemoryError{MemoryError::Kind::InvalidNode,
                            fmt::format("node {} does not exist ({} nodes)", node, node_count())});
}

template <class Take>
std::optional<MachineFrame> MachineMemory::take_placed(NodeId node, Placement placement, Take take) {
    if (auto f = take(node)) return f;
    if (placement == Placement::Bind) return std::nullopt;
    for (NodeId other : fallback_[node]) {
        if (auto f = take(other)) {
            pools_[node]->note_fallback();
            pools_[other]->note_foreign();
            return f;
        }
    }
    return std::nullopt;
}

std::optional<MachineFrame> MachineMemory::take_from(NodeId node) {
    auto taken = pools_[node]->take();
    if (!taken) return std::nullopt;
    const MachineFrame f(taken->frame);
    if (taken->needs_zeroing) std::memset(host(f), 0, kPageSize);
    std::atomic_ref<u32>(refs_.as<u32>()[f.index]).store(1, std::memory_order_release);
    return f;
}

std::optional<MachineFrame> MachineMemory::take_run_from(NodeId node, u32 count) {
    auto taken = pools_[node]->take_run(count);
    if (!taken) return std::nullopt;
    zero_run(taken->first, taken->recycled);
    u32* refs = refs_.as<u32>();
    for (u32 i = taken->first; i < taken->first + count; ++i)
        std::atomic_ref<u32>(refs[i]).store(1, std::memory_order_release);
    return MachineFrame(taken->first);
}

void MachineMemory::zero_run(u32 first, u32 count) {
    if (count == 0) return;
    const u64 offset = file_offset(MachineFrame(first)), len = u64(count) << kPageShift;
    // A hole reads zero and gives the memory back; memset only if the host refuses.
    if (!file_.punch_hole(offset, len)) std::memset(arena_.data() + offset, 0, len);
}

Result<MachineFrame, MemoryError> MachineMemory::allocate(NodeId node, Placement placement) {
    DISCO_TRY(check_node(node));
    if (auto f = take_placed(node, placement, [&](NodeId n) { return take_from(n); })) return *f;
    if (placement == Placement::Bind)
        return fail(
            MemoryError{MemoryError::Kind::NodeExhausted, fmt::format("node {} has no free machine frame", node)});
    return fail(MemoryError{
        MemoryError::Kind::Exhausted,
        fmt::format("machine memory exhausted: all {} frames of {} node(s) are in use", frame_count_, node_count())});
}

Result<MachineFrame, MemoryError> MachineMemory::allocate_run(NodeId node, u32 count, Placement placement) {
    DISCO_TRY(check_node(node));
    if (count == 0 || count > frames_per_node_)
        return fail(
            MemoryError{MemoryError::Kind::InvalidRunLength,
                        fmt::format("a run of {} machine frames: a node holds 1 to {}", count, frames_per_node_)});
    if (auto f = take_placed(node, placement, [&](NodeId n) { return take_run_from(n, count); })) return *f;
    if (placement == Placement::Bind)
        return fail(MemoryError{MemoryError::Kind::NodeExhausted,
                                fmt::format("node {} has no {} consecutive free machine frames ({} free)", node, count,
                                            pools_[node]->free_frames())});
    return fail(MemoryError{MemoryError::Kind::Exhausted,
                            fmt::format("machine memory exhausted: no node has {} consecutive free frames ({} free)",
                                        count, totals().frames_free)});
}

Result<void, MemoryError> MachineMemory::add_ref(MachineFrame f) {
    DISCO_TRY(check(f));
    std::atomic_ref<u32> refs(refs_.as<u32>()[f.index]);
    u32 cur = refs.load(std::memory_order_relaxed);
    do {
        if (cur == 0)
            return fail(MemoryError{MemoryError::Kind::FrameNotAllocated,
                                    fmt::format("reference to free machine frame {:#x}", f.index)});
        if (cur == ~0u)
            return fail(MemoryError{MemoryError::Kind::RefCountOverflow,
                                    fmt::format("machine frame {:#x} has too many references", f.index)});
    } while (!refs.compare_exchange_weak(cur, cur + 1, std::memory_order_relaxed));
    return {};
}

Result<u32, MemoryError> MachineMemory::release(MachineFrame f) {
    DISCO_TRY(check(f));
    std::atomic_ref<u32> refs(refs_.as<u32>()[f.index]);
    u32 cur = refs.load(std::memory_order_relaxed);
    do {
        if (cur == 0)
            return fail(MemoryError{MemoryError::Kind::FrameNotAllocated,
                                    fmt::format("release of free machine frame {:#x}", f.index)});
        // acq_rel: the last holder sees every other holder's writes before
        // the frame is reused (and zeroed) by someone else.
    } while (!refs.compare_exchange_weak(cur, cur - 1, std::memory_order_acq_rel, std::memory_order_relaxed));
    if (cur == 1) {
        rmap_->clear(f.index);
        pools_[node_of(f)]->give_back(f.index);
    }
    return cur - 1;
}

u32 MachineMemory::ref_count(MachineFrame f) const {
    if (!contains(f)) return 0;
    return std::atomic_ref<u32>(refs_.as<u32>()[f.index]).load(std::memory_order_acquire);
}

std::vector<bool> MachineMemory::resident_frames() const {
    // One byte per host page; machine frames are host pages (kPageSize is the host's 4 KiB).
    std::vector<unsigned char> pages(frame_count_);
    if (mincore(arena_.data(), u64(frame_count_) << kPageShift, pages.data()) != 0) return {};
    std::vector<bool> resident(frame_count_);
    for (u32 i = 0; i < frame_count_; ++i) resident[i] = pages[i] & 1;
    return resident;
}

Result<void, MemoryError> MachineMemory::add_user(MachineFrame f, FrameUser user) {
    DISCO_TRY(check(f));
    if (ref_count(f) == 0)
        return fail(MemoryError{
            MemoryError::Kind::FrameNotAllocated,
            fmt::format("VM {} page {:#x} cannot map free machine frame {:#x}", user.vm, user.gppage, f.index)});
    return rmap_->add(f.index, user);
}

Result<void, MemoryError> MachineMemory::remove_user(MachineFrame f, FrameUser user) {
    DISCO_TRY(check(f));
    return rmap_->remove(f.index, user);
}

Result<std::vector<FrameUser>, MemoryError> MachineMemory::users(MachineFrame f) const {
    DISCO_TRY(check(f));
    return rmap_->users(f.index);
}

usize MachineMemory::user_count(MachineFrame f) const { return contains(f) ? rmap_->count(f.index) : 0; }

std::optional<MachineMemory::HostAddressOwner> MachineMemory::resolve_host_address(u64 address) const {
    const auto frame = frame_of(reinterpret_cast<const u8*>(static_cast<uintptr_t>(address)));
    if (!frame) return std::nullopt;
    return HostAddressOwner{*frame, node_of(*frame), rmap_->users(frame->index)};
}

NodeStats MachineMemory::node_stats(NodeId node) const {
    const NodePool& p = *pools_[node];
    const u64 free = p.free_frames();
    return NodeStats{.frames_total = p.count(),
                     .frames_free = free,
                     .frames_in_use = p.count() - free,
                     .fallback_allocations = p.fallbacks(),
                     .foreign_allocations = p.foreign()};
}

NodeStats MachineMemory::totals() const {
    NodeStats t;
    for (NodeId n = 0; n < node_count(); ++n) {
        const NodeStats s = node_stats(n);
        t.frames_total += s.frames_total;
        t.frames_free += s.frames_free;
        t.frames_in_use += s.frames_in_use;
        t.fallback_allocations += s.fallback_allocations;
        t.foreign_allocations += s.foreign_allocations;
    }
    return t;
}
}  // namespace disco
