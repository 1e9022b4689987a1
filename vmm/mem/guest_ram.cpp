#include "vmm/mem/guest_ram.hpp"

#include <fmt/format.h>
#include <sys/mman.h>

#include <cstring>
#include <thread>

#include "vmm/mem/machine_memory.hpp"

namespace disco {

std::string MemError::message() const {
    switch (kind) {
        case Kind::OutOfRange:
            return fmt::format("guest-physical range {:#x}+{:#x} is not RAM", address, length);
        case Kind::HostAllocation:
            return fmt::format("cannot reserve {} MiB of host memory for guest RAM", length >> 20);
        case Kind::Overlap:
            return fmt::format("RAM region at {:#x} overlaps another", address);
    }
    return "memory error";
}

namespace {
bool valid_range(GuestPhysAddr base, u64 size) {
    return size != 0 && !(size & (kPageSize - 1)) && !(base.value & (kPageSize - 1)) && base.value + size > base.value;
}
}  // namespace

Result<std::unique_ptr<RamRegion>, MemError> RamRegion::create(GuestPhysAddr base, u64 size) {
    if (!valid_range(base, size)) return fail(MemError{MemError::Kind::OutOfRange, base.value, size});
    // MAP_NORESERVE: guest RAM is touched lazily, like physical RAM a guest never uses.
    void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) return fail(MemError{MemError::Kind::HostAllocation, base.value, size});
    std::unique_ptr<RamRegion> r(new RamRegion(base, size));
    r->plain_ = static_cast<u8*>(p);
    r->views_ = 1;
    r->state_.reset(new std::atomic<u32>[size >> kPageShift]());
    return r;
}

namespace {
/// The node of page `page` of VM `vm_id` under a spreading placement.
NodeId spread_node(RamPlacement placement, u32 vm_id, u64 page, unsigned nodes) {
    if (placement == RamPlacement::Interleave) return static_cast<NodeId>(page % nodes);
    // splitmix64's finaliser: a fixed, well-mixed choice, the same on every run.
    u64 x = (u64{vm_id} << 40) ^ page ^ 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return static_cast<NodeId>((x ^ (x >> 31)) % nodes);
}

/// One frame per page, each on its placement's node (the nearest with room
/// when that one is full); all or nothing.
std::optional<std::vector<MachineFrame>> spread_frames(MachineMemory& mm, RamPlacement placement, u32 vm_id,
                                                       u64 first_page, u32 pages) {
    std::vector<MachineFrame> frames;
    frames.reserve(pages);
    for (u32 i = 0; i < pages; ++i) {
        auto f = mm.allocate(spread_node(placement, vm_id, first_page + i, mm.node_count()));
        if (!f) {
            for (MachineFrame got : frames) (void)mm.release(got);
            return std::nullopt;
        }
        frames.push_back(*f);
    }
    return frames;
}
}  // namespace

Result<std::unique_ptr<RamRegion>, MemError> RamRegion::create_on(GuestPhysAddr base, u64 size, MachineMemory& mm,
                                                                  NodeId home, unsigned views, u32 vm_id,
                                                                  RamPlacement placement) {
    if (!valid_range(base, size) || size >> kPageShift > ~0u)
        return fail(MemError{MemError::Kind::OutOfRange, base.value, size});
    const u32 pages = static_cast<u32>(size >> kPageShift);
    std::vector<MachineFrame> frames;
    if (placement == RamPlacement::Home || mm.node_count() < 2) {
        auto first = mm.allocate_run(home, pages);
        if (!first) return fail(MemError{MemError::Kind::HostAllocation, base.value, size});
        for (u32 i = 0; i < pages; ++i) frames.push_back(MachineFrame(first->index + i));
    } else {
        auto spread = spread_frames(mm, placement, vm_id, base.page(), pages);
        if (!spread) return fail(MemError{MemError::Kind::HostAllocation, base.value, size});
        frames = std::move(*spread);
    }
    std::unique_ptr<RamRegion> r(new RamRegion(base, size));
    r->mm_ = &mm;
    r->vm_id_ = vm_id;
    r->views_ = std::max(1u, views);
    r->state_.reset(new std::atomic<u32>[pages]());
    r->shown_.reset(new std::atomic<u32>[u64{pages} * r->views_]);
    r->frames_.reserve(pages);
    for (u32 i = 0; i < pages; ++i) {
        const MachineFrame f = frames[i];
        r->frames_.push_back(f);
        for (unsigned v = 0; v < r->views_; ++v)
            r->shown_[u64{v} * pages + i].store(f.index, std::memory_order_relaxed);
        (void)mm.add_user(f, FrameUser{vm_id, (base.value >> kPageShift) + i});
    }
    return r;
}

