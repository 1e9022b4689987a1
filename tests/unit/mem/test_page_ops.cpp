// Page operations under load: four real vCPUs (the interpreter) store and
// check known patterns on 64 pages while another thread migrates, replicates,
// collapses and shares (copy-on-write) those pages (and the vCPUs' code
// pages) at a high rate. Pages a sweep has passed (or not yet reached) hold
// the same bytes, so shares succeed often and the next store breaks them. No
// store may be lost, no load may return stale data, and every machine frame
// must be back in its pool when the VM's RAM goes away (DESIGN.md, "The
// memory path": "tested under stress, not assumed").
#include <catch2/catch.hpp>
#include <random>
#include <thread>

#include "tests/unit/cpu_harness.hpp"
#include "tests/unit/mem/machine_ram.hpp"
#include "vmm/mem/guest_ram.hpp"
#include "vmm/mem/machine_memory.hpp"
#include "vmm/mem/shootdown.hpp"

using namespace disco;
using namespace disco::test::enc;

namespace {
constexpr unsigned kVcpus = 4, kNodes = 4, kDataPages = 64;
constexpr u64 kDataPa = 0x10000, kFailPa = 0x8000, kProgressPa = 0x9000;

u32 lui_(unsigned rt, u32 imm) { return lui(rt, imm); }
u32 dsubu_imm(unsigned rt, unsigned rs, i32 imm) { return daddiu(rt, rs, imm); }

/// vCPU k: for round c = 1, 2, ...: on each data page, check that slot k
/// holds c - 1 (the previous round's store was not lost, nor read stale),
/// store c, read it back; then publish c as progress. On a mismatch, store
/// the round at kFailPa + 8k (the value seen 0x100 above) and park.
std::vector<u32> checker_program(unsigned k) {
    const u32 slot = k * 8;
    return {
        ori(8, 0, 1),  // r8 = c = 1
        // round:
        lui_(9, 0x8001),
        ori(9, 9, slot),         // r9 = first slot (kseg0 0x80010000 + 8k)
        ori(10, 0, kDataPages),  // r10 = pages left
        dsubu_imm(12, 8, -1),    // r12 = c - 1
        // page:
        ld(11, 9, 0),
        bne(11, 12, 15),
        nop(),  // stale or lost? -> fail
        sd(8, 9, 0),
        ld(11, 9, 0),
        bne(11, 8, 11),
        nop(),
        daddiu(9, 9, 4096),
        addiu(10, 10, -1),
        bne(10, 0, -10),
        nop(),
        lui_(13, 0x8000),
        ori(13, 13, static_cast<u32>(kProgressPa + slot)),
        sd(8, 13, 0),
        daddiu(8, 8, 1),
        beq(0, 0, -20),
        nop(),
        // fail:
        lui_(13, 0x8000),
        ori(13, 13, static_cast<u32>(kFailPa + slot)),
        sd(8, 13, 0),
        sd(11, 13, 0x100),
        self_loop(),
        nop(),
    };
}

u64 read_u64(GuestRam& ram, u64 pa) {
    u8 b[8];
    REQUIRE(ram.read(GuestPhysAddr(pa), b));
    return load_guest<ByteOrder::Little, u64>(b);
}
}  // namespace

