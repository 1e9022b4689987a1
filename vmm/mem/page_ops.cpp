// Page operations on a VM's pmap (guest_ram.hpp): migrate a guest page to
// another node's frame, replicate a read-only page onto every node, collapse
// the replicas again (on the first write, or on request). Disco's mechanisms
// (Bugnion et al. 1997, §4.2; ../shared/reference/disco-paper.md):
//
//   migrate:   claim the page (kMoving|kDenyWrite: stores and device pins
//              now wait) -> shoot down (no vCPU can write the old frame any
//              more) -> copy to the new frame -> repoint the pmap -> shoot
//              down again (no vCPU still reads the old frame) -> release it.
//   replicate: claim -> shoot down -> copy to a frame on each other node ->
//              repoint each node's view -> publish kReplicated|kDenyWrite.
//              vCPUs that still read the primary are right to: it stays.
//   collapse:  claim -> repoint every view at the primary -> shoot down ->
//              release the replicas -> writable again.
//
// Readers are never stopped: until the second shootdown they may read the old
// frame, whose bytes are identical because no write can happen after the first.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <thread>

#include "vmm/mem/guest_ram.hpp"
#include "vmm/mem/machine_memory.hpp"
#include "vmm/mem/shootdown.hpp"

namespace disco {
namespace {
PageOpError op_error(PageOpError::Kind kind, std::string message) { return PageOpError{kind, std::move(message)}; }
}  // namespace

Result<u32, PageOpError> GuestRam::claim(const PageRef& p) {
    std::atomic<u32>& st = p.region->state(p.index);
    u32 s = st.load(std::memory_order_acquire);
    for (;;) {
        if (s & page_state::kMoving) return fail(op_error(PageOpError::Kind::Busy, "page is being moved"));
        if (s & page_state::kPinMask) return fail(op_error(PageOpError::Kind::Busy, "page is pinned by device I/O"));
        if (st.compare_exchange_weak(s, s | page_state::kMoving | page_state::kDenyWrite, std::memory_order_seq_cst))
            return s;
    }
}

void GuestRam::shoot_down(u64 ppage) { shoot_down_pages(std::span<const u64>(&ppage, 1)); }

void GuestRam::shoot_down_pages(std::span<const u64> ppages) {
    if (!shootdown_ || ppages.empty()) return;
    const auto t0 = std::chrono::steady_clock::now();
    shootdown_->shoot_down_pages(ppages);
    ops_->stats.shootdowns.fetch_add(1, std::memory_order_relaxed);
    ops_->stats.shootdown_ns.fetch_add(
        static_cast<u64>(std::chrono::nanoseconds(std::chrono::steady_clock::now() - t0).count()),
        std::memory_order_relaxed);
}

void GuestRam::show_primary(const PageRef& p) {
    RamRegion& r = *p.region;
    for (unsigned v = 0; v < r.views_; ++v)
        r.shown_[u64{v} * r.frames_.size() + p.index].store(r.frames_[p.index].index, std::memory_order_release);
}

Result<NodeId, PageOpError> GuestRam::node_of(u64 ppage) const {
    auto p = page(ppage);
    if (!p) return fail(op_error(PageOpError::Kind::NotRam, fmt::format("page {:#x} is not RAM", ppage)));
    if (!p->region->mm_) return NodeId{0};
    return mm_->node_of(p->region->frames_[p->index]);
}

u64 GuestRam::frames_held() const {
    u64 n = 0;
    for (const auto& r : regions_) {
        n += r->frames_.size();
        for (const auto& [page, copies] : r->replicas_)
            for (MachineFrame f : copies) n += f != r->frames_[page];
    }
    return n;
}

std::optional<u32> GuestRam::state_of(u64 ppage) const {
    auto p = page(ppage);
    if (!p) return std::nullopt;
    return p->region->state(p->index).load(std::memory_order_acquire);
}

void GuestRam::for_each_frame(const std::function<void(u64, MachineFrame, u32)>& fn) const {
    std::lock_guard<std::mutex> lock(ops_->mutex);
    for (const auto& r : regions_) {
        if (!r->mm_) continue;
        for (u64 i = 0; i < r->frames_.size(); ++i)
            fn(r->base().page() + i, r->frames_[i], r->state(i).load(std::memory_order_acquire));
    }
}

Result<MachineFrame, PageOpError> GuestRam::claim_for_migration(u64 ppage, NodeId node) {
    auto p = page(ppage);
    if (!p) return fail(op_error(PageOpError::Kind::NotRam, fmt::format("page {:#x} is not RAM", ppage)));
    RamRegion& r = *p->region;
    if (!r.mm_) return fail(op_error(PageOpError::Kind::NotMovable, "RAM is not in machine memory"));
    if (node >= mm_->node_count()) return fail(op_error(PageOpError::Kind::BadNode, fmt::format("no node {}", node)));
    const MachineFrame old = r.frames_[p->index];
    if (mm_->node_of(old) == node)
        return fail(op_error(PageOpError::Kind::AlreadyThere, fmt::format("page is on node {} already", node)));
    const u32 before = DISCO_TRY(claim(*p));
    std::atomic<u32>& st = r.state(p->index);
    if (before & page_state::kReplicated) {
        st.store(before, std::memory_order_release);
        return fail(op_error(PageOpError::Kind::NotMovable, "page is replicated (collapse it first)"));
    }
    if (before & page_state::kShared) {
        st.store(before, std::memory_order_release);
        return fail(op_error(PageOpError::Kind::Shared, "page is shared copy-on-write"));
    }
    auto fresh = mm_->allocate(node, Placement::Bind);
    if (!fresh) {
        st.store(before, std::memory_order_release);
        return fail(op_error(PageOpError::Kind::NoMemory, fresh.error().message));
    }
    return *fresh;
}

Result<void, PageOpError> GuestRam::migrate(u64 ppage, NodeId node) {
    return std::move(migrate_many(std::span<const u64>(&ppage, 1), node).front());
}

std::vector<Result<void, PageOpError>> GuestRam::migrate_many(std::span<const u64> ppages, NodeId node) {
    std::lock_guard<std::mutex> lock(ops_->mutex);
    std::vector<Result<void, PageOpError>> results;
    results.reserve(ppages.size());
    struct Move {
        u64 ppage;
        PageRef ref;
        MachineFrame fresh;
    };
    std::vector<Move> moves;
    std::vector<u64> moving;
    for (u64 ppage : ppages) {
        // A page named twice moves once; the second is on the node by then.
        if (std::find(moving.begin(), moving.end(), ppage) != moving.end()) {
            results.emplace_back(fail(op_error(PageOpError::Kind::AlreadyThere, "page is named twice")));
            continue;
        }
        auto fresh = claim_for_migration(ppage, node);
        if (!fresh) {
            results.emplace_back(fail(fresh.error()));
            continue;
        }
        results.emplace_back();
        moves.push_back(Move{ppage, *page(ppage), *fresh});
        moving.push_back(ppage);
    }
    shoot_down_pages(moving);  // nobody writes the old frames from here on
    std::vector<MachineFrame> old_frames;
    for (const Move& m : moves) {
        RamRegion& r = *m.ref.region;
        const MachineFrame old = r.frames_[m.ref.index];
        std::memcpy(mm_->host(m.fresh), mm_->host(old), kPageSize);
        const FrameUser user{r.vm_id_, m.ppage};
        (void)mm_->add_user(m.fresh, user);
        (void)mm_->remove_user(old, user);
        r.frames_[m.ref.index] = m.fresh;
        show_primary(m.ref);
        old_frames.push_back(old);
    }
    shoot_down_pages(moving);  // nobody reads the old frames from here on
    for (usize i = 0; i < moves.size(); ++i) {
        (void)mm_->release(old_frames[i]);
        std::atomic<u32>& st = moves[i].ref.region->state(moves[i].ref.index);
        st.store(st.load(std::memory_order_relaxed) & ~(page_state::kMoving | page_state::kDenyWrite),
                 std::memory_order_release);
    }
    ops_->stats.migrations.fetch_add(moves.size(), std::memory_order_relaxed);
    return results;
}

Result<void, PageOpError> GuestRam::replicate(u64 ppage) {
    std::lock_guard<std::mutex> lock(ops_->mutex);
    auto p = page(ppage);
    if (!p) return fail(op_error(PageOpError::Kind::NotRam, fmt::format("page {:#x} is not RAM", ppage)));
    RamRegion& r = *p->region;
    if (!r.mm_) return fail(op_error(PageOpError::Kind::NotMovable, "RAM is not in machine memory"));
    if (r.views_ < 2) return fail(op_error(PageOpError::Kind::AlreadyThere, "one node: nothing to replicate to"));
    const u32 before = DISCO_TRY(claim(*p));
    std::atomic<u32>& st = r.state(p->index);
    if (before & page_state::kReplicated) {
        st.store(before, std::memory_order_release);
        return fail(op_error(PageOpError::Kind::AlreadyThere, "page is replicated already"));
    }
    if (before & page_state::kShared) {
        st.store(before, std::memory_order_release);
        return fail(op_error(PageOpError::Kind::Shared, "page is shared copy-on-write"));
    }
    shoot_down(ppage);  // nobody writes the primary from here on
    const MachineFrame primary = r.frames_[p->index];
    std::vector<MachineFrame> copies(r.views_, primary);
    const u64 pages = r.frames_.size();
    for (unsigned v = 0; v < r.views_; ++v) {
        if (mm_->node_of(primary) == v) continue;
        auto f = mm_->allocate(v, Placement::Bind);
        if (!f) continue;  // that node is full: its view keeps the primary
        std::memcpy(mm_->host(*f), mm_->host(primary), kPageSize);
        copies[v] = *f;
        r.shown_[u64{v} * pages + p->index].store(f->index, std::memory_order_release);
    }
    r.replicas_[p->index] = std::move(copies);
    // Replicas are read-only: the first write collapses them (resolve_write).
    st.store(page_state::kReplicated | page_state::kDenyWrite, std::memory_order_release);
    ops_->stats.replications.fetch_add(1, std::memory_order_relaxed);
    return {};
}

Result<void, PageOpError> GuestRam::collapse(u64 ppage) {
    std::lock_guard<std::mutex> lock(ops_->mutex);
    auto p = page(ppage);
    if (!p) return fail(op_error(PageOpError::Kind::NotRam, fmt::format("page {:#x} is not RAM", ppage)));
    if (!p->region->mm_) return fail(op_error(PageOpError::Kind::NotMovable, "RAM is not in machine memory"));
    const u32 before = DISCO_TRY(claim(*p));
    return collapse_locked(*p, before);
}

Result<void, PageOpError> GuestRam::collapse_locked(const PageRef& p, u32 before) {
    RamRegion& r = *p.region;
    std::atomic<u32>& st = r.state(p.index);
    if (!(before & page_state::kReplicated)) {
        st.store(before, std::memory_order_release);
        return fail(op_error(PageOpError::Kind::NotReplicated, "page has no replicas"));
    }
    // Every view back on the primary, then no vCPU may still read a replica.
    show_primary(p);
    shoot_down(r.base().page() + p.index);
    if (auto it = r.replicas_.find(p.index); it != r.replicas_.end()) {
        for (MachineFrame f : it->second)
            if (f != r.frames_[p.index]) (void)mm_->release(f);
        r.replicas_.erase(it);
    }
    st.store(before & ~(page_state::kMoving | page_state::kDenyWrite | page_state::kReplicated),
             std::memory_order_release);
    ops_->stats.collapses.fetch_add(1, std::memory_order_relaxed);
    return {};
}

void GuestRam::resolve_write(u64 ppage) {
    auto p = page(ppage);
    if (!p) return;
    std::atomic<u32>& st = p->region->state(p->index);
    for (;;) {
        const u32 s = st.load(std::memory_order_acquire);
        if (!(s & page_state::kDenyWrite)) return;
        if (s & page_state::kMoving) {
            std::this_thread::yield();
            continue;
        }
        if (s & (page_state::kReplicated | page_state::kShared)) {
            if (!ops_->mutex.try_lock()) {
                std::this_thread::yield();
                continue;
            }
            std::lock_guard<std::mutex> lock(ops_->mutex, std::adopt_lock);
            auto claimed = claim(*p);
            if (!claimed) continue;
            if (*claimed & page_state::kShared) {
                break_cow_locked(*p, *claimed);  // Disco §4.3: a private copy on the first write
            } else if (collapse_locked(*p, *claimed)) {
                // Disco collapses a replicated page on its first write (§4.2).
                ops_->stats.collapses_on_write.fetch_add(1, std::memory_order_relaxed);
            }
        }
    }
}
}  // namespace disco