u8* RamRegion::page_host(u64 index, unsigned view) const {
    if (plain_) return plain_ + (index << kPageShift);
    const u64 pages = frames_.size();
    // Acquire: the frame's bytes (copied by the page operation that published
    // this index) are visible to whoever uses the pointer.
    const u32 frame = shown_[u64{view < views_ ? view : 0} * pages + index].load(std::memory_order_acquire);
    return mm_->host(MachineFrame(frame));
}

RamRegion::~RamRegion() {
    if (plain_) munmap(plain_, size_);
    if (!mm_) return;
    for (u64 i = 0; i < frames_.size(); ++i) {
        // A shared frame lives on in the other VMs: take this VM out of its reverse map.
        (void)mm_->remove_user(frames_[i], FrameUser{vm_id_, base_.page() + i});
        (void)mm_->release(frames_[i]);
    }
    for (auto& [page, copies] : replicas_)
        for (MachineFrame f : copies)
            if (f != frames_[page]) (void)mm_->release(f);
}

GuestRam::GuestRam() : ops_(std::make_unique<Ops>()) {}
GuestRam::~GuestRam() = default;
GuestRam::GuestRam(GuestRam&&) noexcept = default;
GuestRam& GuestRam::operator=(GuestRam&&) noexcept = default;

void GuestRam::use_machine_memory(MachineMemory* mm, NodeId home, u32 vm_id, RamPlacement placement) {
    mm_ = mm;
    home_ = home;
    placement_ = placement;
    vm_id_ = vm_id;
    views_ = mm ? mm->node_count() : 1;
}

Result<void, MemError> GuestRam::add_region(GuestPhysAddr base, u64 size) {
    for (const auto& r : regions_) {
        if (base.value < r->base().value + r->size() && r->base().value < base.value + size)
            return fail(MemError{MemError::Kind::Overlap, base.value, size});
    }
    auto region = mm_ ? DISCO_TRY(RamRegion::create_on(base, size, *mm_, home_, views_, vm_id_, placement_))
                      : DISCO_TRY(RamRegion::create(base, size));
    regions_.push_back(std::move(region));
    return {};
}

bool GuestRam::is_ram(GuestPhysAddr a, u64 len) const {
    for (const auto& r : regions_)
        if (r->contains(a, len)) return true;
    return false;
}

std::optional<std::span<u8>> GuestRam::host_span(GuestPhysAddr a, u64 len) const {
    if (len == 0 || (a.value & (kPageSize - 1)) + len > kPageSize) return std::nullopt;
    u8* page = host_page(a, 0);
    if (!page || !is_ram(a, len)) return std::nullopt;
    return std::span<u8>(page + (a.value & (kPageSize - 1)), len);
}

u8* GuestRam::host_page(GuestPhysAddr a, unsigned view) const {
    const GuestPhysAddr page(a.value & ~(kPageSize - 1));
    for (const auto& r : regions_) {
        if (r->contains(page, kPageSize)) return r->page_host((page.value - r->base().value) >> kPageShift, view);
    }
    return nullptr;
}

