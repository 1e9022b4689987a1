// Access counters (vmm/mem/access_counters.hpp): counts per frame and node,
// reset, the bounded hottest-frames query, switching counting off, pointers
// that are not machine memory, concurrent counting, and a real vCPU's
// soft-TLB fills counted on its home node.
#include <catch2/catch.hpp>
#include <thread>

#include "tests/unit/cpu_harness.hpp"
#include "vmm/mem/access_counters.hpp"
#include "vmm/mem/guest_ram.hpp"
#include "vmm/mem/machine_memory.hpp"

using namespace disco;

namespace {
std::unique_ptr<MachineMemory> simulated(unsigned nodes, u32 frames_per_node) {
    auto m = MachineMemory::create({.bytes_per_node = u64(frames_per_node) * kPageSize, .numa_sim = nodes});
    if (!m) FAIL(m.error().message);
    return std::move(*m);
}

/// `times` accesses by node `node` to frame f, at varying bytes of it.
void touch(MachineMemory& mm, u32 f, NodeId node, unsigned times) {
    for (unsigned i = 0; i < times; ++i)
        mm.access_counters().note(mm.host(MachineFrame(f)) + (i * 8) % kPageSize, node);
}
}  // namespace

TEST_CASE("accesses are counted per frame and per node", "[access-counters]") {
    auto mm = simulated(4, 16);
    const AccessCounters& ac = mm->access_counters();
    CHECK(ac.frame_count() == 64);
    CHECK(ac.node_count() == 4);
    CHECK(ac.enabled());
    touch(*mm, 5, 0, 3);
    touch(*mm, 5, 2, 7);
    touch(*mm, 40, 3, 1);
    CHECK(ac.count(MachineFrame(5), 0) == 3);
    CHECK(ac.count(MachineFrame(5), 1) == 0);
    CHECK(ac.count(MachineFrame(5), 2) == 7);
    CHECK(ac.count(MachineFrame(5), 3) == 0);
    CHECK(ac.total(MachineFrame(5)) == 10);
    CHECK(ac.total(MachineFrame(40)) == 1);
    CHECK(ac.total(MachineFrame(6)) == 0);
    CHECK(ac.sum() == 11);
    // Out of range queries read zero rather than fail.
    CHECK(ac.count(MachineFrame(64), 0) == 0);
    CHECK(ac.count(MachineFrame(5), 4) == 0);
    CHECK(ac.total(MachineFrame(1000)) == 0);
    CHECK(ac.summary() == "11 misses counted, top page frame 5 (node counts 3/0/7/0)");
}

TEST_CASE("reset clears every count and counting goes on after it", "[access-counters]") {
    auto mm = simulated(2, 8);
    AccessCounters& ac = mm->access_counters();
    for (u32 f = 0; f < 16; ++f) touch(*mm, f, f % 2, f + 1);
    REQUIRE(ac.sum() == 16 * 17 / 2);
    ac.reset();
    CHECK(ac.sum() == 0);
    CHECK(ac.hottest(4).empty());
    CHECK(ac.summary() == "0 misses counted, top page frame none");
    touch(*mm, 3, 1, 2);
    CHECK(ac.count(MachineFrame(3), 1) == 2);
    CHECK(ac.sum() == 2);
}

TEST_CASE("hottest(k) gives at most k frames, hottest first, ties by frame", "[access-counters]") {
    auto mm = simulated(4, 64);
    const AccessCounters& ac = mm->access_counters();
    // Totals: frame 200 -> 50, 7 -> 30 (split over nodes), 100 and 12 -> 20 (a tie), 3 -> 1.
    touch(*mm, 200, 1, 50);
    touch(*mm, 7, 0, 10);
    touch(*mm, 7, 3, 20);
    touch(*mm, 100, 2, 20);
    touch(*mm, 12, 2, 20);
    touch(*mm, 3, 0, 1);

    const auto top = ac.hottest(3);
    REQUIRE(top.size() == 3);
    CHECK(top[0].frame == MachineFrame(200));
    CHECK(top[0].total == 50);
    CHECK(top[0].counts == std::vector<u32>{0, 50, 0, 0});
    CHECK(top[1].frame == MachineFrame(7));
    CHECK(top[1].counts == std::vector<u32>{10, 0, 0, 20});
    CHECK(top[2].frame == MachineFrame(12));  // ties with 100: the lower frame first
    CHECK(top[2].total == 20);

    const auto all = ac.hottest(1000);  // more than there are: only the frames with counts
    REQUIRE(all.size() == 5);
    const std::vector<u32> order{200, 7, 12, 100, 3};
    for (usize i = 0; i < all.size(); ++i) CHECK(all[i].frame.index == order[i]);
    CHECK(ac.hottest(0).empty());
    REQUIRE(ac.hottest(1).size() == 1);
    CHECK(ac.hottest(1)[0].frame == MachineFrame(200));
}

