// Split virtqueues (virtio 1.1 §2.6) as the device walks them, and the MMIO
// transport (§4.2) as a driver programs it. Malformed rings must stop the
// queue with a fault, never reach outside guest RAM.
#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <random>
#include <string>

#include "tests/fuzz/virtqueue_harness.hpp"
#include "tests/unit/dev/virtio_test_driver.hpp"
#include "vmm/dev/virtio/virtqueue.hpp"

using namespace disco;
using namespace disco::test;
namespace feature = disco::dev::virtio_feature;
namespace status = disco::dev::virtio_status;

namespace {
constexpr u64 kDesc = 0x1000, kAvail = 0x2000, kUsed = 0x3000, kData = 0x10000;
constexpr u64 kRamSize = 1 << 20;

struct QueueRig {
    GuestRam ram = make_ram(kRamSize);
    DriverQueue dq{ram, 8, kDesc, kAvail, kUsed};
    dev::VirtQueue q;
    explicit QueueRig(u64 features = feature::kIndirectDesc | feature::kEventIdx) : q(ram, dq.layout(), features) {}

    /// pop() expecting a fault whose text contains what; the queue stays stopped.
    void expect_fault(const std::string& what) {
        auto r = q.pop();
        REQUIRE_FALSE(r);
        CHECK_THAT(r.error(), Catch::Contains(what));
        CHECK(q.broken());
        auto again = q.pop();
        REQUIRE(again);
        CHECK_FALSE(*again);
    }
    dev::DescChain expect_chain() {
        auto r = q.pop();
        REQUIRE(r);
        REQUIRE(*r);
        return std::move(**r);
    }
};

/// A device with two queues that records what the transport tells it.
struct FakeDevice final : dev::VirtioDevice {
    std::vector<unsigned> notified;
    std::vector<dev::VirtQueueLayout> activated;
    u64 negotiated = 0;
    unsigned resets = 0;
    dev::VirtioHost* host = nullptr;
    std::string name() const override { return "fake"; }
    u32 device_id() const override { return 42; }
    u64 device_features() const override { return 0x5; }
    unsigned queue_count() const override { return 2; }
    u16 queue_max_size() const override { return 16; }
    void read_config(u64 offset, std::span<u8> out) const override {
        for (usize i = 0; i < out.size(); ++i) out[i] = static_cast<u8>(0x10 + offset + i);
    }
    void activate(const dev::VirtioActivation& a) override {
        activated = a.queues;
        negotiated = a.features;
        host = &a.host;
    }
    void notify(unsigned q) override { notified.push_back(q); }
    void reset() override { ++resets; }
};

struct TransportRig {
    GuestRam ram = make_ram(kRamSize);
    FakeDevice* fake;
    Driver d;
    TransportRig() : fake(new FakeDevice), d(ram, std::unique_ptr<dev::VirtioDevice>(fake)) {}
};
}  // namespace

TEST_CASE("virtqueue: a direct chain splits into readable then writable segments", "[virtio]") {
    QueueRig r;
    const u16 head = r.dq.add_chain({{kData, 16, false}, {kData + 0x100, 100, false}, {kData + 0x200, 512, true}});
    auto c = r.expect_chain();
    CHECK(c.head == head);
    REQUIRE(c.readable.size() == 2);
    REQUIRE(c.writable.size() == 1);
    CHECK(c.readable_bytes == 116);
    CHECK(c.writable_bytes == 512);
    CHECK(c.writable[0].addr.value == kData + 0x200);
    auto none = r.q.pop();
    REQUIRE(none);
    CHECK_FALSE(*none);

    // gather/scatter treat the segments as one stream (§2.6.4 message framing).
    std::vector<u8> pattern(116);
    for (usize i = 0; i < pattern.size(); ++i) pattern[i] = static_cast<u8>(i);
    REQUIRE(r.ram.write(GuestPhysAddr(kData), std::span(pattern).first(16)));
    REQUIRE(r.ram.write(GuestPhysAddr(kData + 0x100), std::span(pattern).subspan(16)));
    std::vector<u8> got(20);
    REQUIRE(dev::gather(r.ram, c.readable, 10, got));
    for (usize i = 0; i < got.size(); ++i) CHECK(got[i] == 10 + i);
    CHECK_FALSE(dev::gather(r.ram, c.readable, 100, got));  // runs past the chain
    const u8 seven[3] = {7, 7, 7};
    REQUIRE(dev::scatter(r.ram, c.writable, 509, seven));
    CHECK_FALSE(dev::scatter(r.ram, c.writable, 510, seven));
}