TEST_CASE("page operations under four storing vCPUs lose no store and leak no frame", "[page-ops]") {
    const auto mm = test::test_machine_memory(kNodes, 4 << 20);
    {
        test::TestVmRam vm(*mm, 1, 1 << 20, kVcpus);
        GuestRam& ram = vm.ram;
        Shootdown& shootdown = vm.shootdown;
        CodeWatch code(1 << 20);
        MmioBus mmio;
        std::atomic<bool> stop{false};
        std::vector<std::unique_ptr<cpu::Cpu>> cpus;
        for (unsigned k = 0; k < kVcpus; ++k) {
            cpu::CpuBus bus{&ram, &mmio, &code, &stop, [](const std::string&) {}, nullptr};
            bus.shootdown = &shootdown;
            bus.view = k % kNodes;
            auto c = std::make_unique<cpu::Cpu>(std::move(bus), ByteOrder::Little, k);
            c->write_cp0(cpu::cp0::Status, cpu::status::CU0 | cpu::status::KX);
            const u64 code_va = 0xFFFFFFFF80001000ull + k * 0x1000;
            u64 pa = code_va & 0x1FFFFFFF;
            for (u32 w : checker_program(k)) {
                u8 b[4];
                store_guest<ByteOrder::Little, u32>(b, w);
                REQUIRE(ram.write(GuestPhysAddr(pa), b));
                pa += 4;
            }
            c->pc = code_va;
            cpus.push_back(std::move(c));
        }
        std::vector<std::thread> threads;
        for (auto& c : cpus)
            threads.emplace_back([&stop, cpu = c.get()] {
                while (!stop.load()) cpu->run(1 << 20);
            });

        // The churn: random data and code pages, random operations, for about a second.
        std::mt19937_64 rng(42);
        u64 ok[4] = {0, 0, 0, 0}, refused = 0;
        // At least a second, and until enough of each operation ran (sanitizer
        // builds are many times slower), within a bound.
        const auto start = std::chrono::steady_clock::now();
        auto enough = [&] {
            const auto t = std::chrono::steady_clock::now() - start;
            if (t > std::chrono::seconds(20)) return true;
            return t > std::chrono::seconds(1) && ok[0] > 100 && ok[1] > 100 && ok[3] > 100 &&
                   ram.page_op_stats().collapses_on_write.load() > 10 && ram.page_op_stats().cow_breaks.load() > 10;
        };
        while (!enough()) {
            const bool code_page = rng() % 8 == 0;
            const u64 page = code_page ? 1 + rng() % kVcpus : (kDataPa >> 12) + rng() % kDataPages;
            Result<void, PageOpError> r;
            const unsigned op = rng() % 4;
            if (op == 0) {
                r = ram.migrate(page, static_cast<NodeId>(rng() % kNodes));
            } else if (op == 1) {
                r = ram.replicate(page);
            } else if (op == 2) {
                r = ram.collapse(page);
            } else {
                r = ram.share_from(page, ram, (kDataPa >> 12) + rng() % kDataPages);
            }
            r ? ++ok[op] : ++refused;
        }
        stop.store(true);
        for (auto& c : cpus) c->kick();
        for (auto& t : threads) t.join();

        for (unsigned k = 0; k < kVcpus; ++k) {
            INFO("vCPU " << k);
            CHECK(read_u64(ram, kFailPa + 8 * k) == 0);      // no mismatch seen
            CHECK(read_u64(ram, kProgressPa + 8 * k) > 10);  // and it really ran rounds
        }
        const PageOpStats& stats = ram.page_op_stats();
        INFO("migrations " << ok[0] << ", replications " << ok[1] << ", collapses " << ok[2] << ", shares " << ok[3]
                           << ", refused " << refused << ", collapses on write " << stats.collapses_on_write.load()
                           << ", COW breaks " << stats.cow_breaks.load() << ", takeovers "
                           << stats.cow_takeovers.load());
        CHECK(ok[0] > 100);
        CHECK(ok[1] > 100);
        CHECK(ok[3] > 100);
        CHECK(stats.collapses_on_write.load() > 10);
        CHECK(stats.cow_breaks.load() > 10);
        CHECK(ram.page_op_stats().shootdowns.load() > 0);
        CHECK(mm->totals().frames_in_use == ram.frames_held());
    }
    CHECK(mm->totals().frames_in_use == 0);  // every frame back in its pool
}

