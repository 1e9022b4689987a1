// The CM2 GCR and the CPC as Linux 6.1's mips-cm.c / smp-cps.c use them
// (guest-board.md §2-3): identity registers, core-local and core-other
// blocks, and starting / stopping secondary cores.
#include <catch2/catch.hpp>
#include <random>
#include <utility>
#include <vector>

#include "vmm/board/disco_virt_map.hpp"
#include "vmm/dev/cm_gcr.hpp"
#include "vmm/dev/cpc.hpp"

using namespace disco;
using namespace disco::board::virt;

namespace {
// GCR global block.
constexpr u64 GCR_CONFIG = 0x000, GCR_BASE = 0x008, GCR_ACCESS = 0x020, GCR_REV = 0x030, GCR_L2_SYNC = 0x070,
              GCR_GIC_BASE = 0x080, GCR_CPC_BASE = 0x088, GCR_REG0_MASK = 0x098, GCR_GIC_STATUS = 0x0D0,
              GCR_CPC_STATUS = 0x0F0, GCR_ERR_CAUSE = 0x048;
// GCR core blocks.
constexpr u64 GCR_CL = 0x2000, GCR_CO = 0x4000;
constexpr u64 CX_COHERENCE = 0x08, CX_CONFIG = 0x10, CX_OTHER = 0x18, CX_RESET_BASE = 0x20, CX_ID = 0x28,
              CX_RESET_EXT_BASE = 0x30;
// CPC.
constexpr u64 CPC_CL = 0x2000, CPC_CO = 0x4000, CPC_CMD = 0x00, CPC_STAT_CONF = 0x08, CPC_OTHER = 0x10;
constexpr u32 SEQSTATE_U6 = 7u << 19;

struct AsVcpu {
    explicit AsVcpu(unsigned v) { set_current_vcpu(v); }
    ~AsVcpu() { set_current_vcpu(0); }
};

u32 rd(MmioDevice& d, u64 off) { return static_cast<u32>(d.mmio_read(off, 4)); }
void wr(MmioDevice& d, u64 off, u32 v) { d.mmio_write(off, 4, v); }

/// A 4-core CM with its CPC; starts and stops are recorded.
struct Rig {
    std::vector<std::pair<unsigned, u64>> starts;
    std::vector<unsigned> stops;
    dev::CmGcr gcr{4, kGcrBase, kGicBase, kCpcBase};
    dev::Cpc cpc{gcr, 4,
                 dev::CoreControl{[this](unsigned core, u64 pc) { starts.emplace_back(core, pc); },
                                  [this](unsigned core) { stops.push_back(core); }},
                 kCpcBase};

    /// boot_core() in smp-cps.c, CM2 with a CPC, run by vCPU 0.
    void boot_core(unsigned core, u32 entry_kseg1) {
        wr(gcr, GCR_CL + CX_OTHER, core << 16);  // mips_cm_lock_other
        wr(gcr, GCR_CO + CX_RESET_BASE, entry_kseg1);
        wr(gcr, GCR_CO + CX_COHERENCE, 0);
        wr(gcr, GCR_CO + CX_RESET_EXT_BASE, 1u << 30);  // UEB
        wr(gcr, GCR_ACCESS, rd(gcr, GCR_ACCESS) | 1u << core);
        wr(cpc, CPC_CL + CPC_OTHER, core << 16);  // mips_cpc_lock_other
        wr(cpc, CPC_CO + CPC_CMD, 4);             // CPC_Cx_CMD_RESET
    }
};
}  // namespace

