// Copy-on-write page sharing on the pmap (guest_ram.hpp): Disco's sharing of
// identical pages between VMs (Bugnion et al. 1997, §4.3) and within one.
//
//   share:  claim both pages (no stores, no pins) -> shoot both VMs down (no
//           writer of either frame) -> compare -> point the page at the
//           source's frame (a reference and a reverse-map entry more) ->
//           shoot down again (no reader of the old frame) -> release it ->
//           both pages kShared|kDenyWrite.
//   break:  (the first store to a shared page) claim -> copy the frame to a
//           new one on the same node -> repoint -> shoot down (no vCPU of this
//           VM reads the shared frame any more) -> drop this VM's reference.
//           When this VM holds the frame's last reference there is nothing to
//           copy: the page just becomes writable again (a takeover).
//   map:    (a disk read served from the disk page cache) claim -> point the
//           page at the cached frame (a reference more) -> shoot down (no vCPU
//           reads or writes the old frame any more, none holds a write
//           permission for the new one) -> release the old frame -> kShared|
//           kDenyWrite. The old contents do not matter: the read overwrites
//           the whole page, and a store racing a DMA buffer may be lost as
//           with any DMA.
#include <fmt/format.h>

#include <cstring>
#include <mutex>

#include "vmm/mem/guest_ram.hpp"
#include "vmm/mem/machine_memory.hpp"

