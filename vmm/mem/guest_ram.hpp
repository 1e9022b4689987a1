// Guest RAM: a VM's guest-physical RAM ranges. Two backings:
//  - plain: an anonymous host mapping per region (bare-metal board, tests);
//  - machine memory (DESIGN.md "The memory path"): each guest page is shown
//    by a machine frame of the monitor's MachineMemory. This is the VM's
//    pmap: per guest-physical page, the frame each NUMA node's vCPUs see
//    (the same frame, or the node's own replica) and a state word. A page
//    operation (migrate, replicate, collapse) copies and then repoints the
//    page; no host mapping changes, so operations cost a copy and shootdowns.
//
// Host pointers into guest RAM are handed out per 4 KiB page (host_page,
// host_span within a page) and stay valid only as long as the page cannot
// move: a vCPU's soft TLB holds them until a shootdown drops them
// (shootdown.hpp); devices pin the pages they touch for the duration of the
// access (DMA), and page operations leave pinned pages alone.
//
// Thread model: regions are added before vCPUs start and never removed while
// they run. Accessors, pins and page operations may be called from any
// thread; page operations serialise on one per-VM mutex and use the VM's
// Shootdown to make vCPUs drop stale soft-TLB entries.
#pragma once
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "vmm/mem/address.hpp"
#include "vmm/mem/machine_frame.hpp"
#include "vmm/util/result.hpp"

namespace disco {

class MachineMemory;
class Shootdown;

/// Errors of the memory module's guest side.
struct MemError {
    enum class Kind { OutOfRange, HostAllocation, Overlap } kind;
    u64 address = 0;
    u64 length = 0;
    std::string message() const;
};

/// Why a page operation did nothing (the guest page is left as it was).
struct PageOpError {
    enum class Kind {
        NotRam,         // MMIO, a hole, or beyond RAM
        NotMovable,     // plain (non-machine-memory) RAM
        Busy,           // being moved, or pinned by device I/O right now
        NotReplicated,  // collapse of a page that has no replicas
        AlreadyThere,   // migrate to the node the page is on / replicate an already replicated page
        BadNode,
        NoMemory,      // no frame on any node
        NotIdentical,  // share: the two pages' contents differ
        Shared,        // migrate/replicate of a page shared copy-on-write (it must be broken first)
    } kind;
    std::string message;
};

/// Per-page pmap state word: pin count (device accesses in flight) and flags.
namespace page_state {
constexpr u32 kPinMask = 0xFFFF;
constexpr u32 kDenyWrite = 1u << 16;   // soft TLBs hold no write permission; stores take the slow path
constexpr u32 kMoving = 1u << 17;      // a page operation owns the page: stores and pins wait
constexpr u32 kReplicated = 1u << 18;  // each view shows its node's copy (read-only until collapsed)
constexpr u32 kShared = 1u << 19;      // the frame is shared copy-on-write (read-only until broken)
}  // namespace page_state

/// Counters of page operations (relaxed; for statistics).
struct PageOpStats {
    std::atomic<u64> migrations{0}, replications{0}, collapses{0}, collapses_on_write{0}, busy{0};
    std::atomic<u64> shares{0}, cow_breaks{0}, cow_takeovers{0};
    std::atomic<u64> frames_mapped{0};  // map_shared_frame (the disk page cache)
    std::atomic<u64> shootdowns{0}, shootdown_ns{0};
};

/// Where a VM's RAM frames start out (`disco run --numa-placement`).
enum class RamPlacement {
    Home,        // one run on the VM's home node (or the nearest with room): what a NUMA-aware OS asks for
    Interleave,  // page i on node i mod N, as numactl --interleave
    Random,      // each page on a node picked by a hash of the VM and the page: NUMA-oblivious
                 // first touch, the starting point of the paper's migration experiment (Figure 8)
};

/// One contiguous RAM range [base, base + size).
class RamRegion {
public:
    static Result<std::unique_ptr<RamRegion>, MemError> create(GuestPhysAddr base, u64 size);
    /// Backed by machine frames (a run on `home`, or the nearest node with
    /// room; or spread over the nodes as `placement` says), with a pmap for
    /// `views` NUMA nodes.
    static Result<std::unique_ptr<RamRegion>, MemError> create_on(GuestPhysAddr base, u64 size, MachineMemory& mm,
                                                                  NodeId home, unsigned views, u32 vm_id,
                                                                  RamPlacement placement = RamPlacement::Home);
    ~RamRegion();
    RamRegion(const RamRegion&) = delete;
    RamRegion& operator=(const RamRegion&) = delete;