TEST_CASE("page operations refuse what they cannot do and change nothing", "[page-ops]") {
    const auto mm = test::test_machine_memory(2, 1 << 20);
    test::TestVmRam vm(*mm, 1, 64 * kPageSize);
    GuestRam& ram = vm.ram;
    const std::vector<u8> pattern(kPageSize, 0x5A);
    REQUIRE(ram.write(GuestPhysAddr(3 * kPageSize), pattern));

    CHECK(ram.migrate(1000, 1).error().kind == PageOpError::Kind::NotRam);     // beyond RAM (MMIO or hole)
    CHECK(ram.migrate(3, 0).error().kind == PageOpError::Kind::AlreadyThere);  // on node 0 already
    CHECK(ram.migrate(3, 7).error().kind == PageOpError::Kind::BadNode);
    CHECK(ram.collapse(3).error().kind == PageOpError::Kind::NotReplicated);
    {
        DmaPin pin(ram, GuestPhysAddr(3 * kPageSize), 16, false);  // device I/O in flight
        CHECK(ram.migrate(3, 1).error().kind == PageOpError::Kind::Busy);
        CHECK(ram.replicate(3).error().kind == PageOpError::Kind::Busy);
    }
    REQUIRE(ram.migrate(3, 1));
    CHECK(*ram.node_of(3) == 1);
    REQUIRE(ram.replicate(3));
    CHECK(ram.replicate(3).error().kind == PageOpError::Kind::AlreadyThere);
    CHECK(ram.migrate(3, 0).error().kind == PageOpError::Kind::NotMovable);  // replicated: collapse first
    CHECK_FALSE(ram.write_allowed(3));
    // Each node's view shows the same bytes, from its own frame; a device write collapses first.
    CHECK(ram.host_page(GuestPhysAddr(3 * kPageSize), 0) != ram.host_page(GuestPhysAddr(3 * kPageSize), 1));
    CHECK(std::memcmp(ram.host_page(GuestPhysAddr(3 * kPageSize), 0), pattern.data(), kPageSize) == 0);
    CHECK(std::memcmp(ram.host_page(GuestPhysAddr(3 * kPageSize), 1), pattern.data(), kPageSize) == 0);
    const u8 one[1] = {7};
    REQUIRE(ram.write(GuestPhysAddr(3 * kPageSize), one));
    CHECK(ram.write_allowed(3));
    CHECK(ram.host_page(GuestPhysAddr(3 * kPageSize), 0)[0] == 7);
    CHECK(ram.host_page(GuestPhysAddr(3 * kPageSize), 1)[0] == 7);
    CHECK(mm->totals().frames_in_use == 64);  // the replica went back

    GuestRam plain;
    REQUIRE(plain.add_region(GuestPhysAddr(0), 16 * kPageSize));
    CHECK(plain.migrate(1, 0).error().kind == PageOpError::Kind::NotMovable);
}

TEST_CASE("identical pages of two VMs share one frame until either writes", "[page-ops]") {
    const auto mm = test::test_machine_memory(2, 1 << 20);
    {
        test::TestVmRam vm_a(*mm, 1, 16 * kPageSize), vm_b(*mm, 2, 16 * kPageSize, 1, 1);
        GuestRam &a = vm_a.ram, &b = vm_b.ram;
        const std::vector<u8> text(kPageSize, 0xC3);
        REQUIRE(a.write(GuestPhysAddr(2 * kPageSize), text));
        REQUIRE(b.write(GuestPhysAddr(5 * kPageSize), text));
        REQUIRE(mm->totals().frames_in_use == 32);

        CHECK(b.share_from(4, a, 2).error().kind == PageOpError::Kind::NotIdentical);  // zero page vs text
        REQUIRE(b.share_from(5, a, 2));
        CHECK(mm->totals().frames_in_use == 31);  // one frame saved
        CHECK(b.host_page(GuestPhysAddr(5 * kPageSize)) == a.host_page(GuestPhysAddr(2 * kPageSize)));
        CHECK(mm->user_count(*[&] {
            // the frame's reverse map names both VMs
            const u8* host = a.host_page(GuestPhysAddr(2 * kPageSize));
            for (u32 f = 0; f < mm->frame_count(); ++f)
                if (mm->host(MachineFrame(f)) == host) return std::optional<MachineFrame>(MachineFrame(f));
            return std::optional<MachineFrame>();
        }()) == 2);
        CHECK_FALSE(a.write_allowed(2));
        CHECK_FALSE(b.write_allowed(5));
        CHECK(b.share_from(5, a, 2).error().kind == PageOpError::Kind::AlreadyThere);
        CHECK(a.migrate(2, 1).error().kind == PageOpError::Kind::Shared);
        CHECK(b.replicate(5).error().kind == PageOpError::Kind::Shared);

        // A write to B's page gets B a private copy; A still reads the original.
        const u8 mark[1] = {0x11};
        REQUIRE(b.write(GuestPhysAddr(5 * kPageSize), mark));
        CHECK(b.page_op_stats().cow_breaks.load() == 1);
        CHECK(b.host_page(GuestPhysAddr(5 * kPageSize))[0] == 0x11);
        CHECK(a.host_page(GuestPhysAddr(2 * kPageSize))[0] == 0xC3);
        CHECK(mm->totals().frames_in_use == 32);
        CHECK(b.write_allowed(5));
        // A is the frame's only holder now: its first write takes it over without a copy.
        REQUIRE(a.write(GuestPhysAddr(2 * kPageSize), mark));
        CHECK(a.page_op_stats().cow_takeovers.load() == 1);
        CHECK(a.write_allowed(2));
        CHECK(mm->totals().frames_in_use == 32);

        // Sharing needs one machine memory.
        const auto other = test::test_machine_memory(2, 1 << 20);
        test::TestVmRam vm_c(*other, 3, 16 * kPageSize);
        GuestRam& c = vm_c.ram;
        CHECK(c.share_from(0, a, 0).error().kind == PageOpError::Kind::NotMovable);
        // Shared, then one VM goes away: the other keeps the frame.
        REQUIRE(b.share_from(7, a, 9));  // two zero pages
        CHECK(mm->totals().frames_in_use == 31);
    }
    CHECK(mm->totals().frames_in_use == 0);  // every frame back in its pool
}