TEST_CASE("cm-gcr: the identity registers a CM2 kernel probes", "[cps]") {
    Rig r;
    CHECK(rd(r.gcr, GCR_CONFIG) == 3);  // PCORES = cores - 1
    CHECK(rd(r.gcr, GCR_CONFIG + 4) == 0);
    CHECK(rd(r.gcr, GCR_BASE) == kGcrBase);
    CHECK(rd(r.gcr, GCR_BASE + 4) == 0);
    CHECK(rd(r.gcr, GCR_REV) == 0x0600);
    CHECK(rd(r.gcr, GCR_GIC_STATUS) == 1);
    CHECK(rd(r.gcr, GCR_CPC_STATUS) == 1);
    CHECK(rd(r.gcr, GCR_GIC_BASE) == (kGicBase | 1));
    CHECK(rd(r.gcr, GCR_CPC_BASE) == (kCpcBase | 1));
    CHECK(r.gcr.mmio_read(GCR_CPC_BASE, 8) == (kCpcBase | 1));
    CHECK(r.gcr.name() == "mips-cm-gcr");

    // mips_cm_probe: GCR_BASE read-modify-write of CMDEFTGT; the base itself cannot move.
    wr(r.gcr, GCR_BASE, (rd(r.gcr, GCR_BASE) & ~3u) | 1);
    CHECK(rd(r.gcr, GCR_BASE) == (kGcrBase | 1));
    wr(r.gcr, GCR_BASE, 0x12340000);
    CHECK(rd(r.gcr, GCR_BASE) == kGcrBase);
    wr(r.gcr, GCR_REV, 0);
    CHECK(rd(r.gcr, GCR_REV) == 0x0600);

    // Writable storage, masked to its fields.
    wr(r.gcr, GCR_GIC_BASE, kGicBase | 1 | 0x1FFFE);
    CHECK(rd(r.gcr, GCR_GIC_BASE) == (kGicBase | 1));
    wr(r.gcr, GCR_L2_SYNC + 4, 0);  // high word first, as CM2 writes a 64-bit register
    wr(r.gcr, GCR_L2_SYNC, (kGcrBase + 0x8000) | 1);
    CHECK(rd(r.gcr, GCR_L2_SYNC) == ((kGcrBase + 0x8000) | 1));
    wr(r.gcr, GCR_REG0_MASK, 0xFFFF0000);
    CHECK(rd(r.gcr, GCR_REG0_MASK) == 0xFFFF0000);
    wr(r.gcr, GCR_ACCESS, 0xFFFFFFFF);
    CHECK(rd(r.gcr, GCR_ACCESS) == 0xF);
    wr(r.gcr, GCR_ERR_CAUSE, 0xFFFFFFFF);
    CHECK(rd(r.gcr, GCR_ERR_CAUSE) == 0);
}

TEST_CASE("cm-gcr: the core-local block answers for the accessing vCPU, core-other for its OTHER.CORENUM", "[cps]") {
    Rig r;
    for (unsigned core = 0; core < 4; ++core) {
        AsVcpu as(core);
        CHECK(rd(r.gcr, GCR_CL + CX_ID) == core);
        CHECK(rd(r.gcr, GCR_CL + CX_CONFIG) == 0);  // PVPE = 0: one VP per core
        CHECK(rd(r.gcr, GCR_CL + CX_COHERENCE) == 0);
        CHECK(rd(r.gcr, GCR_CL + CX_RESET_BASE) == dev::CmGcr::kResetBaseAtReset);
        wr(r.gcr, GCR_CL + CX_OTHER, ((3 - core) << 16) | 0xFFFF);
        CHECK(rd(r.gcr, GCR_CL + CX_OTHER) == (3 - core) << 16);
    }
    for (unsigned core = 0; core < 4; ++core) {
        AsVcpu as(core);
        CHECK(rd(r.gcr, GCR_CO + CX_ID) == 3 - core);
    }
    // cps_smp_setup on core 0 sets its own coherence; another core's copy is separate.
    wr(r.gcr, GCR_CL + CX_COHERENCE, 0x1FF);
    CHECK(rd(r.gcr, GCR_CL + CX_COHERENCE) == 0xFF);
    CHECK(rd(r.gcr, GCR_CO + CX_COHERENCE) == 0);  // core 3
    wr(r.gcr, GCR_CO + CX_RESET_BASE, 0xA0123456);
    CHECK(r.gcr.reset_base(3) == 0xA0123000);
    CHECK(r.gcr.reset_base(0) == 0xBFC00000);
    CHECK(r.gcr.reset_base(4) == 0);
    {
        AsVcpu as(3);
        CHECK(rd(r.gcr, GCR_CL + CX_RESET_BASE) == 0xA0123000);
    }
    // CORENUM beyond the cores: the core-other block is empty.
    wr(r.gcr, GCR_CL + CX_OTHER, 9u << 16);
    CHECK(rd(r.gcr, GCR_CO + CX_ID) == 0);
    wr(r.gcr, GCR_CO + CX_COHERENCE, 0xFF);
    // A vCPU the CM does not know sees empty core blocks.
    AsVcpu stranger(40);
    CHECK(rd(r.gcr, GCR_CL + CX_ID) == 0);
    CHECK(rd(r.gcr, GCR_CONFIG) == 3);
}