    GuestPhysAddr base() const { return base_; }
    u64 size() const { return size_; }
    /// The host mapping of a plain region; nullptr for machine memory, whose
    /// pages have no common mapping (use GuestRam::host_page).
    u8* plain_host() const { return plain_; }
    bool contains(GuestPhysAddr a, u64 len) const {
        return a.value >= base_.value && len <= size_ && a.value - base_.value <= size_ - len;
    }
    std::atomic<u32>& state(u64 index) const { return state_[index]; }

private:
    friend class GuestRam;
    RamRegion(GuestPhysAddr b, u64 s) : base_(b), size_(s) {}
    /// Host address of page `index` as node `view`'s vCPUs see it.
    u8* page_host(u64 index, unsigned view) const;

    GuestPhysAddr base_;
    u64 size_;
    u8* plain_ = nullptr;
    std::unique_ptr<std::atomic<u32>[]> state_;
    // Machine-memory backing (empty for plain regions).
    MachineMemory* mm_ = nullptr;
    u32 vm_id_ = 0;
    unsigned views_ = 0;
    /// The pmap's frames: shown_[view * pages + i] is the frame index node
    /// `view` sees for page i (relaxed-atomic: vCPUs read it when they fill
    /// their soft TLB, page operations repoint it).
    std::unique_ptr<std::atomic<u32>[]> shown_;
    std::vector<MachineFrame> frames_;                             // primary frame per page (ops mutex)
    std::unordered_map<u64, std::vector<MachineFrame>> replicas_;  // page -> frame per view (ops mutex)
};

/// All RAM of one VM: a short list of regions (RAM0 below the MMIO hole and
/// RAM1 above it). Lookups are bounds- and overflow-checked.
class GuestRam {
public:
    GuestRam();
    ~GuestRam();
    GuestRam(GuestRam&&) noexcept;
    GuestRam& operator=(GuestRam&&) noexcept;
    /// Regions added from now on are machine-memory backed (home node, one view per node).
    void use_machine_memory(MachineMemory* mm, NodeId home, u32 vm_id, RamPlacement placement = RamPlacement::Home);
    /// The VM's shootdown coordinator (needed before page operations run).
    void set_shootdown(Shootdown* sd) { shootdown_ = sd; }

    Result<void, MemError> add_region(GuestPhysAddr base, u64 size);
    /// Whether [a, a+len) is RAM (wholly inside one region).
    bool is_ram(GuestPhysAddr a, u64 len) const;
    /// Host bytes for [a, a+len) when they are RAM and lie within one 4 KiB
    /// page (node 0's frame). Valid while the page is pinned (DmaPin).
    std::optional<std::span<u8>> host_span(GuestPhysAddr a, u64 len) const;
    /// Host pointer to the 4 KiB page holding a as node `view` sees it, or
    /// nullptr when a is not RAM. Valid until the next shootdown of that
    /// page (vCPUs) or while it is pinned (devices).
    u8* host_page(GuestPhysAddr a, unsigned view = 0) const;
    /// Copies with the pages pinned (devices and the board).
    Result<void, MemError> read(GuestPhysAddr a, std::span<u8> out) const;
    Result<void, MemError> write(GuestPhysAddr a, std::span<const u8> in);
    u64 total_size() const;
    const std::vector<std::unique_ptr<RamRegion>>& regions() const { return regions_; }
    unsigned view_count() const { return views_; }
    MachineMemory* machine_memory() const { return mm_; }

    // ---- the pmap, for the CPU ----
    /// May a soft TLB hold a write permission for this page now?
    bool write_allowed(u64 ppage) const;
    /// Makes the page writable (collapses replicas, waits for a page operation
    /// to end). A vCPU calls it quiescent (shootdown.hpp), since it may wait
    /// for, or run, a page operation that shoots down every vCPU.
    void resolve_write(u64 ppage);

    // ---- pins, for devices (DMA) ----
    /// Pins the pages of [a, a+len) (making them writable first if `write`):
    /// page operations leave pinned pages alone. false when not RAM.
    bool pin(GuestPhysAddr a, u64 len, bool write) const;
    void unpin(GuestPhysAddr a, u64 len) const;