namespace disco {
namespace {
PageOpError op_error(PageOpError::Kind kind, std::string message) { return PageOpError{kind, std::move(message)}; }
constexpr u32 kBusyBits = page_state::kMoving | page_state::kDenyWrite;
}  // namespace

Result<void, PageOpError> GuestRam::share_from(u64 ppage, GuestRam& source, u64 source_ppage) {
    if (&source == this) {
        std::lock_guard<std::mutex> lock(ops_->mutex);
        return share_locked(ppage, source, source_ppage);
    }
    // Two VMs: both operation mutexes, without an order to deadlock on.
    std::scoped_lock locks(ops_->mutex, source.ops_->mutex);
    return share_locked(ppage, source, source_ppage);
}

Result<void, PageOpError> GuestRam::share_locked(u64 ppage, GuestRam& source, u64 source_ppage) {
    auto p = page(ppage);
    auto q = source.page(source_ppage);
    if (!p || !q)
        return fail(
            op_error(PageOpError::Kind::NotRam, fmt::format("page {:#x} is not RAM", p ? source_ppage : ppage)));
    RamRegion& r = *p->region;
    RamRegion& sr = *q->region;
    if (!r.mm_ || !sr.mm_) return fail(op_error(PageOpError::Kind::NotMovable, "RAM is not in machine memory"));
    if (r.mm_ != sr.mm_)
        return fail(op_error(PageOpError::Kind::NotMovable, "the VMs do not share one machine memory"));
    if (&source == this && ppage == source_ppage)
        return fail(op_error(PageOpError::Kind::AlreadyThere, "a page cannot share with itself"));
    const MachineFrame old = r.frames_[p->index];
    const MachineFrame shared = sr.frames_[q->index];
    if (old == shared) return fail(op_error(PageOpError::Kind::AlreadyThere, "the pages share a frame already"));
    const u32 before = DISCO_TRY(claim(*p));
    std::atomic<u32>& st = r.state(p->index);
    auto source_claim = source.claim(*q);
    if (!source_claim) {
        st.store(before, std::memory_order_release);
        return fail(source_claim.error());
    }
    std::atomic<u32>& sst = sr.state(q->index);
    const auto undo = [&](PageOpError error) {
        st.store(before, std::memory_order_release);
        sst.store(*source_claim, std::memory_order_release);
        return fail(std::move(error));
    };
    if ((before | *source_claim) & page_state::kReplicated)
        return undo(op_error(PageOpError::Kind::NotMovable, "page is replicated (collapse it first)"));
    shoot_down(ppage);  // from here on nobody writes either frame
    source.shoot_down(source_ppage);
    if (std::memcmp(mm_->host(old), mm_->host(shared), kPageSize) != 0)
        return undo(op_error(PageOpError::Kind::NotIdentical, "the pages' contents differ"));
    if (auto ref = mm_->add_ref(shared); !ref)
        return undo(op_error(PageOpError::Kind::NoMemory, "the frame has too many references"));
    const FrameUser user{vm_id_, ppage};
    (void)mm_->add_user(shared, user);
    (void)mm_->remove_user(old, user);
    r.frames_[p->index] = shared;
    show_primary(*p);
    shoot_down(ppage);  // from here on nobody reads the old frame
    (void)mm_->release(old);
    // Both read-only until written (resolve_write breaks the sharing).
    st.store((before & ~kBusyBits) | page_state::kShared | page_state::kDenyWrite, std::memory_order_release);
    sst.store((*source_claim & ~kBusyBits) | page_state::kShared | page_state::kDenyWrite, std::memory_order_release);
    ops_->stats.shares.fetch_add(1, std::memory_order_relaxed);
    return {};
}

Result<void, PageOpError> GuestRam::map_shared_frame(u64 ppage, MachineFrame frame) {
    std::lock_guard<std::mutex> lock(ops_->mutex);
    auto p = page(ppage);
    if (!p) return fail(op_error(PageOpError::Kind::NotRam, fmt::format("page {:#x} is not RAM", ppage)));
    RamRegion& r = *p->region;
    if (!r.mm_) return fail(op_error(PageOpError::Kind::NotMovable, "RAM is not in machine memory"));
    if (!mm_->contains(frame)) return fail(op_error(PageOpError::Kind::NotRam, "not a machine frame"));
    const u32 before = DISCO_TRY(claim(*p));
    std::atomic<u32>& st = r.state(p->index);
    if (before & page_state::kReplicated) {
        st.store(before, std::memory_order_release);
        return fail(op_error(PageOpError::Kind::NotMovable, "page is replicated (collapse it first)"));
    }
    const MachineFrame old = r.frames_[p->index];
    if (old != frame) {
        if (auto ref = mm_->add_ref(frame); !ref) {
            st.store(before, std::memory_order_release);
            return fail(op_error(PageOpError::Kind::NoMemory, ref.error().message));
        }
        const FrameUser user{vm_id_, ppage};
        (void)mm_->add_user(frame, user);
        (void)mm_->remove_user(old, user);
        r.frames_[p->index] = frame;
        show_primary(*p);
    }
    // Also when the page showed the frame already: no vCPU may keep a write permission.
    shoot_down(ppage);
    if (old != frame) (void)mm_->release(old);
    st.store((before & ~kBusyBits) | page_state::kShared | page_state::kDenyWrite, std::memory_order_release);
    ops_->stats.frames_mapped.fetch_add(1, std::memory_order_relaxed);
    return {};
}

void GuestRam::break_cow_locked(const PageRef& p, u32 before) {
    RamRegion& r = *p.region;
    std::atomic<u32>& st = r.state(p.index);
    const u64 ppage = r.base().page() + p.index;
    const MachineFrame shared = r.frames_[p.index];
    const u32 writable = before & ~(kBusyBits | page_state::kShared);
    if (mm_->ref_count(shared) == 1) {
        // The others broke away already: the frame is this page's alone. No
        // vCPU holds a write permission for it (kDenyWrite), so none to shoot.
        st.store(writable, std::memory_order_release);
        ops_->stats.cow_takeovers.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    auto fresh = mm_->allocate(mm_->node_of(shared), Placement::Preferred);
    if (!fresh) {
        // No frame anywhere: the store cannot complete. Leave the page shared
        // (still consistent) and let the caller retry; a VM out of machine
        // memory makes no progress rather than corrupting another VM's page.
        st.store(before & ~page_state::kMoving, std::memory_order_release);
        return;
    }
    std::memcpy(mm_->host(*fresh), mm_->host(shared), kPageSize);
    const FrameUser user{vm_id_, ppage};
    (void)mm_->add_user(*fresh, user);
    (void)mm_->remove_user(shared, user);
    r.frames_[p.index] = *fresh;
    show_primary(p);
    shoot_down(ppage);  // nobody in this VM reads the shared frame any more
    (void)mm_->release(shared);
    st.store(writable, std::memory_order_release);
    ops_->stats.cow_breaks.fetch_add(1, std::memory_order_relaxed);
}
}  // namespace disco