TEST_CASE("virtqueue: used ring entries, used index and interrupt suppression", "[virtio]") {
    SECTION("without EVENT_IDX the NO_INTERRUPT flag decides") {
        QueueRig r(0);
        r.dq.add_chain({{kData, 8, true}});
        r.dq.add_chain({{kData + 8, 8, true}});
        auto a = r.expect_chain(), b = r.expect_chain();
        CHECK(r.q.in_flight() == 2);
        CHECK_FALSE(r.q.needs_interrupt());  // nothing used yet
        REQUIRE(r.q.push(b.head, 5));
        CHECK(r.dq.used_idx() == 1);
        CHECK(r.dq.used(0) == std::pair<u32, u32>{b.head, 5});
        CHECK(r.q.needs_interrupt());
        r.dq.set_avail_flags(1);
        REQUIRE(r.q.push(a.head, 3));
        CHECK_FALSE(r.q.needs_interrupt());
        CHECK(r.dq.used_idx() == 2);
    }
    SECTION("with EVENT_IDX used_event decides and avail_event asks for the next entry") {
        QueueRig r(feature::kEventIdx);
        for (int i = 0; i < 3; ++i) r.dq.add_chain({{kData + 8ull * i, 8, true}});
        r.dq.set_used_event(1);  // interrupt once entry 1 is used
        for (int i = 0; i < 3; ++i) (void)r.expect_chain();
        CHECK_FALSE(r.q.arm_notification());
        CHECK(r.dq.avail_event() == 3);
        REQUIRE(r.q.push(0, 0));
        CHECK_FALSE(r.q.needs_interrupt());  // used idx 1 has not passed used_event 1
        REQUIRE(r.q.push(1, 0));
        CHECK(r.q.needs_interrupt());
        REQUIRE(r.q.push(2, 0));
        CHECK_FALSE(r.q.needs_interrupt());  // used_event is still 1
        r.dq.add_chain({{kData, 8, true}});
        CHECK(r.q.arm_notification());  // arrived meanwhile: pop again rather than wait
    }
}

TEST_CASE("virtqueue: indirect tables", "[virtio]") {
    constexpr u64 kTable = 0x8000;
    SECTION("a table's descriptors form the chain") {
        QueueRig r;
        r.dq.add_indirect(kTable, {{kData, 16, false}, {kData + 0x1000, 4096, true}, {kData + 0x3000, 1, true}});
        auto c = r.expect_chain();
        CHECK(c.readable_bytes == 16);
        CHECK(c.writable_bytes == 4097);
        CHECK(c.writable.size() == 2);
    }
    SECTION("not negotiated") {
        QueueRig r(0);
        r.dq.add_indirect(kTable, {{kData, 16, false}});
        r.expect_fault("VIRTIO_F_INDIRECT_DESC was not negotiated");
    }
    SECTION("nested") {
        QueueRig r;
        r.dq.put_desc(kTable, kTable, 16, kIndirect, 0);
        r.dq.set_desc(0, kTable, 16, kIndirect, 0);
        r.dq.make_available(0);
        r.expect_fault("indirect inside an indirect table");
    }
    SECTION("together with NEXT") {
        QueueRig r;
        r.dq.put_desc(kTable, kData, 16, 0, 0);
        r.dq.set_desc(0, kTable, 16, kIndirect | kNext, 1);
        r.dq.make_available(0);
        r.expect_fault("both INDIRECT and NEXT");
    }
    SECTION("a length that is not whole descriptors, or too many") {
        QueueRig r;
        r.dq.set_desc(0, kTable, GENERATE(0u, 15u, 24u, 16u * 9), kIndirect, 0);
        r.dq.make_available(0);
        r.expect_fault("indirect table length");
    }
    SECTION("a table outside RAM") {
        QueueRig r;
        r.dq.set_desc(0, kRamSize - 16, 32, kIndirect, 0);
        r.dq.make_available(0);
        r.expect_fault("indirect table at");
    }
    SECTION("a loop inside the table") {
        QueueRig r;
        r.dq.put_desc(kTable, kData, 16, kNext, 1);
        r.dq.put_desc(kTable + 16, kData, 16, kNext, 0);
        r.dq.set_desc(0, kTable, 32, kIndirect, 0);
        r.dq.make_available(0);
        r.expect_fault("longer than 2");
    }
    SECTION("next past the table") {
        QueueRig r;
        r.dq.put_desc(kTable, kData, 16, kNext, 2);
        r.dq.set_desc(0, kTable, 32, kIndirect, 0);
        r.dq.make_available(0);
        r.expect_fault("next index 2 is past the table's 2 entries");
    }
}

