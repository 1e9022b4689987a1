#include "vmm/dev/cpc.hpp"

#include <algorithm>

#include "vmm/dev/reg32_access.hpp"

namespace disco::dev {
namespace {
// Blocks and registers (guest-board.md §3.1; Linux arch/mips/include/asm/mips-cpc.h).
constexpr u64 kCoreLocalBase = 0x2000, kCoreOtherBase = 0x4000, kBlockSize = 0x2000, kCoreBlocksEnd = 0x6000;
constexpr u64 kGlobalStride = 0x8;  // ACCESS, SEQDEL, RAIL, RESETLEN at 0x000-0x018
constexpr u64 CX_CMD = 0x00, CX_STAT_CONF = 0x08, CX_OTHER = 0x10, CX_VP_STOP = 0x20, CX_VP_RUN = 0x28,
              CX_VP_RUNNING = 0x30;
constexpr u32 CMD_MASK = 0xF, CMD_PWRDOWN = 2, CMD_PWRUP = 3, CMD_RESET = 4;
constexpr unsigned SEQSTATE_SHIFT = 19;
constexpr u32 OTHER_CORENUM = 0x00FF'0000;
constexpr unsigned OTHER_CORENUM_SHIFT = 16;
}  // namespace

Cpc::Cpc(const CmGcr& gcr, unsigned n_cores, CoreControl control, u64 mmio_base)
    : gcr_(gcr),
      n_cores_(std::clamp(n_cores, 1u, 256u)),  // CORENUM is 8 bits
      control_(std::move(control)),
      unimplemented_("mips-cpc", mmio_base),
      cores_(n_cores_) {
    cores_[0].seq_state = kSeqU6;  // "Core 0 is powered up (we're running on it)", smp-cps.c
}

u64 Cpc::mmio_read(u64 offset, unsigned size) {
    return reg32::locked_read(mutex_, unimplemented_, offset, size, [&](u64 off) { return read_word_locked(off); });
}

void Cpc::mmio_write(u64 offset, unsigned size, u64 value) {
    // An 8-byte store is two word writes; each may be a command.
    struct Pending {
        Action action;
        unsigned core;
    };
    Pending todo[2]{};
    usize n = 0;
    bool ok;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        ok = reg32::write(offset, size, value, [&](u64 off, u32 v) {
            unsigned core = 0;
            const Action a = write_word_locked(off, v, core);
            if (a != Action::none) todo[n++] = {a, core};
        });
    }
    if (!ok) unimplemented_.note(offset, size, true);
    for (usize i = 0; i < n; ++i) {
        const unsigned core = todo[i].core;
        if (todo[i].action == Action::stop) {
            if (control_.stop) control_.stop(core);
        } else if (control_.start) {
            // RESET_BASE holds bits 31:12 of a 32-bit (KSEG1) address; the
            // 64-bit PC is its sign extension (guest-board.md §3.3).
            control_.start(core, sext32(gcr_.reset_base(core)));
        }
    }
}

u32 Cpc::seq_state(unsigned core) const {
    std::lock_guard<std::mutex> lock(mutex_);
    return core < n_cores_ ? cores_[core].seq_state : kSeqD0;
}

unsigned Cpc::block_core_locked(u64 offset) const {
    const unsigned self = current_vcpu();
    if (self >= n_cores_) return n_cores_;
    if (offset < kCoreOtherBase) return self;
    return std::min(cores_[self].other >> OTHER_CORENUM_SHIFT, n_cores_);
}

u32 Cpc::read_word_locked(u64 offset) {
    if (offset < kGlobalStride * kGlobalRegisters && offset % kGlobalStride == 0)
        return global_[offset / kGlobalStride];
    if (offset >= kCoreLocalBase && offset < kCoreBlocksEnd) {
        const unsigned core = block_core_locked(offset);
        if (core >= n_cores_) return 0;
        const Core& c = cores_[core];
        switch (offset % kBlockSize) {
            case CX_CMD:
                return c.last_cmd;
            case CX_STAT_CONF:
                return c.seq_state << SEQSTATE_SHIFT;
            case CX_OTHER:
                return c.other;
            case CX_VP_STOP:
            case CX_VP_RUN:
                return 0;
            case CX_VP_RUNNING:
                return c.seq_state == kSeqU6 ? 1 : 0;
            default:
                break;
        }
    }
    unimplemented_.note(offset, 4, false);
    return 0;
}

Cpc::Action Cpc::write_word_locked(u64 offset, u32 value, unsigned& target) {
    if (offset < kGlobalStride * kGlobalRegisters && offset % kGlobalStride == 0) {
        global_[offset / kGlobalStride] = value;
        return Action::none;
    }
    if (offset >= kCoreLocalBase && offset < kCoreBlocksEnd) {
        const unsigned core = block_core_locked(offset);
        if (core >= n_cores_) return Action::none;
        Core& c = cores_[core];
        switch (offset % kBlockSize) {
            case CX_CMD: {
                c.last_cmd = value & CMD_MASK;
                target = core;
                if (c.last_cmd == CMD_RESET || c.last_cmd == CMD_PWRUP) {
                    c.seq_state = kSeqU6;  // running as far as any poller can tell
                    return Action::start;
                }
                if (c.last_cmd == CMD_PWRDOWN) {
                    c.seq_state = kSeqD0;
                    return Action::stop;
                }
                return Action::none;  // CLOCKOFF (no clock gating: CLKGAT_IMPL=0) and reserved commands
            }
            case CX_OTHER:
                c.other = value & OTHER_CORENUM;
                return Action::none;
            case CX_STAT_CONF:  // status only
            case CX_VP_STOP:    // CM3's per-VP controls: one VP per core here
            case CX_VP_RUN:
            case CX_VP_RUNNING:
                return Action::none;
            default:
                break;
        }
    }
    unimplemented_.note(offset, 4, true);
    return Action::none;
}
}  // namespace disco::dev
