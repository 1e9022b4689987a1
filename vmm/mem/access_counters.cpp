#include "vmm/mem/access_counters.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace disco {

Result<std::unique_ptr<AccessCounters>, MemoryError> AccessCounters::create(const u8* arena, u32 frames,
                                                                            unsigned nodes) {
    auto counts = DISCO_TRY(HostMapping::reserve(u64(frames) * nodes * sizeof(u32)));
    auto written = DISCO_TRY(HostMapping::reserve(std::max<u64>(frames, 1)));
    return std::unique_ptr<AccessCounters>(
        new AccessCounters(arena, frames, nodes, std::move(counts), std::move(written)));
}

u32 AccessCounters::count(MachineFrame f, NodeId node) const {
    if (f.index >= frames_ || node >= nodes_) return 0;
    return counter(f.index, node).load(std::memory_order_relaxed);
}

u64 AccessCounters::total(MachineFrame f) const {
    if (f.index >= frames_) return 0;
    u64 t = 0;
    for (NodeId n = 0; n < nodes_; ++n) t += counter(f.index, n).load(std::memory_order_relaxed);
    return t;
}

bool AccessCounters::written(MachineFrame f) const {
    return f.index < frames_ && written_flag(f.index).load(std::memory_order_relaxed) != 0;
}

u64 AccessCounters::sum() const {
    u64 t = 0;
    for (u64 i = 0, end = u64(frames_) * nodes_; i < end; ++i)
        t += std::atomic_ref<u32>(counts_.as<u32>()[i]).load(std::memory_order_relaxed);
    return t;
}

std::vector<HotFrame> AccessCounters::hottest(usize k) const {
    struct Entry {
        u64 total;
        u32 frame;
    };
    // "Ordered before" = hotter. Under this order a std heap keeps the coldest
    // kept entry at its front, the one a hotter frame replaces.
    const auto hotter = [](const Entry& a, const Entry& b) {
        return a.total != b.total ? a.total > b.total : a.frame < b.frame;
    };
    if (k == 0) return {};
    std::vector<Entry> heap;
    heap.reserve(std::min<usize>(k, frames_));
    for (u32 f = 0; f < frames_; ++f) {
        const Entry e{total(MachineFrame(f)), f};
        if (e.total == 0) continue;
        if (heap.size() < k) {
            heap.push_back(e);
            std::push_heap(heap.begin(), heap.end(), hotter);
        } else if (hotter(e, heap.front())) {
            std::pop_heap(heap.begin(), heap.end(), hotter);
            heap.back() = e;
            std::push_heap(heap.begin(), heap.end(), hotter);
        }
    }
    std::sort_heap(heap.begin(), heap.end(), hotter);  // hottest first
    std::vector<HotFrame> out;
    out.reserve(heap.size());
    for (const Entry& e : heap) {
        HotFrame h{MachineFrame(e.frame), e.total, std::vector<u32>(nodes_)};
        for (NodeId n = 0; n < nodes_; ++n) h.counts[n] = count(h.frame, n);
        out.push_back(std::move(h));
    }
    return out;
}

void AccessCounters::reset() {
    for (u64 i = 0, end = u64(frames_) * nodes_; i < end; ++i) {
        std::atomic_ref<u32> c(counts_.as<u32>()[i]);
        if (c.load(std::memory_order_relaxed) != 0) c.store(0, std::memory_order_relaxed);
    }
    for (u32 f = 0; f < frames_; ++f) {
        std::atomic_ref<u8> w = written_flag(f);
        if (w.load(std::memory_order_relaxed) != 0) w.store(0, std::memory_order_relaxed);
    }
}

std::string AccessCounters::summary() const {
    std::string line = fmt::format("{} misses counted, top page frame ", sum());
    const auto top = hottest(1);
    if (top.empty()) return line + "none";
    return line + fmt::format("{} (node counts {})", top[0].frame.index, fmt::join(top[0].counts, "/"));
}
}  // namespace disco