TEST_CASE("virtqueue: malformed direct chains stop the queue", "[virtio]") {
    QueueRig r;
    SECTION("a loop") {
        r.dq.set_desc(0, kData, 16, kNext, 1);
        r.dq.set_desc(1, kData, 16, kNext, 0);
        r.dq.make_available(0);
        r.expect_fault("longer than 8 (a loop?)");
    }
    SECTION("a self loop") {
        r.dq.set_desc(3, kData, 16, kNext, 3);
        r.dq.make_available(3);
        r.expect_fault("longer than 8");
    }
    SECTION("a buffer outside RAM") {
        r.dq.add_chain({{kRamSize, 16, false}});
        r.expect_fault("outside guest RAM");
    }
    SECTION("a buffer that runs off the end of RAM") {
        r.dq.add_chain({{kRamSize - 8, 16, true}});
        r.expect_fault("buffer at 0xffff8+0x10 is outside guest RAM");
    }
    SECTION("a huge length") {
        r.dq.add_chain({{kData, 0xFFFFFFFF, true}});
        r.expect_fault("outside guest RAM");
    }
    SECTION("an address that wraps around") {
        r.dq.add_chain({{~0ull - 7, 16, false}});
        r.expect_fault("outside guest RAM");
    }
    SECTION("next index past the queue size") {
        r.dq.set_desc(0, kData, 16, kNext, 8);
        r.dq.make_available(0);
        r.expect_fault("next index 8 is past the table's 8 entries");
    }
    SECTION("head index past the queue size") {
        r.dq.make_available(8);
        r.expect_fault("names descriptor 8, past the queue size 8");
    }
    SECTION("avail index more than a queue ahead") {
        r.dq.set_avail_idx(9);
        r.expect_fault("more than the queue size 8 ahead");
    }
    SECTION("readable after writable") {
        r.dq.add_chain({{kData, 16, true}, {kData + 16, 16, false}});
        r.expect_fault("device-readable but follows a device-writable one");
    }
}

TEST_CASE("virtqueue: zero-length descriptors carry no segment, wherever they point", "[virtio]") {
    QueueRig r;
    r.dq.add_chain({{~0ull, 0, false}, {kData, 4, true}});
    auto c = r.expect_chain();
    CHECK(c.readable.empty());
    CHECK(c.writable_bytes == 4);
}

TEST_CASE("virtqueue: ring layout checks", "[virtio]") {
    GuestRam ram = make_ram(kRamSize);
    auto check = [&](u16 size, u64 desc, u64 avail, u64 used) {
        return dev::VirtQueue::check_layout(ram, {size, GuestPhysAddr(desc), GuestPhysAddr(avail), GuestPhysAddr(used)},
                                            256);
    };
    CHECK_FALSE(check(256, kDesc, kAvail, kUsed));
    CHECK_THAT(*check(0, kDesc, kAvail, kUsed), Catch::Contains("power of 2"));
    CHECK_THAT(*check(12, kDesc, kAvail, kUsed), Catch::Contains("power of 2"));
    CHECK_THAT(*check(512, kDesc, kAvail, kUsed), Catch::Contains("power of 2"));
    CHECK_THAT(*check(8, kDesc + 8, kAvail, kUsed),
               Catch::Contains("descriptor table at 0x1008 is not 16-byte aligned"));
    CHECK_THAT(*check(8, kDesc, kAvail + 1, kUsed), Catch::Contains("not 2-byte aligned"));
    CHECK_THAT(*check(8, kDesc, kAvail, kUsed + 2), Catch::Contains("not 4-byte aligned"));
    CHECK_THAT(*check(256, kRamSize - 0x800, kAvail, kUsed), Catch::Contains("outside guest RAM"));
    CHECK_THAT(*check(8, kDesc, kAvail, 0x9000000000000000ull), Catch::Contains("used ring"));
}