    // ---- page operations (monitor-internal API) ----
    Result<void, PageOpError> migrate(u64 ppage, NodeId node);
    /// migrate() for many pages to one node, with two shootdowns for all of
    /// them instead of two each (what makes a policy's batch of moves cheap
    /// when the vCPUs are busy: each shootdown waits for every running vCPU to
    /// reach a safe point). One result per page, in order; a page that fails
    /// is left as it was and the others still move.
    std::vector<Result<void, PageOpError>> migrate_many(std::span<const u64> ppages, NodeId node);
    Result<void, PageOpError> replicate(u64 ppage);
    Result<void, PageOpError> collapse(u64 ppage);
    /// Transparent page sharing (Disco §4.3, ESX's content-based sharing):
    /// when page `ppage` holds the same bytes as `source`'s page
    /// `source_ppage` (checked here, with both pages held still), this page
    /// drops its frame and shows source's, copy-on-write for both: the first
    /// write to either gets that VM a private copy (resolve_write). Both RAMs
    /// must use the same MachineMemory; source may be this RAM.
    Result<void, PageOpError> share_from(u64 ppage, GuestRam& source, u64 source_ppage);
    /// Read-time sharing (the global disk page cache, disk_page_cache.hpp): the
    /// page drops its frame and shows `frame`, which holds what a device read
    /// would have written over the whole page, shared copy-on-write: the first
    /// write to the page gets this VM a private copy. The page takes a
    /// reference of its own (the caller keeps its). Refused, and the page left
    /// as it was, when the page is pinned (device I/O), moving or replicated,
    /// or is not machine-memory RAM: the caller copies then.
    Result<void, PageOpError> map_shared_frame(u64 ppage, MachineFrame frame);
    /// The node holding the page's (primary) frame.
    Result<NodeId, PageOpError> node_of(u64 ppage) const;
    const PageOpStats& page_op_stats() const { return ops_->stats; }
    /// Every machine frame this VM holds (primaries and replicas).
    u64 frames_held() const;
    /// The pmap state word of a page (page_state), nullopt when it is not RAM.
    std::optional<u32> state_of(u64 ppage) const;
    /// One pass over the pmap, under the operations mutex: fn(ppage, primary
    /// frame, state word) for each page of machine-memory RAM.
    void for_each_frame(const std::function<void(u64, MachineFrame, u32)>& fn) const;

    /// Devices write guest RAM behind the CPU's back (DMA through host
    /// pointers from host_span, or write()): each such write is reported here
    /// page by page, so that code a vCPU decoded from those pages is dropped
    /// before the guest is told the data is there (DESIGN.md, "Code pages").
    void set_dma_observer(std::function<void(u64 ppage)> observer) { dma_observer_ = std::move(observer); }
    void note_dma_write(GuestPhysAddr a, u64 len) const;

private:
    struct PageRef {
        RamRegion* region;
        u64 index;
    };
    std::optional<PageRef> page(u64 ppage) const;
    /// Claims the page for an operation (kMoving); Busy if pinned or moving.
    Result<u32, PageOpError> claim(const PageRef& p);
    /// Makes every vCPU drop its soft-TLB entries for the page.
    void shoot_down(u64 ppage);
    void shoot_down_pages(std::span<const u64> ppages);
    /// migrate()'s checks and claim for one page of a batch: the fresh frame on `node`.
    Result<MachineFrame, PageOpError> claim_for_migration(u64 ppage, NodeId node);
    /// Points every node's view of the page at its primary frame.
    static void show_primary(const PageRef& p);
    Result<void, PageOpError> collapse_locked(const PageRef& p, u32 old_state);
    /// A write to a shared page: a private copy (or the frame itself once nobody else holds it).
    void break_cow_locked(const PageRef& p, u32 old_state);
    /// Checks, claims and merges for share_from (both RAMs' operation mutexes held).
    Result<void, PageOpError> share_locked(u64 ppage, GuestRam& source, u64 source_ppage);

    std::vector<std::unique_ptr<RamRegion>> regions_;
    std::function<void(u64)> dma_observer_;
    MachineMemory* mm_ = nullptr;
    NodeId home_ = 0;
    RamPlacement placement_ = RamPlacement::Home;
    u32 vm_id_ = 0;
    unsigned views_ = 1;
    Shootdown* shootdown_ = nullptr;
    struct Ops {
        std::mutex mutex;  // serialises page operations
        PageOpStats stats;
    };
    std::unique_ptr<Ops> ops_;
};

/// Pins a device access for its duration (RAII).
class DmaPin {
public:
    DmaPin(const GuestRam& ram, GuestPhysAddr a, u64 len, bool write)
        : ram_(ram), a_(a), len_(len), ok_(ram.pin(a, len, write)) {}
    ~DmaPin() {
        if (ok_) ram_.unpin(a_, len_);
    }
    DmaPin(const DmaPin&) = delete;
    DmaPin& operator=(const DmaPin&) = delete;
    explicit operator bool() const { return ok_; }

private:
    const GuestRam& ram_;
    GuestPhysAddr a_;
    u64 len_;
    bool ok_;
};
}  // namespace disco