TEST_CASE("disabled counters count nothing and keep their counts", "[access-counters]") {
    auto mm = simulated(2, 8);
    AccessCounters& ac = mm->access_counters();
    touch(*mm, 1, 0, 4);
    ac.set_enabled(false);
    CHECK_FALSE(ac.enabled());
    touch(*mm, 1, 0, 100);
    touch(*mm, 2, 1, 100);
    CHECK(ac.count(MachineFrame(1), 0) == 4);
    CHECK(ac.total(MachineFrame(2)) == 0);
    CHECK(ac.sum() == 4);
    ac.set_enabled(true);
    touch(*mm, 2, 1, 1);
    CHECK(ac.sum() == 5);
}

TEST_CASE("pointers outside machine memory and unknown nodes are ignored", "[access-counters]") {
    auto mm = simulated(2, 8);
    AccessCounters& ac = mm->access_counters();
    const u8* first = mm->host(MachineFrame(0));
    const u8* last = mm->host(MachineFrame(15));
    GuestRam plain;  // anonymous host memory, not machine frames
    REQUIRE(plain.add_region(GuestPhysAddr(0), 4 * kPageSize));
    const u8* outside[] = {nullptr,
                           first - 1,
                           first - kPageSize,
                           last + kPageSize,
                           last + 100 * kPageSize,
                           plain.host_page(GuestPhysAddr(kPageSize))};
    for (const u8* p : outside) {
        ac.note(p, 0);
        CHECK_FALSE(mm->frame_of(p).has_value());
    }
    ac.note(first, 2);  // node 2 of 2
    ac.note(first, ~0u);
    CHECK(ac.sum() == 0);

    // The first and last bytes of the arena are inside.
    ac.note(first, 1);
    ac.note(last + kPageSize - 1, 0);
    CHECK(ac.count(MachineFrame(0), 1) == 1);
    CHECK(ac.count(MachineFrame(15), 0) == 1);
    CHECK(ac.sum() == 2);
    CHECK(mm->frame_of(first) == MachineFrame(0));
    CHECK(mm->frame_of(last + kPageSize - 1) == MachineFrame(15));
    CHECK(mm->frame_of(mm->host(MachineFrame(9)) + 123) == MachineFrame(9));
}

TEST_CASE("counts from concurrent threads add up exactly", "[access-counters]") {
    constexpr unsigned kThreads = 4, kRounds = 20000;
    auto mm = simulated(2, 32);
    AccessCounters& ac = mm->access_counters();
    std::atomic<bool> done{false};
    // A reader samples the counts meanwhile, as the policy daemon would.
    std::thread reader([&] {
        while (!done.load()) {
            (void)ac.hottest(4);
            (void)ac.total(MachineFrame(0));
        }
    });
    std::vector<std::thread> threads;
    for (unsigned t = 0; t < kThreads; ++t)
        threads.emplace_back([&, t] {
            for (unsigned i = 0; i < kRounds; ++i) {
                ac.note(mm->host(MachineFrame(0)), t % 2);      // every thread: one frame, two share a node
                ac.note(mm->host(MachineFrame(1 + t)), t % 2);  // each thread its own frame
            }
        });
    for (auto& th : threads) th.join();
    done.store(true);
    reader.join();
    CHECK(ac.count(MachineFrame(0), 0) == 2 * kRounds);
    CHECK(ac.count(MachineFrame(0), 1) == 2 * kRounds);
    for (unsigned t = 0; t < kThreads; ++t) CHECK(ac.count(MachineFrame(1 + t), t % 2) == kRounds);
    CHECK(ac.sum() == 2ull * kThreads * kRounds);
    const auto top = ac.hottest(1);
    REQUIRE(top.size() == 1);
    CHECK(top[0].frame == MachineFrame(0));
}