TEST_CASE("RAM placement: one run at home, interleaved, or each page on a random node", "[page-ops][placement]") {
    const auto mm = test::test_machine_memory(4, 4 << 20);
    constexpr u64 kPlaced = 256;
    const auto per_node = [&](RamPlacement placement, u32 vm_id) {
        GuestRam ram;
        ram.use_machine_memory(mm.get(), 2, vm_id, placement);
        REQUIRE(ram.add_region(GuestPhysAddr(0), kPlaced * kPageSize));
        std::vector<u64> counts(4);
        for (u64 p = 0; p < kPlaced; ++p) ++counts[*ram.node_of(p)];
        // Whatever the placement, every page reads and writes as RAM.
        const u8 mark[1] = {0x7E};
        REQUIRE(ram.write(GuestPhysAddr(77 * kPageSize), mark));
        CHECK(ram.host_page(GuestPhysAddr(77 * kPageSize))[0] == 0x7E);
        return counts;
    };
    CHECK(per_node(RamPlacement::Home, 1) == std::vector<u64>{0, 0, kPlaced, 0});
    CHECK(per_node(RamPlacement::Interleave, 2) == std::vector<u64>{64, 64, 64, 64});
    const auto random = per_node(RamPlacement::Random, 3);
    for (u64 n : random) CHECK((n > kPlaced / 8 && n < kPlaced / 2));  // about a quarter each
    CHECK(per_node(RamPlacement::Random, 3) == random);                // the same choice every time
    CHECK(per_node(RamPlacement::Random, 4) != random);                // another VM's differs
    CHECK(mm->totals().frames_in_use == 0);
}

TEST_CASE("migrate_many moves a batch with two shootdowns and refuses what it cannot move", "[page-ops]") {
    const auto mm = test::test_machine_memory(2, 4 << 20);
    test::TestVmRam vm(*mm, 1, 64 * kPageSize);
    GuestRam& ram = vm.ram;
    for (u64 p = 0; p < 8; ++p) {
        const u8 mark[1] = {static_cast<u8>(0x30 + p)};
        REQUIRE(ram.write(GuestPhysAddr(p * kPageSize), mark));
    }
    REQUIRE(ram.replicate(5));
    const u64 shootdowns = ram.page_op_stats().shootdowns.load();
    const u64 batch[] = {0, 1, 2, 5, 2, 999, 7};
    const auto results = ram.migrate_many(batch, 1);
    REQUIRE(results.size() == 7);
    CHECK(results[0]);
    CHECK(results[1]);
    CHECK(results[2]);
    CHECK(results[3].error().kind == PageOpError::Kind::NotMovable);    // replicated
    CHECK(results[4].error().kind == PageOpError::Kind::AlreadyThere);  // named twice
    CHECK(results[5].error().kind == PageOpError::Kind::NotRam);
    CHECK(results[6]);
    CHECK(ram.page_op_stats().shootdowns.load() - shootdowns == 2);
    for (u64 p : {0, 1, 2, 7}) {
        CHECK(*ram.node_of(p) == 1);
        CHECK(ram.host_page(GuestPhysAddr(p * kPageSize))[0] == 0x30 + p);
        CHECK(*ram.state_of(p) == 0);
    }
    CHECK(*ram.node_of(3) == 0);
}