TEST_CASE("cpc: RESET starts the selected core at its sign-extended RESET_BASE and reports U6", "[cps]") {
    Rig r;
    CHECK(r.cpc.seq_state(0) == dev::Cpc::kSeqU6);
    for (unsigned core = 1; core < 4; ++core) CHECK(r.cpc.seq_state(core) == dev::Cpc::kSeqD0);
    CHECK(r.cpc.name() == "mips-cpc");

    r.boot_core(2, 0xA0ABC000);
    CHECK(r.starts == std::vector<std::pair<unsigned, u64>>{{2, 0xFFFFFFFFA0ABC000}});
    CHECK((rd(r.cpc, CPC_CO + CPC_STAT_CONF) & (0xFu << 19)) == SEQSTATE_U6);  // the poll in boot_core
    CHECK(rd(r.cpc, CPC_CO + CPC_CMD) == 4);
    CHECK(r.cpc.seq_state(2) == dev::Cpc::kSeqU6);
    CHECK(r.cpc.seq_state(1) == dev::Cpc::kSeqD0);
    CHECK(rd(r.gcr, GCR_ACCESS) == 1u << 2);
    {
        AsVcpu as(2);  // the new core's own view, as cps-vec.S reads it
        CHECK(rd(r.cpc, CPC_CL + CPC_STAT_CONF) == SEQSTATE_U6);
        CHECK(rd(r.gcr, GCR_CL + CX_ID) == 2);
        CHECK(rd(r.gcr, GCR_CL + CX_COHERENCE) == 0);
    }

    // PWRUP behaves as RESET; a core never given a RESET_BASE boots from the reset vector.
    wr(r.cpc, CPC_CL + CPC_OTHER, 3u << 16);
    wr(r.cpc, CPC_CO + CPC_CMD, 3);
    CHECK(r.starts.back() == std::pair<unsigned, u64>{3, 0xFFFFFFFFBFC00000});

    // PWRDOWN (hotplug) stops the core and reports D0.
    wr(r.cpc, CPC_CL + CPC_OTHER, 2u << 16);
    wr(r.cpc, CPC_CO + CPC_CMD, 2);
    CHECK(r.stops == std::vector<unsigned>{2});
    CHECK(r.cpc.seq_state(2) == dev::Cpc::kSeqD0);
    CHECK(rd(r.cpc, CPC_CO + CPC_STAT_CONF) == 0);

    // CLOCKOFF and reserved commands change nothing.
    wr(r.cpc, CPC_CO + CPC_CMD, 1);
    wr(r.cpc, CPC_CO + CPC_CMD, 0xF);
    CHECK(r.starts.size() == 2);
    CHECK(r.stops.size() == 1);
    CHECK(r.cpc.seq_state(2) == dev::Cpc::kSeqD0);
}

TEST_CASE("cpc: the core-other selection is per accessing core, and a core can power itself down", "[cps]") {
    Rig r;
    wr(r.cpc, CPC_CL + CPC_OTHER, 1u << 16);
    {
        AsVcpu as(3);
        wr(r.cpc, CPC_CL + CPC_OTHER, 0xFFFFFFFF);
        CHECK(rd(r.cpc, CPC_CL + CPC_OTHER) == 0x00FF0000);  // CORENUM(23:16) only
        wr(r.cpc, CPC_CO + CPC_CMD, 4);                      // core 255 does not exist
        CHECK(r.starts.empty());
        wr(r.cpc, CPC_CL + CPC_CMD, 2);  // pm-cps: a core powering itself down
        CHECK(r.stops == std::vector<unsigned>{3});
    }
    CHECK(rd(r.cpc, CPC_CL + CPC_OTHER) == 1u << 16);
    wr(r.cpc, CPC_CO + CPC_CMD, 4);
    REQUIRE(r.starts.size() == 1);
    CHECK(r.starts[0].first == 1);
}

