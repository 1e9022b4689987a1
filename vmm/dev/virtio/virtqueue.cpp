#include "vmm/dev/virtio/virtqueue.hpp"

#include <fmt/format.h>

#include <atomic>
#include <bit>

#include "vmm/mem/endian.hpp"

namespace disco::dev {
namespace {
constexpr ByteOrder LE = ByteOrder::Little;  // virtio 1.x structures are little-endian (§2.4)

// Split ring layout (virtio 1.1 §2.6.5, §2.6.6, §2.6.8).
constexpr u64 kDescSize = 16;     // le64 addr, le32 len, le16 flags, le16 next
constexpr u64 kUsedElemSize = 8;  // le32 id, le32 len
constexpr u64 kRingHeader = 4;    // le16 flags, le16 idx
constexpr u16 kDescNext = 1, kDescWrite = 2, kDescIndirect = 4;
constexpr u16 kAvailNoInterrupt = 1;  // VIRTQ_AVAIL_F_NO_INTERRUPT
// Alignment of each part (§2.6, "Virtqueue Part Alignment").
constexpr u64 kDescAlign = 16, kAvailAlign = 2, kUsedAlign = 4;

constexpr u64 avail_bytes(u16 n) { return kRingHeader + 2ull * n + 2; }          // + used_event
constexpr u64 used_bytes(u16 n) { return kRingHeader + kUsedElemSize * n + 2; }  // + avail_event

struct Desc {
    u64 addr;
    u32 len;
    u16 flags;
    u16 next;
};

/// vring_need_event of §2.6.7.2: whether new_idx has passed event since old.
constexpr bool need_event(u16 event, u16 new_idx, u16 old) {
    return static_cast<u16>(new_idx - event - 1) < static_cast<u16>(new_idx - old);
}
}  // namespace

std::optional<std::string> VirtQueue::check_layout(const GuestRam& ram, const VirtQueueLayout& l, u16 max_size) {
    if (l.size == 0 || !std::has_single_bit(l.size) || l.size > max_size)
        return fmt::format("queue size {} is not a power of 2 between 1 and {}", l.size, max_size);
    const struct {
        const char* name;
        GuestPhysAddr at;
        u64 bytes, align;
    } parts[] = {{"descriptor table", l.desc, kDescSize * l.size, kDescAlign},
                 {"available ring", l.avail, avail_bytes(l.size), kAvailAlign},
                 {"used ring", l.used, used_bytes(l.size), kUsedAlign}};
    for (const auto& p : parts) {
        if (p.at.value % p.align) return fmt::format("{} at {:#x} is not {}-byte aligned", p.name, p.at.value, p.align);
        if (!ram.is_ram(p.at, p.bytes))
            return fmt::format("{} at {:#x}+{:#x} is outside guest RAM", p.name, p.at.value, p.bytes);
    }
    return std::nullopt;
}

VirtQueue::VirtQueue(GuestRam& ram, const VirtQueueLayout& layout, u64 features)
    : ram_(ram),
      layout_(layout),
      indirect_(features & virtio_feature::kIndirectDesc),
      event_idx_(features & virtio_feature::kEventIdx) {}

std::string VirtQueue::fault(std::string what) {
    broken_ = true;
    return what;
}

// Ring indices are shared with vCPUs that store them while we load them, so
// they are accessed atomically (std::atomic_ref; the layout check guarantees
// their alignment). A lookup that fails cannot happen after check_layout but
// is still answered safely (0, or a dropped store) and never faults the host.
u16 VirtQueue::load_u16(GuestPhysAddr a, bool acquire) const {
    DmaPin pin(ram_, a, 2, false);  // first: the frame must not move before we read it
    auto s = ram_.host_span(a, 2);
    if (!pin || !s) return 0;
    std::atomic_ref<u16> ref(*reinterpret_cast<u16*>(s->data()));
    return guest_to_host<LE>(ref.load(acquire ? std::memory_order_acquire : std::memory_order_relaxed));
}

void VirtQueue::store_u16(GuestPhysAddr a, u16 v, bool release) {
    DmaPin pin(ram_, a, 2, true);  // first: the frame must not move before we write it
    auto s = ram_.host_span(a, 2);
    if (!pin || !s) return;
    std::atomic_ref<u16> ref(*reinterpret_cast<u16*>(s->data()));
    ref.store(guest_to_host<LE>(v), release ? std::memory_order_release : std::memory_order_relaxed);
}

Result<std::optional<DescChain>, std::string> VirtQueue::pop() {
    if (broken_) return std::nullopt;
    // The driver writes the ring entry, then a write barrier, then avail->idx
    // (§2.6.13.3 and .5). The acquire load of idx pairs with that barrier:
    // every entry and descriptor read below sees what the driver wrote first.
    const u16 avail_idx = load_u16(layout_.avail + 2, true);
    if (avail_idx == last_avail_) return std::nullopt;
    if (static_cast<u16>(avail_idx - last_avail_) > layout_.size)
        return fail(fault(fmt::format("available index {} is more than the queue size {} ahead of the device's {}",
                                      avail_idx, layout_.size, last_avail_)));
    const u16 slot = last_avail_ & (layout_.size - 1);
    const u16 head = load_u16(layout_.avail + kRingHeader + 2ull * slot, false);
    if (head >= layout_.size)
        return fail(fault(fmt::format("available ring entry {} names descriptor {}, past the queue size {}", slot, head,
                                      layout_.size)));
    auto chain = walk_chain(head);
    if (!chain) return fail(fault(std::move(chain).error()));
    ++last_avail_;
    return std::optional<DescChain>(std::move(*chain));
}

Result<DescChain, std::string> VirtQueue::walk_chain(u16 head) {
    DescChain c;
    c.head = head;
    GuestPhysAddr table = layout_.desc;
    u32 table_len = layout_.size;  // entries in the table being walked
    u32 budget = layout_.size;     // descriptors this table may still contribute: more means a loop
    bool in_indirect = false;
    u16 i = head;
    for (;;) {
        if (budget-- == 0)
            return fail(fmt::format("descriptor chain from head {} is longer than {} (a loop?)", head,
                                    in_indirect ? table_len : layout_.size));
        u8 raw[kDescSize];
        if (!ram_.read(table + kDescSize * i, raw))
            return fail(fmt::format("descriptor {} at {:#x} is outside guest RAM", i, table.value + kDescSize * i));
        const Desc d{load_guest<LE, u64>(raw), load_guest<LE, u32>(raw + 8), load_guest<LE, u16>(raw + 12),
                     load_guest<LE, u16>(raw + 14)};
        const std::string where =
            fmt::format("{}descriptor {} (chain head {})", in_indirect ? "indirect " : "", i, head);
        if (d.flags & kDescIndirect) {
            // §2.6.5.3.1: only with the feature, never inside an indirect table,
            // never together with NEXT; the table holds whole descriptors.
            if (!indirect_) return fail(where + " is indirect, but VIRTIO_F_INDIRECT_DESC was not negotiated");
            if (in_indirect) return fail(where + " is indirect inside an indirect table");
            if (d.flags & kDescNext) return fail(where + " has both INDIRECT and NEXT set");
            if (d.len == 0 || d.len % kDescSize || d.len / kDescSize > layout_.size)
                return fail(fmt::format("{}: indirect table length {:#x} is not 1 to {} descriptors", where, d.len,
                                        layout_.size));
            if (!ram_.is_ram(GuestPhysAddr(d.addr), d.len))
                return fail(
                    fmt::format("{}: indirect table at {:#x}+{:#x} is outside guest RAM", where, d.addr, d.len));
            table = GuestPhysAddr(d.addr);
            table_len = budget = d.len / kDescSize;
            in_indirect = true;
            i = 0;
            continue;
        }
        if (d.len > 0) {
            if (!ram_.is_ram(GuestPhysAddr(d.addr), d.len))
                return fail(fmt::format("{}: buffer at {:#x}+{:#x} is outside guest RAM", where, d.addr, d.len));
            const DescSegment seg{GuestPhysAddr(d.addr), d.len};
            if (d.flags & kDescWrite) {
                c.writable.push_back(seg);
                c.writable_bytes += d.len;
            } else {
                // §2.6.4.2: device-readable buffers come before device-writable ones.
                if (!c.writable.empty()) return fail(where + " is device-readable but follows a device-writable one");
                c.readable.push_back(seg);
                c.readable_bytes += d.len;
            }
        }
        if (!(d.flags & kDescNext)) return c;
        if (d.next >= table_len)
            return fail(fmt::format("{}: next index {} is past the table's {} entries", where, d.next, table_len));
        i = d.next;
    }
}

Result<void, std::string> VirtQueue::push(u16 head, u32 written) {
    if (broken_) return {};
    const u16 slot = used_idx_ & (layout_.size - 1);
    u8 elem[kUsedElemSize];
    store_guest<LE, u32>(elem, head);
    store_guest<LE, u32>(elem + 4, written);
    if (!ram_.write(layout_.used + kRingHeader + kUsedElemSize * slot, elem))
        return fail(fault("used ring is outside guest RAM"));
    ++used_idx_;
    // §2.6.8.2: the used element (and the data it describes) must be visible
    // before the new used->idx; the release store is that write barrier.
    store_u16(layout_.used + 2, used_idx_, true);
    return {};
}

bool VirtQueue::needs_interrupt() {
    if (broken_) return false;
    // Full barrier between publishing used->idx and reading the driver's
    // suppression state: the driver re-enables interrupts by writing
    // flags/used_event and then re-reading used->idx with a full barrier
    // between (Linux virtqueue_enable_cb), so one of the two sides sees the other.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (event_idx_) {
        const u16 used_event = load_u16(layout_.avail + kRingHeader + 2ull * layout_.size, false);
        const bool need = need_event(used_event, used_idx_, signalled_used_);
        signalled_used_ = used_idx_;
        return need;
    }
    if (signalled_used_ == used_idx_) return false;
    signalled_used_ = used_idx_;
    return !(load_u16(layout_.avail, false) & kAvailNoInterrupt);
}

bool VirtQueue::arm_notification() {
    if (broken_) return false;
    // §2.6.7.2: the driver notifies when it makes entry avail_event
    // available, so ask for the first one not yet seen. The full barrier
    // between that store and re-reading avail->idx pairs with the driver's
    // between storing idx and reading avail_event: either it notifies or we
    // see its new entries here.
    if (event_idx_) store_u16(layout_.used + kRingHeader + kUsedElemSize * layout_.size, last_avail_, false);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    return load_u16(layout_.avail + 2, true) != last_avail_;
}
}  // namespace disco::dev