namespace {
/// Calls copy(host bytes, offset into the buffer) for each page piece of [a, a+len).
template <class Copy>
void for_each_page_piece(const GuestRam& ram, GuestPhysAddr a, u64 len, Copy copy) {
    u64 done = 0;
    while (done < len) {
        const GuestPhysAddr at = a + done;
        const u64 take = std::min<u64>(len - done, kPageSize - (at.value & (kPageSize - 1)));
        copy(ram.host_page(at) + (at.value & (kPageSize - 1)), done, take);
        done += take;
    }
}
}  // namespace

Result<void, MemError> GuestRam::read(GuestPhysAddr a, std::span<u8> out) const {
    if (!is_ram(a, out.size())) return fail(MemError{MemError::Kind::OutOfRange, a.value, out.size()});
    // Pinned first, so that the frames looked up below cannot move while we copy.
    DmaPin pin(*this, a, out.size(), false);
    for_each_page_piece(*this, a, out.size(),
                        [&](const u8* host, u64 at, u64 n) { std::memcpy(out.data() + at, host, n); });
    return {};
}

Result<void, MemError> GuestRam::write(GuestPhysAddr a, std::span<const u8> in) {
    if (!is_ram(a, in.size())) return fail(MemError{MemError::Kind::OutOfRange, a.value, in.size()});
    {
        DmaPin pin(*this, a, in.size(), true);
        for_each_page_piece(*this, a, in.size(),
                            [&](u8* host, u64 at, u64 n) { std::memcpy(host, in.data() + at, n); });
    }
    note_dma_write(a, in.size());
    return {};
}

void GuestRam::note_dma_write(GuestPhysAddr a, u64 len) const {
    if (!dma_observer_ || len == 0) return;
    for (u64 page = a.page(); page <= (a.value + len - 1) >> kPageShift; ++page) dma_observer_(page);
}

u64 GuestRam::total_size() const {
    u64 t = 0;
    for (const auto& r : regions_) t += r->size();
    return t;
}

std::optional<GuestRam::PageRef> GuestRam::page(u64 ppage) const {
    if (ppage > (~0ull >> kPageShift)) return std::nullopt;
    const GuestPhysAddr a(ppage << kPageShift);
    for (const auto& r : regions_) {
        if (r->contains(a, kPageSize)) return PageRef{r.get(), (a.value - r->base().value) >> kPageShift};
    }
    return std::nullopt;
}

bool GuestRam::write_allowed(u64 ppage) const {
    auto p = page(ppage);
    return p && !(p->region->state(p->index).load(std::memory_order_acquire) & page_state::kDenyWrite);
}

bool GuestRam::pin(GuestPhysAddr a, u64 len, bool write) const {
    if (len == 0) return true;
    if (!is_ram(a, len)) return false;
    const u64 last = (a.value + len - 1) >> kPageShift;
    for (u64 pp = a.page(); pp <= last; ++pp) {
        auto p = page(pp);
        std::atomic<u32>& st = p->region->state(p->index);
        for (;;) {
            u32 s = st.load(std::memory_order_acquire);
            if (s & page_state::kMoving || (s & page_state::kPinMask) == page_state::kPinMask) {
                std::this_thread::yield();  // a page operation takes microseconds
                continue;
            }
            if (write && (s & (page_state::kReplicated | page_state::kShared))) {
                // A device write must reach every node's view (collapse) and
                // only this VM's copy (break the sharing) first. (Logically
                // const: the guest-visible contents do not change.)
                const_cast<GuestRam*>(this)->resolve_write(pp);
                continue;
            }
            if (st.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel)) break;
        }
    }
    return true;
}

void GuestRam::unpin(GuestPhysAddr a, u64 len) const {
    if (len == 0) return;
    const u64 last = (a.value + len - 1) >> kPageShift;
    for (u64 pp = a.page(); pp <= last; ++pp) {
        if (auto p = page(pp)) p->region->state(p->index).fetch_sub(1, std::memory_order_acq_rel);
    }
}
}  // namespace disco