TEST_CASE("virtio-mmio: identification and an empty slot", "[virtio]") {
    TransportRig r;
    CHECK(r.d.rd(mmio_reg::Magic) == 0x74726976);
    CHECK(r.d.rd(mmio_reg::Version) == 2);
    CHECK(r.d.rd(mmio_reg::DeviceId) == 42);
    CHECK(r.d.mmio.name() == "virtio-mmio@0x1f100000 (fake)");

    GuestRam ram = make_ram(kRamSize);
    auto empty = dev::VirtioMmio::empty(ram, 0x1F107000);
    CHECK(empty->mmio_read(mmio_reg::Magic, 4) == 0x74726976);
    CHECK(empty->mmio_read(mmio_reg::Version, 4) == 2);
    CHECK(empty->mmio_read(mmio_reg::DeviceId, 4) == 0);
    empty->mmio_write(mmio_reg::Status, 4, 0xF);  // ignored, no crash
    CHECK(empty->mmio_read(mmio_reg::Status, 4) == 0);
    CHECK(empty->mmio_read(mmio_reg::Config, 4) == 0);
}

TEST_CASE("virtio-mmio: feature negotiation", "[virtio]") {
    TransportRig r;
    const u64 offered = r.d.device_features();
    CHECK(offered == (0x5 | feature::kVersion1 | feature::kIndirectDesc | feature::kEventIdx));
    r.d.wr(mmio_reg::DeviceFeaturesSel, 2);
    CHECK(r.d.rd(mmio_reg::DeviceFeatures) == 0);

    CHECK(r.d.negotiate(feature::kVersion1 | 1));
    r.d.driver_ok();
    CHECK(r.fake->negotiated == (feature::kVersion1 | 1));
    // A legacy driver (no VERSION_1) is refused: FEATURES_OK stays clear (§2.2.1).
    CHECK_FALSE(r.d.negotiate(1));
    // So is a driver claiming a feature that was not offered.
    r.d.wr(mmio_reg::Status, 0);
    r.d.wr(mmio_reg::Status, status::kAcknowledge | status::kDriver);
    r.d.wr(mmio_reg::DriverFeaturesSel, 1);
    r.d.wr(mmio_reg::DriverFeatures, 1);
    r.d.wr(mmio_reg::DriverFeaturesSel, 0);
    r.d.wr(mmio_reg::DriverFeatures, 0x2);
    r.d.wr(mmio_reg::Status, status::kAcknowledge | status::kDriver | status::kFeaturesOk);
    CHECK(r.d.rd(mmio_reg::Status) == (status::kAcknowledge | status::kDriver));
}

TEST_CASE("virtio-mmio: queue setup, activation, notify and reset", "[virtio]") {
    TransportRig r;
    REQUIRE(r.d.negotiate(feature::kVersion1));
    r.d.wr(mmio_reg::QueueSel, 0);
    CHECK(r.d.rd(mmio_reg::QueueNumMax) == 16);
    CHECK(r.d.rd(mmio_reg::QueueReady) == 0);
    r.d.wr(mmio_reg::QueueSel, 2);  // no such queue
    CHECK(r.d.rd(mmio_reg::QueueNumMax) == 0);
    r.d.wr(mmio_reg::QueueReady, 1);
    CHECK(r.d.rd(mmio_reg::QueueReady) == 0);

    DriverQueue q(r.ram, 16, kDesc, kAvail, kUsed);
    r.d.setup_queue(1, q);
    CHECK(r.d.rd(mmio_reg::QueueReady) == 1);
    r.d.notify(1);
    CHECK(r.fake->notified.empty());  // not before DRIVER_OK
    r.d.driver_ok();
    REQUIRE(r.fake->activated.size() == 2);
    CHECK(r.fake->activated[0].size == 0);  // queue 0 was never enabled
    CHECK(r.fake->activated[1].size == 16);
    CHECK(r.fake->activated[1].desc.value == kDesc);
    CHECK(r.fake->activated[1].avail.value == kAvail);
    CHECK(r.fake->activated[1].used.value == kUsed);
    r.d.notify(1);
    r.d.notify(0);  // not enabled: dropped
    r.d.notify(7);  // no such queue: dropped
    CHECK(r.fake->notified == std::vector<unsigned>{1});

    // Used buffer notification: InterruptStatus bit 0, a level until acknowledged.
    r.fake->host->signal_used(1);
    CHECK(r.d.irq);
    CHECK(r.d.take_interrupt() == 1);
    CHECK_FALSE(r.d.irq);

    const unsigned resets = r.fake->resets;
    r.d.wr(mmio_reg::Status, 0);
    CHECK(r.fake->resets == resets + 1);
    CHECK(r.d.rd(mmio_reg::Status) == 0);
    r.d.wr(mmio_reg::QueueSel, 1);
    CHECK(r.d.rd(mmio_reg::QueueReady) == 0);
}

