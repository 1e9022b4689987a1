// The Cluster Power Controller of a CM2 system as Linux 6.1's smp-cps.c and
// pm-cps.c use it to start and stop cores (guest-board.md §3). All accesses
// are 32-bit words; one VP per core, core n is vCPU n.
//
// Register map (offsets in the 32 KiB window):
//   Global block 0x0000: 0x000 ACCESS, 0x008 SEQDEL, 0x010 RAIL, 0x018
//   RESETLEN are kept as RW storage (no sequencer timing to model).
//   Core-local block 0x2000 (the accessing core), core-other block 0x4000
//   (the core named by the accessing core's own Cx_OTHER.CORENUM), same layout:
//     0x00 CMD        W: 1 CLOCKOFF (accepted, no effect), 2 PWRDOWN,
//                     3 PWRUP, 4 RESET; reads the last command
//     0x08 STAT_CONF  SEQSTATE(22:19): U6 (7) once started, D0 (0) when down
//     0x10 OTHER      CORENUM(23:16), RW
//     0x20 VP_STOP, 0x28 VP_RUN: CM3 only, accepted and ignored;
//     0x30 VP_RUNNING: bit 0 while the core runs
//   Anything else reads 0, ignores writes and is logged once.
//
// RESET and PWRUP start the core at its GCR_Cx_RESET_BASE, sign-extended as
// the CPU does for a KSEG1 boot vector (§3.3); PWRDOWN stops it.
//
// Threads: any vCPU writes any core's CMD; one mutex guards the registers.
// The CoreControl callbacks run on the writing vCPU's thread with no Cpc or
// CmGcr lock held (they may read the CPC), after SEQSTATE already reports the
// new state, so a poller never sees U6 go back to D0 for a started core.
#pragma once
#include <array>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "vmm/dev/cm_gcr.hpp"
#include "vmm/dev/unimplemented.hpp"
#include "vmm/mem/mmio.hpp"

namespace disco::dev {

/// How the CPC acts on the board's vCPUs.
struct CoreControl {
    /// Reset vCPU `core` and run it from reset_pc (a sign-extended KSEG1 address).
    std::function<void(unsigned core, u64 reset_pc)> start;
    /// Stop vCPU `core` (it may be the calling vCPU itself).
    std::function<void(unsigned core)> stop;
};

class Cpc final : public MmioDevice {
public:
    static constexpr u64 kWindowSize = 0x8000;
    /// CPC_Cx_STAT_CONF.SEQSTATE values the kernel looks for (mips-cpc.h).
    static constexpr u32 kSeqD0 = 0x0, kSeqU6 = 0x7;

    /// Core 0 starts powered up (it runs the boot code), the others in D0.
    /// The GCR must outlive the Cpc.
    Cpc(const CmGcr& gcr, unsigned n_cores, CoreControl control, u64 mmio_base);

    u64 mmio_read(u64 offset, unsigned size) override;
    void mmio_write(u64 offset, unsigned size, u64 value) override;
    std::string name() const override { return "mips-cpc"; }

    /// SEQSTATE of a core (kSeqD0 for one that does not exist).
    u32 seq_state(unsigned core) const;

private:
    struct Core {
        u32 last_cmd = 0;
        u32 seq_state = kSeqD0;
        u32 other = 0;
    };
    /// What a CMD write asks the board to do, decided under the lock, done after it.
    enum class Action { none, start, stop };
    static constexpr usize kGlobalRegisters = 4;

    u32 read_word_locked(u64 offset);
    Action write_word_locked(u64 offset, u32 value, unsigned& target);
    /// The core a core-local/core-other offset refers to; n_cores_ when none.
    unsigned block_core_locked(u64 offset) const;

    const CmGcr& gcr_;
    const unsigned n_cores_;
    const CoreControl control_;
    UnimplementedRegisterLog unimplemented_;

    mutable std::mutex mutex_;
    std::array<u32, kGlobalRegisters> global_{};
    std::vector<Core> cores_;
};
}  // namespace disco::dev
