#include "vmm/dev/cm_gcr.hpp"

#include <algorithm>

#include "vmm/dev/reg32_access.hpp"

namespace disco::dev {
namespace {
// Blocks (guest-board.md §2, "Discovery"; Linux arch/mips/include/asm/mips-cm.h).
constexpr u64 kCoreLocalBase = 0x2000, kCoreOtherBase = 0x4000, kDebugBase = 0x6000, kBlockSize = 0x2000;

// Global block.
constexpr u64 GCR_CONFIG = 0x000, GCR_BASE = 0x008, GCR_ACCESS = 0x020, GCR_REV = 0x030, GCR_ERR_FIRST = 0x038,
              GCR_ERR_LAST = 0x05C, GCR_GIC_STATUS = 0x0D0, GCR_CPC_STATUS = 0x0F0;
constexpr u64 GCR_L2_ONLY_SYNC_BASE = 0x070, GCR_GIC_BASE = 0x080, GCR_CPC_BASE = 0x088, GCR_REG0_BASE = 0x090;
constexpr u64 GCRBASE_MASK = 0x0000'FFFF'FFFF'8000, CMDEFTGT_MASK = 0x3;
constexpr u32 STATUS_EX = 1;
constexpr u64 ENABLE = 1;  // GICEN / CPCEN / SYNCEN

/// A global register that is plain storage: where it is and which bits hold.
struct StoredRegister {
    u64 offset;
    u64 writable;
};
// Field masks from mips-cm.h: the bases are physical addresses up to bit 47.
constexpr StoredRegister kStored[] = {
    {GCR_L2_ONLY_SYNC_BASE, 0x0000'0000'FFFF'F001}, {GCR_GIC_BASE, 0x0000'FFFF'FFFE'0001},
    {GCR_CPC_BASE, 0x0000'FFFF'FFFF'8001},          {GCR_REG0_BASE + 0x00, 0x0000'FFFF'FFFF'0000},  // REGn_BASE
    {GCR_REG0_BASE + 0x08, 0x0000'0000'FFFF'00F7},  // REGn_MASK: ADDRMASK, CCAOVR, CCAOVREN, DROPL2, CMTGT
    {GCR_REG0_BASE + 0x10, 0x0000'FFFF'FFFF'0000},  {GCR_REG0_BASE + 0x18, 0x0000'0000'FFFF'00F7},
    {GCR_REG0_BASE + 0x20, 0x0000'FFFF'FFFF'0000},  {GCR_REG0_BASE + 0x28, 0x0000'0000'FFFF'00F7},
    {GCR_REG0_BASE + 0x30, 0x0000'FFFF'FFFF'0000},  {GCR_REG0_BASE + 0x38, 0x0000'0000'FFFF'00F7},
};
static_assert(std::size(kStored) == 11);

/// Index into kStored of the register containing word `offset`, or -1.
int stored_index(u64 offset) {
    for (usize i = 0; i < std::size(kStored); ++i)
        if (kStored[i].offset == (offset & ~u64{7})) return static_cast<int>(i);
    return -1;
}

// Core blocks.
constexpr u64 CX_RESET_RELEASE = 0x00, CX_COHERENCE = 0x08, CX_CONFIG = 0x10, CX_OTHER = 0x18, CX_RESET_BASE = 0x20,
              CX_ID = 0x28, CX_RESET_EXT_BASE = 0x30;
constexpr u32 COHDOMAINEN = 0xFF, OTHER_CORENUM = 0xFFFF'0000, RESET_BASE_BEVEXCBASE = 0xFFFF'F000;
constexpr u32 RESET_EXT_BASE_WRITABLE = 0xCFF0'00FF;  // EVARESET, UEB, BEVEXCMASK, BEVEXCPA, PRESENT
constexpr unsigned OTHER_CORENUM_SHIFT = 16;
}  // namespace

CmGcr::CmGcr(unsigned n_cores, u64 gcr_base, u64 gic_base, u64 cpc_base)
    : n_cores_(std::clamp(n_cores, 1u, 256u)),  // PCORES is 8 bits
      gcr_base_(gcr_base & GCRBASE_MASK),
      unimplemented_("mips-cm-gcr", gcr_base),
      cores_(n_cores_) {
    const auto preset = [this](u64 offset, u64 value) {
        const int i = stored_index(offset);
        stored_[i] = value & kStored[i].writable;
    };
    preset(GCR_GIC_BASE, gic_base | ENABLE);
    preset(GCR_CPC_BASE, cpc_base | ENABLE);
}

u64 CmGcr::mmio_read(u64 offset, unsigned size) {
    return reg32::locked_read(mutex_, unimplemented_, offset, size, [&](u64 off) { return read_word_locked(off); });
}

void CmGcr::mmio_write(u64 offset, unsigned size, u64 value) {
    bool ok;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        ok = reg32::write(offset, size, value, [&](u64 off, u32 v) { write_word_locked(off, v); });
    }
    if (!ok) unimplemented_.note(offset, size, true);
}

u64 CmGcr::reset_base(unsigned core) const {
    std::lock_guard<std::mutex> lock(mutex_);
    return core < n_cores_ ? cores_[core].reset_base & RESET_BASE_BEVEXCBASE : 0;
}

unsigned CmGcr::block_core_locked(u64 offset) const {
    const unsigned self = current_vcpu();
    if (self >= n_cores_) return n_cores_;
    if (offset < kCoreOtherBase) return self;
    const unsigned other = cores_[self].other >> OTHER_CORENUM_SHIFT;
    return std::min(other, n_cores_);
}

u32 CmGcr::read_word_locked(u64 offset) {
    if (offset < kCoreLocalBase) return read_global_locked(offset);
    if (offset < kDebugBase) {
        const unsigned core = block_core_locked(offset);
        return core < n_cores_ ? read_core_locked(core, offset) : 0;
    }
    unimplemented_.note(offset, 4, false);
    return 0;
}

void CmGcr::write_word_locked(u64 offset, u32 value) {
    if (offset < kCoreLocalBase) return write_global_locked(offset, value);
    if (offset < kDebugBase) {
        const unsigned core = block_core_locked(offset);
        if (core < n_cores_) write_core_locked(core, offset, value);
        return;
    }
    unimplemented_.note(offset, 4, true);
}

u32 CmGcr::read_global_locked(u64 offset) {
    if (const int i = stored_index(offset); i >= 0) return reg32::word_of(stored_[i], offset);
    if (offset >= GCR_ERR_FIRST && offset <= GCR_ERR_LAST) return 0;  // no bus errors to report
    switch (offset) {
        case GCR_CONFIG:
            return n_cores_ - 1;  // PCORES; NUMIOCU = 0
        case GCR_CONFIG + 4:
            return 0;
        case GCR_BASE:
        case GCR_BASE + 4:
            return reg32::word_of(gcr_base_ | cmdeftgt_, offset);
        case GCR_ACCESS:
            return access_;
        case GCR_REV:
            return kRevision;
        case GCR_GIC_STATUS:
        case GCR_CPC_STATUS:
            return STATUS_EX;
        default:
            unimplemented_.note(offset, 4, false);
            return 0;
    }
}

void CmGcr::write_global_locked(u64 offset, u32 value) {
    if (const int i = stored_index(offset); i >= 0) {
        stored_[i] = reg32::with_word(stored_[i], offset, value) & kStored[i].writable;
        return;
    }
    if (offset >= GCR_ERR_FIRST && offset <= GCR_ERR_LAST) return;
    switch (offset) {
        case GCR_BASE:
            // The window cannot move; only the default target is kept.
            cmdeftgt_ = value & CMDEFTGT_MASK;
            return;
        case GCR_ACCESS:
            access_ = value & (n_cores_ >= 32 ? ~0u : (1u << n_cores_) - 1);
            return;
        case GCR_CONFIG:
        case GCR_CONFIG + 4:
        case GCR_BASE + 4:
        case GCR_REV:
        case GCR_GIC_STATUS:
        case GCR_CPC_STATUS:
            return;  // read-only
        default:
            unimplemented_.note(offset, 4, true);
    }
}

u32 CmGcr::read_core_locked(unsigned core, u64 offset) {
    const Core& c = cores_[core];
    switch (offset % kBlockSize) {
        case CX_RESET_RELEASE:
            return c.reset_release;
        case CX_COHERENCE:
            return c.coherence;
        case CX_CONFIG:
            return 0;  // PVPE = 0 (one VP), IOCUTYPE = 0
        case CX_OTHER:
            return c.other;
        case CX_RESET_BASE:
            return c.reset_base;
        case CX_ID:
            return core;  // cps-vec.S indexes its boot config with this (§2)
        case CX_RESET_EXT_BASE:
            return c.reset_ext_base;
        default:
            unimplemented_.note(offset, 4, false);
            return 0;
    }
}

void CmGcr::write_core_locked(unsigned core, u64 offset, u32 value) {
    Core& c = cores_[core];
    switch (offset % kBlockSize) {
        case CX_RESET_RELEASE:
            c.reset_release = value & 1;
            return;
        case CX_COHERENCE:
            c.coherence = value & COHDOMAINEN;
            return;
        case CX_OTHER:
            c.other = value & OTHER_CORENUM;
            return;
        case CX_RESET_BASE:
            c.reset_base = value & RESET_BASE_BEVEXCBASE;
            return;
        case CX_RESET_EXT_BASE:
            c.reset_ext_base = value & RESET_EXT_BASE_WRITABLE;
            return;
        case CX_CONFIG:
        case CX_ID:
            return;  // read-only
        default:
            unimplemented_.note(offset, 4, true);
    }
}
}  // namespace disco::dev