TEST_CASE("virtio-mmio: a bad ring layout breaks the device until reset", "[virtio]") {
    TransportRig r;
    REQUIRE(r.d.negotiate(feature::kVersion1));
    // The descriptor table's high half puts it far outside RAM.
    DriverQueue q(r.ram, 16, (1ull << 32) | kDesc, kAvail, kUsed);
    r.d.setup_queue(0, q);
    CHECK(r.d.rd(mmio_reg::QueueReady) == 0);
    CHECK(r.d.broken());
    CHECK(r.d.irq);
    CHECK(r.d.take_interrupt() == 2);  // configuration change notification
    r.d.wr(mmio_reg::Status, 0);
    CHECK_FALSE(r.d.broken());
    CHECK(r.d.rd(mmio_reg::Status) == 0);
}

TEST_CASE("virtio-mmio: configuration space at 0x100, any width, little-endian", "[virtio]") {
    TransportRig r;
    CHECK(r.d.mmio.mmio_read(mmio_reg::Config, 1) == 0x10);
    CHECK(r.d.mmio.mmio_read(mmio_reg::Config + 2, 2) == 0x1312);
    CHECK(r.d.mmio.mmio_read(mmio_reg::Config + 4, 4) == 0x17161514);
    CHECK(r.d.mmio.mmio_read(mmio_reg::Config, 8) == 0x1716151413121110ull);
    CHECK(r.d.mmio.mmio_read(0x1FE, 4) == 0);  // past the window
    // Control registers are 32-bit only: a byte access does nothing.
    CHECK(r.d.mmio.mmio_read(mmio_reg::Magic, 1) == 0);
    r.d.mmio.mmio_write(mmio_reg::Status, 1, status::kAcknowledge);
    CHECK(r.d.rd(mmio_reg::Status) == 0);
}

TEST_CASE("virtqueue fuzz harness: seeded random rings", "[virtio][fuzz]") {
    // Faults print one line each; keep thousands of them off the test log.
    const int saved = dup(2);
    const int null = open("/dev/null", O_WRONLY);
    dup2(null, 2);
    std::mt19937_64 rng(0xD15C0F22);
    std::vector<u8> in;
    for (int iter = 0; iter < 3000; ++iter) {
        const unsigned log2 = static_cast<unsigned>(rng() % 9);
        const u16 size = static_cast<u16>(1u << log2);
        in.assign(kFuzzHeader + kFuzzUsed, 0);
        in[0] = static_cast<u8>(log2);
        in[1] = static_cast<u8>(rng());
        u8* desc = in.data() + kFuzzHeader + kFuzzDesc;
        u8* avail = in.data() + kFuzzHeader + kFuzzAvail;
        // Mostly plausible descriptors (so chains get walked deep), with edge values mixed in.
        for (u16 i = 0; i < size; ++i) {
            const u64 addrs[] = {
                0x3000 + (rng() % 0xC000), kFuzzRamSize - 1 - (rng() % 32), kFuzzRamSize, ~0ull, rng() % 0x1000, rng()};
            const u32 lens[] = {static_cast<u32>(rng() % 0x800), 0, 16, 0xFFFFFFFF, static_cast<u32>(rng())};
            store_guest<LE, u64>(desc + 16 * i, addrs[rng() % 6 < 4 ? 0 : rng() % 6]);
            store_guest<LE, u32>(desc + 16 * i + 8, lens[rng() % 3 ? 0 : rng() % 5]);
            store_guest<LE, u16>(desc + 16 * i + 12, static_cast<u16>(rng() % 8));
            store_guest<LE, u16>(desc + 16 * i + 14, static_cast<u16>(rng() % 4 ? rng() % size : rng()));
        }
        const u16 avail_idx = static_cast<u16>(rng() % 8 ? rng() % (size + 1) : rng());
        store_guest<LE, u16>(avail + 2, avail_idx);
        for (u16 i = 0; i < size; ++i)
            store_guest<LE, u16>(avail + 4 + 2 * i, static_cast<u16>(rng() % 8 ? rng() % size : rng()));
        for (int flips = static_cast<int>(rng() % 4); flips > 0; --flips)
            in[rng() % in.size()] ^= static_cast<u8>(rng());
        run_virtqueue_case(in);
    }
    dup2(saved, 2);
    close(saved);
    close(null);
    SUCCEED("3000 random rings walked");
}
