// The MMU: segment map and JTLB translation (MD00091 ch. 4), the TLB
// instructions, the soft TLB that caches translations for the fast path, and
// the memory slow paths (RAM, MMIO, faults).
#include <algorithm>
#include <bit>

#include "vmm/cpu/cpu.hpp"

namespace disco::cpu {
namespace {
constexpr u64 kSegMask = (1ull << kSegBits) - 1;
constexpr u64 kPaMask = (1ull << kPaBits) - 1;
constexpr u64 kEntryHiMask = (3ull << 62) | (kSegMask & ~0x1FFFull) | 0xFF;
constexpr u64 kPageGrainRIE = 1ull << 31, kPageGrainXIE = 1ull << 30, kPageGrainIEC = 1ull << 27;
/// Size in bytes of one page of an entry's even/odd pair.
u64 page_size(u64 pagemask) { return ((pagemask | 0x1FFF) + 1) >> 1; }
}  // namespace

int Cpu::tlb_lookup(u64 va) const {
    const u64 asid = cp0.entryhi & 0xFF;
    for (unsigned i = 0; i < kTlbEntries; ++i) {
        const TlbEntry& e = tlb[i];
        const u64 mask = e.vpn_mask();
        if ((va & mask) == (e.hi & mask) && (e.global() || (e.hi & 0xFF) == asid)) return static_cast<int>(i);
    }
    return -1;
}

// Segments of the 64-bit address space (MD00091 §4.3, Figure 4.2), in the
// order of the tests below. Which need the TLB, which are reachable from
// which mode, and which need Status.UX/SX/KX follow QEMU's MIPS64R2-generic.
Cpu::Fault Cpu::translate(u64 va, Access access, Translation& t) {
    const u64 st = cp0.status;
    t.page_va = va & ~(kPageSize - 1);
    auto unmapped = [&](u64 pa) {
        t.paddr = pa;
        t.readable = t.writable = t.executable = true;
        return Fault::None;
    };
    bool mapped = false;
    if (va >= 0xFFFFFFFF80000000ull) {     // 32-bit compatibility kernel segments
        if (va < 0xFFFFFFFFC0000000ull) {  // kseg0, kseg1
            if (mode_ != 0) return Fault::AddressError;
            return unmapped(va & 0x1FFFFFFFull);
        }
        if (va < 0xFFFFFFFFE0000000ull) {  // sseg / ksseg
            if (mode_ == 2) return Fault::AddressError;
        } else if (mode_ != 0) {  // kseg3
            return Fault::AddressError;
        }
        mapped = true;
    } else if (va < 0x80000000ull) {  // useg: unmapped while ERL=1 (MD00091 §4.5)
        if ((st & status::ERL) && mode_ == 0) return unmapped(va);
        mapped = true;
    } else {
        switch (va >> 62) {
            case 0:  // xuseg
                if (!(st & status::UX) || va > kSegMask) return Fault::AddressError;
                break;
            case 1:  // xsseg
                if (mode_ == 2 || !(st & status::SX) || (va & ~(3ull << 62)) > kSegMask) return Fault::AddressError;
                break;
            case 2:  // xkphys: unmapped, the CCA in bits 61:59
                if (mode_ != 0 || !(st & status::KX) || (va & 0x07FFFFFFFFFFFFFFull) > kPaMask)
                    return Fault::AddressError;
                return unmapped(va & kPaMask);
            default:  // xkseg
                if (mode_ != 0 || !(st & status::KX) || va > (0xFFFFFFFF7FFFFFFFull & (kSegMask | (3ull << 62))))
                    return Fault::AddressError;
                break;
        }
        mapped = true;
    }
    (void)mapped;
    const int i = tlb_lookup(va);
    if (i < 0) return Fault::TlbRefill;
    const TlbEntry& e = tlb[i];
    const u64 size = page_size(e.pagemask);
    const u64 lo = e.lo[(va & size) ? 1 : 0];
    if (!(lo & 2)) return Fault::TlbInvalid;
    const bool ri = (cp0.pagegrain & kPageGrainRIE) && (lo >> 63);
    const bool xi = (cp0.pagegrain & kPageGrainXIE) && ((lo >> 62) & 1);
    if (access == Access::Store && !(lo & 4)) return Fault::TlbModified;
    if (access == Access::Load && ri) return Fault::TlbRi;
    if (access == Access::Fetch && xi) return Fault::TlbXi;
    const u64 base = (((lo >> 6) & 0xFFFFFF) << 12) & ~(size - 1);
    t.paddr = base | (va & (size - 1));
    t.readable = !ri;
    t.writable = (lo & 4) != 0;
    t.executable = !xi;
    return Fault::None;
}

void Cpu::set_tlb_fault_regs(u64 va) {
    cp0.badvaddr = va;
    cp0.context = (cp0.context & ~0x7FFFFFull) | ((va >> 9) & 0x7FFFF0ull);
    const u64 ptebase_mask = ~0ull << (kSegBits - 7);
    cp0.xcontext = (cp0.xcontext & ptebase_mask) | ((va >> 62) << (kSegBits - 9)) |
                   ((va >> 9) & (((1ull << (kSegBits - 13)) - 1) << 4));
    cp0.entryhi = (va & (kEntryHiMask & ~0xFFull)) | (cp0.entryhi & 0xFF);
}

void Cpu::raise_translation_fault(const Decoded* d, u64 va, Access access, Fault f) {
    const bool store = access == Access::Store;
    u64 epc = d ? pc_of(d) : pc;
    bool bd = d ? in_delay : pending_delay;
    if (bd) epc -= 4;
    if (f == Fault::AddressError) {
        raise_at(epc, bd, store ? Exc::AdES : Exc::AdEL, va, true, false);
        return;
    }
    set_tlb_fault_regs(va);
    const bool iec = cp0.pagegrain & kPageGrainIEC;
    switch (f) {
        case Fault::TlbRefill:
            raise_at(epc, bd, store ? Exc::TLBS : Exc::TLBL, va, true, true);
            break;
        case Fault::TlbInvalid:
            raise_at(epc, bd, store ? Exc::TLBS : Exc::TLBL, va, true, false);
            break;
        case Fault::TlbModified:
            raise_at(epc, bd, Exc::Mod, va, true, false);
            break;
        case Fault::TlbRi:
            raise_at(epc, bd, iec ? Exc::TLBRI : Exc::TLBL, va, true, false);
            break;
        case Fault::TlbXi:
            raise_at(epc, bd, iec ? Exc::TLBXI : Exc::TLBL, va, true, false);
            break;
        default:
            break;
    }
}

// ---- Soft TLB ----------------------------------------------------------------
void Cpu::fill_soft_tlb(u64 va, const Translation& t, u8* host_page, bool store) {
    SoftTlbEntry& e = stlb_sets_[mode_][(va >> kPageShift) % kSoftTlbSize];
    const u64 ppage = t.paddr >> kPageShift;
    e.read_tag = t.readable ? t.page_va : kNoTag;
    // Pages holding decoded code get no write tag: their stores take the slow
    // path, which tells the code watch (DESIGN.md, "Code pages").
    // Pages the pmap denies writes to (being moved, replicated) get none
    // either: their stores resolve that first (guest_ram.hpp). The host
    // pointer stays good until a shootdown names the page (shootdown.hpp).
    e.write_tag = t.writable && !bus_.code->watched(ppage) && bus_.ram->write_allowed(ppage) ? t.page_va : kNoTag;
    e.fetch_tag = t.executable ? t.page_va : kNoTag;
    e.addend = reinterpret_cast<uintptr_t>(host_page) - t.page_va;
    e.ppage = ppage;
    if (AccessCounters* ac = bus_.access_counters) ac->note(host_page, bus_.view, store);
}

void Cpu::flush_soft_tlb() {
    for (auto& set : stlb_sets_)
        for (auto& e : set) e = SoftTlbEntry{kNoTag, kNoTag, kNoTag, 0, 0};
}

void Cpu::drop_write_tags() {
    for (auto& set : stlb_sets_)
        for (auto& e : set) e.write_tag = kNoTag;
}

void Cpu::drop_guest_page(u64 ppage) {
    for (auto& set : stlb_sets_)
        for (auto& e : set)
            if (e.ppage == ppage) e = SoftTlbEntry{kNoTag, kNoTag, kNoTag, 0, 0};
}

void Cpu::acknowledge_shootdown() {
    // Read the epoch first: everything the initiator published before it is
    // seen by the fills that follow the drop.
    const u64 epoch = bus_.shootdown->epoch();
    shot_pages_.clear();
    if (!bus_.shootdown->pages_since(shootdown_seen_, epoch, [this](u64 ppage) { shot_pages_.push_back(ppage); })) {
        flush_soft_tlb();
    } else if (shot_pages_.size() <= 4) {
        for (u64 ppage : shot_pages_) drop_guest_page(ppage);
    } else {
        // A batch (a policy's migrations): one pass over the soft TLB, not one per page.
        std::sort(shot_pages_.begin(), shot_pages_.end());
        for (auto& set : stlb_sets_)
            for (auto& e : set)
                if (std::binary_search(shot_pages_.begin(), shot_pages_.end(), e.ppage))
                    e = SoftTlbEntry{kNoTag, kNoTag, kNoTag, 0, 0};
    }
    shootdown_seen_ = epoch;
    bus_.shootdown->acknowledge(index_, epoch);
}

u8* Cpu::resolve_write(u64 paddr) {
    // Quiescent while the pmap makes the page writable: that may wait for a
    // page operation, or run a collapse, that shoots down every vCPU. Leaving
    // flushed the soft TLB if anything was shot down, and the page may now be
    // in another frame: look it up again.
    {
        Quiescent q(*this);
        bus_.ram->resolve_write(paddr >> kPageShift);
    }
    return bus_.ram->host_page(GuestPhysAddr(paddr), bus_.view);
}

void Cpu::enter_quiescent() {
    if (bus_.shootdown) bus_.shootdown->enter_quiescent(index_);
}

void Cpu::leave_quiescent() {
    if (!bus_.shootdown) return;
    const u64 epoch = bus_.shootdown->leave_quiescent(index_);
    if (epoch != shootdown_seen_) {
        flush_soft_tlb();
        shootdown_seen_ = epoch;
        // Mid-page (after MMIO or a slow-path wait) the run loop goes on with
        // the current code page, whose not yet decoded slots read its frame:
        // that frame may have been replaced and freed meanwhile.
        if (cur_page)
            if (u8* host = bus_.ram->host_page(GuestPhysAddr(cur_page->ppage << kPageShift), bus_.view))
                const_cast<CodePage*>(cur_page)->host = host;  // the Cpu's own code page
    }
    bus_.shootdown->acknowledge(index_, epoch);
}

void Cpu::request_home(unsigned view) {
    home_request_.store(view, std::memory_order_release);
    kick();
}

void Cpu::apply_home() {
    const u32 view = home_request_.exchange(kNoHomeRequest, std::memory_order_acq_rel);
    if (view == kNoHomeRequest || view == bus_.view) return;
    bus_.view = view;
    // Entries of the old view may show its node's replicas: from now on the
    // new node's are meant, and the current code page's frame too.
    flush_soft_tlb();
    if (cur_page)
        if (u8* host = bus_.ram->host_page(GuestPhysAddr(cur_page->ppage << kPageShift), bus_.view))
            const_cast<CodePage*>(cur_page)->host = host;  // the Cpu's own code page
    if (bus_.rehomed) bus_.rehomed(view);
}

void Cpu::flush_soft_tlb_range(u64 base, u64 vmask) {
    // Drops every soft entry whose page lies in the TLB pair (base, vmask).
    const u64 pages = (~vmask & kSegMask) / kPageSize + 1;
    if (pages > kSoftTlbSize) {
        flush_soft_tlb();
        return;
    }
    for (u64 k = 0; k < pages; ++k) {
        const unsigned idx = static_cast<unsigned>(((base >> kPageShift) + k) % kSoftTlbSize);
        for (auto& set : stlb_sets_) {
            SoftTlbEntry& e = set[idx];
            for (u64 tag : {e.read_tag, e.write_tag, e.fetch_tag}) {
                if (tag != kNoTag && (tag & vmask) == base) {
                    e = SoftTlbEntry{kNoTag, kNoTag, kNoTag, 0, 0};
                    break;
                }
            }
        }
    }
}

// ---- TLB instructions (MD00091 §4.9 and the TLBP/TLBR/TLBWI/TLBWR pages) -----
void Cpu::tlbp() {
    const u64 asid = cp0.entryhi & 0xFF;
    for (unsigned i = 0; i < kTlbEntries; ++i) {
        const TlbEntry& e = tlb[i];
        const u64 mask = e.vpn_mask();
        if ((cp0.entryhi & mask) == (e.hi & mask) && (e.global() || (e.hi & 0xFF) == asid)) {
            cp0.index = i;
            return;
        }
    }
    cp0.index = 1ull << 31;  // P: no match
}

void Cpu::tlbr() {
    const TlbEntry& e = tlb[cp0.index % kTlbEntries];
    const u64 old_asid = cp0.entryhi & 0xFF;
    cp0.entryhi = e.hi & kEntryHiMask;
    cp0.pagemask = e.pagemask;
    cp0.entrylo0 = e.lo[0];
    cp0.entrylo1 = e.lo[1];
    if ((cp0.entryhi & 0xFF) != old_asid) flush_soft_tlb();
}

void Cpu::write_tlb_entry(unsigned i) {
    TlbEntry& e = tlb[i];
    if ((e.lo[0] | e.lo[1]) & 2) flush_soft_tlb_range(e.hi & e.vpn_mask(), e.vpn_mask());
    e.pagemask = cp0.pagemask;
    e.hi = cp0.entryhi & ~cp0.pagemask & kEntryHiMask;
    // The G bit of the pair is the AND of both halves (MD00091 TLBWI).
    const u64 g = cp0.entrylo0 & cp0.entrylo1 & 1;
    e.lo[0] = (cp0.entrylo0 & ~1ull) | g;
    e.lo[1] = (cp0.entrylo1 & ~1ull) | g;
    if ((e.lo[0] | e.lo[1]) & 2) flush_soft_tlb_range(e.hi & e.vpn_mask(), e.vpn_mask());
}

void Cpu::tlbwi() { write_tlb_entry(static_cast<unsigned>(cp0.index % kTlbEntries)); }
void Cpu::tlbwr() { write_tlb_entry(static_cast<unsigned>(read_cp0(cp0::Random))); }

// ---- Slow paths --------------------------------------------------------------
template <ByteOrder BO, class T>
bool Cpu::load_slow(const Decoded* d, u64 va, T& out, bool) {
    if (va & (sizeof(T) - 1)) {
        raise_translation_fault(d, va, Access::Load, Fault::AddressError);
        return false;
    }
    Translation t;
    if (const Fault f = translate(va, Access::Load, t); f != Fault::None) {
        raise_translation_fault(d, va, Access::Load, f);
        return false;
    }
    if (u8* host = bus_.ram->host_page(GuestPhysAddr(t.paddr), bus_.view)) {
        fill_soft_tlb(va, t, host);
        out = load_guest<BO, T>(host + (t.paddr & (kPageSize - 1)));
        return true;
    }
    if (auto hit = bus_.mmio->find(GuestPhysAddr(t.paddr), sizeof(T))) {
        Quiescent q(*this);  // a device may wait for a page operation (DMA pins)
        out = static_cast<T>(hit->device->mmio_read(hit->offset, sizeof(T)));
        return true;
    }
    raise(d, Exc::DBE);
    return false;
}

template <ByteOrder BO, class T>
const Decoded* Cpu::store_slow(const Decoded* d, u64 va, T value) {
    if (va & (sizeof(T) - 1)) {
        raise_translation_fault(d, va, Access::Store, Fault::AddressError);
        return nullptr;
    }
    Translation t;
    if (const Fault f = translate(va, Access::Store, t); f != Fault::None) {
        raise_translation_fault(d, va, Access::Store, f);
        return nullptr;
    }
    if (u8* host = bus_.ram->host_page(GuestPhysAddr(t.paddr), bus_.view)) {
        const u64 ppage = t.paddr >> kPageShift;
        if (!bus_.ram->write_allowed(ppage)) host = resolve_write(t.paddr);
        fill_soft_tlb(va, t, host, true);
        store_guest<BO, T>(host + (t.paddr & (kPageSize - 1)), value);
        if (bus_.code->watched(ppage)) {
            // The page holds decoded code: drop it and return to the run loop,
            // which re-decodes before running anything from that page.
            bus_.code->note_write(ppage);
            return exit_after(d);
        }
        return d + 1;
    }
    if (auto hit = bus_.mmio->find(GuestPhysAddr(t.paddr), sizeof(T))) {
        {
            Quiescent q(*this);  // a device may wait for a page operation (DMA pins)
            hit->device->mmio_write(hit->offset, sizeof(T), static_cast<u64>(value));
        }
        return exit_after(d);  // a device may have stopped the VM or raised an interrupt
    }
    return raise(d, Exc::DBE);
}

u8* Cpu::host_for_atomic(const Decoded* d, u64 va, unsigned size, bool store, u64& paddr) {
    const Access access = store ? Access::Store : Access::Load;
    if (va & (size - 1)) {
        raise_translation_fault(d, va, access, Fault::AddressError);
        return nullptr;
    }
    Translation t;
    if (const Fault f = translate(va, access, t); f != Fault::None) {
        raise_translation_fault(d, va, access, f);
        return nullptr;
    }
    u8* host = bus_.ram->host_page(GuestPhysAddr(t.paddr), bus_.view);
    if (!host) {  // LL/SC on device registers is not supported by this board
        raise(d, Exc::DBE);
        return nullptr;
    }
    paddr = t.paddr;
    if (store) {
        const u64 ppage = t.paddr >> kPageShift;
        if (!bus_.ram->write_allowed(ppage)) host = resolve_write(t.paddr);
        bus_.code->note_write(ppage);
        if (AccessCounters* ac = bus_.access_counters) ac->note_store(host);
    }
    return host + (t.paddr & (kPageSize - 1));
}

bool Cpu::fetch_page(u64 va) {
    if (va & 3) {
        raise_translation_fault(nullptr, va, Access::Fetch, Fault::AddressError);
        return false;
    }
    Translation t;
    if (const Fault f = translate(va, Access::Fetch, t); f != Fault::None) {
        raise_translation_fault(nullptr, va, Access::Fetch, f);
        return false;
    }
    u8* host = bus_.ram->host_page(GuestPhysAddr(t.paddr), bus_.view);
    if (!host) {  // instructions from a device or a hole: Instruction Bus Error
        const bool bd = pending_delay;
        raise_at(bd ? va - 4 : va, bd, Exc::IBE, 0, false, false);
        return false;
    }
    fill_soft_tlb(va, t, host);
    return true;
}

#define INSTANTIATE(BO, T)                                              \
    template bool Cpu::load_slow<BO, T>(const Decoded*, u64, T&, bool); \
    template const Decoded* Cpu::store_slow<BO, T>(const Decoded*, u64, T);
INSTANTIATE(ByteOrder::Little, u8)
INSTANTIATE(ByteOrder::Little, u16)
INSTANTIATE(ByteOrder::Little, u32)
INSTANTIATE(ByteOrder::Little, u64)
INSTANTIATE(ByteOrder::Big, u8)
INSTANTIATE(ByteOrder::Big, u16)
INSTANTIATE(ByteOrder::Big, u32)
INSTANTIATE(ByteOrder::Big, u64)
#undef INSTANTIATE
}  // namespace disco::cpu