TEST_CASE("a vCPU's soft-TLB fills are counted for its home node, when it has counters", "[access-counters]") {
    using namespace disco::test::enc;
    auto mm = simulated(4, 512);
    GuestRam ram;
    ram.use_machine_memory(mm.get(), 0, 1);
    REQUIRE(ram.add_region(GuestPhysAddr(0), 1 << 20));
    CodeWatch code(1 << 20);
    MmioBus mmio;
    std::atomic<bool> stop{false};
    // Loads from three data pages at kseg0 0x80010000, 0x80011000, 0x80012000, then parks.
    const std::vector<u32> program{lui(9, 0x8001),      ld(10, 9, 0),  ld(10, 9, 0x1000), lui(11, 0x8001),
                                   ori(11, 11, 0x2000), ld(10, 11, 8), self_loop(),       nop()};
    for (unsigned k = 0; k < 2; ++k) {
        u64 pa = 0x1000 + k * 0x1000;
        for (u32 w : program) {
            u8 b[4];
            store_guest<ByteOrder::Little, u32>(b, w);
            REQUIRE(ram.write(GuestPhysAddr(pa), b));
            pa += 4;
        }
    }
    const auto frame_at = [&](u64 pa) { return *mm->frame_of(ram.host_page(GuestPhysAddr(pa))); };
    AccessCounters& ac = mm->access_counters();

    cpu::CpuBus bus{&ram, &mmio, &code, &stop, [](const std::string&) {}, nullptr};
    bus.view = 2;
    bus.access_counters = &ac;
    cpu::Cpu counted(std::move(bus), ByteOrder::Little, 0);
    counted.write_cp0(cpu::cp0::Status, cpu::status::CU0 | cpu::status::KX);
    counted.pc = 0xFFFFFFFF80001000ull;
    counted.run(1000);
    for (u64 pa : {0x1000ull, 0x10000ull, 0x11000ull, 0x12000ull}) {
        INFO("page " << std::hex << pa);
        CHECK(ac.count(frame_at(pa), 2) >= 1);
        CHECK(ac.total(frame_at(pa)) == ac.count(frame_at(pa), 2));
    }
    const u64 counted_sum = ac.sum();
    CHECK(counted_sum >= 4);

    // The same program on a vCPU without counters (--access-counters off) adds nothing.
    cpu::Cpu uncounted(cpu::CpuBus{&ram, &mmio, &code, &stop, [](const std::string&) {}, nullptr}, ByteOrder::Little,
                       1);
    uncounted.write_cp0(cpu::cp0::Status, cpu::status::CU0 | cpu::status::KX);
    uncounted.pc = 0xFFFFFFFF80002000ull;
    uncounted.run(1000);
    const u64 parked = 0xFFFFFFFF80002000ull + 6 * 4;  // it did run to the parking loop
    CHECK((uncounted.pc == parked || uncounted.pc == parked + 4));
    CHECK(ac.sum() == counted_sum);
}

TEST_CASE("stores set a frame's written flag; loads do not; reset clears it", "[access-counters]") {
    auto mm = simulated(2, 16);
    AccessCounters& ac = mm->access_counters();
    const u8* f3 = mm->host(MachineFrame(3));
    const u8* f9 = mm->host(MachineFrame(9));
    ac.note(f3 + 100, 1, true);
    ac.note(f9, 0);
    ac.note(f9, 0, false);
    CHECK(ac.written(MachineFrame(3)));
    CHECK_FALSE(ac.written(MachineFrame(9)));
    CHECK(ac.count(MachineFrame(3), 1) == 1);  // a store fill counts as an access too
    // LL/SC stores fill no soft-TLB entry: flagged, not counted.
    ac.note_store(f9 + 8);
    CHECK(ac.written(MachineFrame(9)));
    CHECK(ac.total(MachineFrame(9)) == 2);
    CHECK_FALSE(ac.written(MachineFrame(1000)));  // beyond machine memory
    ac.reset();
    CHECK_FALSE(ac.written(MachineFrame(3)));
    CHECK_FALSE(ac.written(MachineFrame(9)));
    ac.set_enabled(false);
    ac.note(f3, 0, true);
    ac.note_store(f3);
    CHECK_FALSE(ac.written(MachineFrame(3)));
}

TEST_CASE("a vCPU's store fills flag the frame written, its load fills do not", "[access-counters]") {
    using namespace disco::test::enc;
    auto mm = simulated(2, 512);
    GuestRam ram;
    ram.use_machine_memory(mm.get(), 0, 1);
    REQUIRE(ram.add_region(GuestPhysAddr(0), 1 << 20));
    CodeWatch code(1 << 20);
    MmioBus mmio;
    std::atomic<bool> stop{false};
    // Stores to kseg0 0x80010000, loads from 0x80011000, then parks.
    const std::vector<u32> program{lui(9, 0x8001), sd(0, 9, 0), ld(10, 9, 0x1000), self_loop(), nop()};
    u64 pa = 0x1000;
    for (u32 w : program) {
        u8 b[4];
        store_guest<ByteOrder::Little, u32>(b, w);
        REQUIRE(ram.write(GuestPhysAddr(pa), b));
        pa += 4;
    }
    const auto frame_at = [&](u64 a) { return *mm->frame_of(ram.host_page(GuestPhysAddr(a))); };
    AccessCounters& ac = mm->access_counters();
    cpu::CpuBus bus{&ram, &mmio, &code, &stop, [](const std::string&) {}, nullptr};
    bus.access_counters = &ac;
    cpu::Cpu vcpu(std::move(bus), ByteOrder::Little, 0);
    vcpu.write_cp0(cpu::cp0::Status, cpu::status::CU0 | cpu::status::KX);
    vcpu.pc = 0xFFFFFFFF80001000ull;
    vcpu.run(1000);
    CHECK(ac.written(frame_at(0x10000)));
    CHECK_FALSE(ac.written(frame_at(0x11000)));
    CHECK_FALSE(ac.written(frame_at(0x1000)));  // the code page: fetched only
    CHECK(ac.count(frame_at(0x10000), 0) >= 1);
}
