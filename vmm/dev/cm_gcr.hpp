// The Coherence Manager's Global Configuration Registers, revision CM2
// (GCR_REV 0x0600), as Linux 6.1's mips-cm.c and smp-cps.c use them
// (guest-board.md §2). With CM2 every access is a 32-bit word; a 64-bit
// register is two words, high at +4. One VP per core, and core n is vCPU n.
//
// Register map (offsets in the 32 KiB window):
//   Global block 0x0000
//     0x000 GCR_CONFIG      PCORES(7:0) = cores-1, no IOCUs      (RO)
//     0x008 GCR_BASE        the window's base in 47:15 (RO), CMDEFTGT(1:0) RW
//     0x020 GCR_ACCESS      one bit per core, RW
//     0x030 GCR_REV         0x0600                                (RO)
//     0x070 L2_ONLY_SYNC_BASE, 0x080 GIC_BASE, 0x088 CPC_BASE,
//     0x090-0x0C8 REG0..3_BASE/MASK   RW storage (the devices do not move)
//     0x0D0 GIC_STATUS.EX = 1, 0x0F0 CPC_STATUS.EX = 1            (RO)
//     0x038-0x058 error registers: read 0, writes ignored
//   Core-local block 0x2000 (the accessing core), core-other block 0x4000
//   (the core named by the accessing core's OTHER.CORENUM), same layout:
//     0x00 RESET_RELEASE RW (kept, no effect: cores start through the CPC)
//     0x08 COHERENCE     COHDOMAINEN(7:0), RW, reset 0
//     0x10 CONFIG        PVPE = 0: one VP                         (RO)
//     0x18 OTHER         CORENUM(31:16), RW
//     0x20 RESET_BASE    BEVEXCBASE(31:12), RW, reset 0xBFC00000
//     0x28 ID            the core's number                        (RO)
//     0x30 RESET_EXT_BASE RW storage
//   Global debug block 0x6000 and anything else: read 0, writes ignored,
//   logged once.
//
// Threads: every vCPU accesses it; one mutex guards the state, and
// reset_base() may be called from any thread (the CPC does).
#pragma once
#include <array>
#include <mutex>
#include <string>
#include <vector>

#include "vmm/dev/unimplemented.hpp"
#include "vmm/mem/mmio.hpp"

namespace disco::dev {

class CmGcr final : public MmioDevice {
public:
    static constexpr u64 kWindowSize = 0x8000;
    static constexpr u32 kRevision = 0x0600;  // CM2
    /// RESET_BASE after reset: the KSEG1 alias of the 0x1FC00000 boot vector,
    /// which sign-extends to the MIPS reset PC 0xFFFFFFFFBFC00000.
    static constexpr u32 kResetBaseAtReset = 0xBFC00000;

    /// The GIC and CPC base registers start enabled (base | 1), as firmware
    /// would leave them; Linux rewrites GIC_BASE and reuses an enabled CPC_BASE.
    CmGcr(unsigned n_cores, u64 gcr_base, u64 gic_base, u64 cpc_base);

    u64 mmio_read(u64 offset, unsigned size) override;
    void mmio_write(u64 offset, unsigned size, u64 value) override;
    std::string name() const override { return "mips-cm-gcr"; }

    /// Bits 31:12 of the core's GCR_Cx_RESET_BASE (0 for a core that does not exist).
    u64 reset_base(unsigned core) const;

private:
    struct Core {
        u32 reset_release = 1;  // held in reset
        u32 coherence = 0;
        u32 other = 0;
        u32 reset_base = kResetBaseAtReset;
        u32 reset_ext_base = 0;
    };
    /// The global registers that are plain storage, by index into stored_.
    static constexpr usize kStoredRegisters = 11;

    u32 read_word_locked(u64 offset);
    void write_word_locked(u64 offset, u32 value);
    u32 read_global_locked(u64 offset);
    void write_global_locked(u64 offset, u32 value);
    u32 read_core_locked(unsigned core, u64 offset);
    void write_core_locked(unsigned core, u64 offset, u32 value);
    /// The core a core-local/core-other offset refers to; n_cores_ when none.
    unsigned block_core_locked(u64 offset) const;

    const unsigned n_cores_;
    const u64 gcr_base_;
    UnimplementedRegisterLog unimplemented_;

    mutable std::mutex mutex_;
    u32 cmdeftgt_ = 0;
    u32 access_ = 0;
    std::array<u64, kStoredRegisters> stored_{};
    std::vector<Core> cores_;
};
}  // namespace disco::dev
