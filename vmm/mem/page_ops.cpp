// Page operations on a VM's pmap (guest_ram.hpp): migrate a guest page to
// another node's frame, replicate a read-only page onto every node, collapse
// the replicas again (on the first write, or on request). Disco's mechanisms
// (Bugnion et al. 1997, §4.2; ../shared/reference/disco-paper.md), on views:
//
//   claim the page (kMoving|kDenyWrite: stores and device pins now wait)
//   -> shoot down write permissions in every vCPU's soft TLB (shootdown.hpp)
//   -> copy to the new frame(s) -> mmap(MAP_FIXED) each view page onto its
//   frame -> release the old frame -> publish the new state.
//
// Readers are never stopped: until the remap they read the old frame, whose
// bytes are identical because no write can happen after the shootdown.
#include <fmt/format.h>
#include <sys/mman.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "vmm/mem/guest_ram.hpp"
#include "vmm/mem/machine_memory.hpp"
#include "vmm/mem/shootdown.hpp"

namespace disco {
namespace {
// Mapping budget. Every view page that shows a frame other than the one its
// region's run gave it splits the view's mapping (a VMA of its own), and
// Linux limits a process to vm.max_map_count of them (65530 by default).
// When a remap fails the view keeps showing its old frame, which must then
// stay allocated; so page operations keep the number of such "displaced"
// view pages, for the whole monitor (VMAs are a per-process resource), under
// half the limit and refuse operations beyond it.
std::atomic<i64> g_displaced{0};
i64 mapping_budget() {
    static const i64 budget = [] {
        i64 max = 65530;
        if (FILE* f = std::fopen("/proc/sys/vm/max_map_count", "r")) {
            long long v = 0;
            if (std::fscanf(f, "%lld", &v) == 1 && v > 0) max = v;
            std::fclose(f);
        }
        return std::max<i64>(256, (max - 8192) / 2);
    }();
    return budget;
}

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

void GuestRam::shoot_down() {
    if (!shootdown_) return;
    const auto t0 = std::chrono::steady_clock::now();
    shootdown_->shoot_down();
    ops_->stats.shootdowns.fetch_add(1, std::memory_order_relaxed);
    ops_->stats.shootdown_ns.fetch_add(static_cast<u64>(std::chrono::nanoseconds(std::chrono::steady_clock::now() - t0).count()),
                                  std::memory_order_relaxed);
}

bool GuestRam::mapping_budget_allows(u64 extra) {
    return g_displaced.load(std::memory_order_relaxed) + static_cast<i64>(extra) <= mapping_budget();
}

bool GuestRam::remap(const PageRef& p, unsigned view, MachineFrame from, MachineFrame to) {
    u8* at = p.region->views_[view] + (p.index << kPageShift);
    void* r = mmap(at, kPageSize, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, mm_->fd(),
                   static_cast<off_t>(mm_->file_offset(to)));
    if (r != at) return false;
    const u32 home = p.region->first_frame_ + static_cast<u32>(p.index);
    g_displaced.fetch_add((to.index != home) - (from.index != home), std::memory_order_relaxed);
    return true;
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

Result<void, PageOpError> GuestRam::migrate(u64 ppage, NodeId node) {
    std::lock_guard<std::mutex> lock(ops_->mutex);
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
    if (!mapping_budget_allows(r.view_count())) {
        st.store(before, std::memory_order_release);
        return fail(op_error(PageOpError::Kind::NoMemory, "the monitor's view mapping budget is spent"));
    }
    shoot_down();
    auto fresh = mm_->allocate(node, Placement::Bind);
    if (!fresh) {
        st.store(before, std::memory_order_release);
        return fail(op_error(PageOpError::Kind::NoMemory, fresh.error().message));
    }
    std::memcpy(mm_->host(*fresh), mm_->host(old), kPageSize);
    for (unsigned v = 0; v < r.view_count(); ++v) {
        if (!remap(*p, v, old, *fresh)) {
            // Views already moved show the copy, which is identical: move them
            // back. If even that fails, the page's views would disagree on
            // its frame: stop rather than let a guest see torn memory.
            for (unsigned u = 0; u < v; ++u) {
                if (!remap(*p, u, *fresh, old)) {
                    std::fputs("disco: fatal: cannot restore a guest page's view mapping after a failed migration\n",
                               stderr);
                    std::abort();
                }
            }
            (void)mm_->release(*fresh);
            st.store(before, std::memory_order_release);
            return fail(op_error(PageOpError::Kind::NoMemory, "mmap of the view failed"));
        }
    }
    const FrameUser user{r.vm_id_, ppage};
    (void)mm_->add_user(*fresh, user);
    (void)mm_->remove_user(old, user);
    r.frames_[p->index] = *fresh;
    (void)mm_->release(old);
    st.store(before & ~(page_state::kMoving | page_state::kDenyWrite), std::memory_order_release);
    ops_->stats.migrations.fetch_add(1, std::memory_order_relaxed);
    return {};
}

Result<void, PageOpError> GuestRam::replicate(u64 ppage) {
    std::lock_guard<std::mutex> lock(ops_->mutex);
    auto p = page(ppage);
    if (!p) return fail(op_error(PageOpError::Kind::NotRam, fmt::format("page {:#x} is not RAM", ppage)));
    RamRegion& r = *p->region;
    if (!r.mm_) return fail(op_error(PageOpError::Kind::NotMovable, "RAM is not in machine memory"));
    if (r.view_count() < 2) return fail(op_error(PageOpError::Kind::AlreadyThere, "one node: nothing to replicate to"));
    const u32 before = DISCO_TRY(claim(*p));
    std::atomic<u32>& st = r.state(p->index);
    if (before & page_state::kReplicated) {
        st.store(before, std::memory_order_release);
        return fail(op_error(PageOpError::Kind::AlreadyThere, "page is replicated already"));
    }
    if (!mapping_budget_allows(r.view_count())) {
        st.store(before, std::memory_order_release);
        return fail(op_error(PageOpError::Kind::NoMemory, "the monitor's view mapping budget is spent"));
    }
    shoot_down();
    const MachineFrame primary = r.frames_[p->index];
    std::vector<MachineFrame> copies(r.view_count(), primary);
    for (unsigned v = 0; v < r.view_count(); ++v) {
        if (mm_->node_of(primary) == v) continue;
        auto f = mm_->allocate(v, Placement::Bind);
        if (!f) continue;  // that node is full: its view keeps the primary
        std::memcpy(mm_->host(*f), mm_->host(primary), kPageSize);
        if (!remap(*p, v, primary, *f)) {
            (void)mm_->release(*f);
            continue;
        }
        copies[v] = *f;
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
    // No shootdown: a replicated page never had a write permission anywhere.
    const MachineFrame primary = r.frames_[p.index];
    auto it = r.replicas_.find(p.index);
    bool complete = true;
    for (unsigned v = 0; v < r.view_count(); ++v) {
        if (it == r.replicas_.end() || it->second[v] == primary) continue;
        // A view that cannot be moved back keeps its replica (still
        // allocated, so nothing else shows through); the page stays replicated.
        if (!remap(p, v, it->second[v], primary)) {
            complete = false;
            continue;
        }
        (void)mm_->release(it->second[v]);
        it->second[v] = primary;
    }
    if (!complete) {
        st.store(before & ~page_state::kMoving, std::memory_order_release);
        return fail(op_error(PageOpError::Kind::NoMemory, "mmap of a view failed; the page stays replicated"));
    }
    if (it != r.replicas_.end()) r.replicas_.erase(it);
    st.store(0, std::memory_order_release);
    ops_->stats.collapses.fetch_add(1, std::memory_order_relaxed);
    return {};
}

void GuestRam::resolve_write(u64 ppage, const std::function<void()>& poll) {
    auto p = page(ppage);
    if (!p) return;
    std::atomic<u32>& st = p->region->state(p->index);
    for (;;) {
        const u32 s = st.load(std::memory_order_acquire);
        if (!(s & page_state::kDenyWrite)) return;
        if (poll) poll();  // acknowledge shootdowns while we wait: the owner may need us
        if (s & page_state::kMoving) {
            std::this_thread::yield();
            continue;
        }
        if (s & page_state::kReplicated) {
            // Disco collapses a replicated page on its first write (§4.2).
            if (!ops_->mutex.try_lock()) {
                std::this_thread::yield();
                continue;
            }
            std::lock_guard<std::mutex> lock(ops_->mutex, std::adopt_lock);
            auto claimed = claim(*p);
            if (claimed && collapse_locked(*p, *claimed)) ops_->stats.collapses_on_write.fetch_add(1, std::memory_order_relaxed);
        }
    }
}
}  // namespace disco