TEST_CASE("cpc: the start callback may read the CPC (no lock held)", "[cps]") {
    dev::CmGcr gcr(2, kGcrBase, kGicBase, kCpcBase);
    u32 seen = 0;
    dev::Cpc* self = nullptr;
    dev::Cpc cpc(gcr, 2,
                 dev::CoreControl{[&](unsigned, u64) {
                                      AsVcpu as(1);
                                      seen = rd(*self, CPC_CL + CPC_STAT_CONF);
                                  },
                                  {}},
                 kCpcBase);
    self = &cpc;
    wr(cpc, CPC_CL + CPC_OTHER, 1u << 16);
    wr(cpc, CPC_CO + CPC_CMD, 4);
    CHECK(seen == SEQSTATE_U6);
    wr(cpc, CPC_CO + CPC_CMD, 2);  // no stop callback: nothing to call, still D0
    CHECK(cpc.seq_state(1) == dev::Cpc::kSeqD0);
}

TEST_CASE("cm-gcr, cpc: wild offsets, widths and values never crash", "[cps]") {
    Rig r;
    std::mt19937_64 rng(99);
    const unsigned sizes[] = {1, 2, 3, 4, 6, 8, 32};
    // Mostly the real registers (nudged now and then), sometimes anywhere:
    // every odd offset is logged once, so keep their number modest.
    std::vector<u64> gcr_targets = {GCR_CONFIG,     GCR_BASE,       GCR_ACCESS,    GCR_REV,
                                    GCR_L2_SYNC,    GCR_GIC_BASE,   GCR_CPC_BASE,  GCR_REG0_MASK,
                                    GCR_GIC_STATUS, GCR_CPC_STATUS, GCR_ERR_CAUSE, GCR_BASE + 4};
    std::vector<u64> cpc_targets = {0x00, 0x08, 0x10, 0x18};
    for (u64 block : {GCR_CL, GCR_CO})
        for (u64 reg : {u64{0}, CX_COHERENCE, CX_CONFIG, CX_OTHER, CX_RESET_BASE, CX_ID, CX_RESET_EXT_BASE})
            gcr_targets.push_back(block + reg);
    for (u64 block : {CPC_CL, CPC_CO})
        for (u64 reg : {CPC_CMD, CPC_STAT_CONF, CPC_OTHER, u64{0x20}, u64{0x28}, u64{0x30}})
            cpc_targets.push_back(block + reg);
    for (int i = 0; i < 200'000; ++i) {
        const bool gcr = i & 1;
        MmioDevice& d = gcr ? static_cast<MmioDevice&>(r.gcr) : static_cast<MmioDevice&>(r.cpc);
        const std::vector<u64>& targets = gcr ? gcr_targets : cpc_targets;
        u64 off = targets[rng() % targets.size()];
        if (rng() % 8 == 0) off += 2;  // sub-word or unaligned, by size
        if (rng() % 8192 == 0) off = rng() % (0x8000 + 0x40);
        const unsigned size = sizes[rng() % std::size(sizes)];
        AsVcpu as(static_cast<unsigned>(rng() % 6));
        if (rng() & 1)
            d.mmio_write(off, size, rng());
        else
            (void)d.mmio_read(off, size);
    }
    (void)r.gcr.mmio_read(~0ull, 4);
    r.cpc.mmio_write(~0ull - 3, 4, 4);
    // Identity survives; every start went to a real core at a sign-extended KSEG address.
    CHECK(rd(r.gcr, GCR_CONFIG) == 3);
    CHECK(rd(r.gcr, GCR_REV) == 0x0600);
    CHECK(rd(r.gcr, GCR_BASE) == (kGcrBase | (rd(r.gcr, GCR_BASE) & 3)));
    for (const auto& [core, pc] : r.starts) {
        CHECK(core < 4);
        CHECK((pc & 0xFFF) == 0);
        CHECK(pc == sext32(pc));
    }
    CHECK(r.gcr.mmio_read(GCR_REV, 1) == 0x00);
    CHECK(r.gcr.mmio_read(GCR_REV + 1, 1) == 0x06);
}
