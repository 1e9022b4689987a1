// virtio-console (virtio 1.1 §5.3), single port: transmitq output to the
// sink, host input into the receive buffers the guest posts.
#include <catch2/catch.hpp>
#include <mutex>
#include <string>
#include <thread>

#include "tests/unit/dev/virtio_test_driver.hpp"
#include "vmm/dev/virtio/console.hpp"

using namespace disco;
using namespace disco::test;
namespace feature = disco::dev::virtio_feature;

namespace {
constexpr u64 kRxDesc = 0x1000, kRxAvail = 0x2000, kRxUsed = 0x3000;
constexpr u64 kTxDesc = 0x4000, kTxAvail = 0x5000, kTxUsed = 0x6000;
constexpr u64 kRxBufs = 0x10000, kTxBufs = 0x20000;
constexpr u64 kFeatureEmergWrite = 1ull << 2;

struct ConsoleRig {
    GuestRam ram = make_ram();
    std::mutex out_mutex;
    std::string out;
    dev::VirtioConsole* console;
    Driver d;
    DriverQueue rx{ram, 64, kRxDesc, kRxAvail, kRxUsed};
    DriverQueue tx{ram, 64, kTxDesc, kTxAvail, kTxUsed};

    explicit ConsoleRig(u64 features = ~0ull)
        : console(new dev::VirtioConsole([this](std::span<const u8> b) {
              std::lock_guard<std::mutex> lock(out_mutex);
              out.append(b.begin(), b.end());
          })),
          d(ram, std::unique_ptr<dev::VirtioDevice>(console)) {
        REQUIRE(d.negotiate(features));
        d.setup_queue(0, rx);
        d.setup_queue(1, tx);
        d.driver_ok();
    }
    void send(const std::string& s, u64 at) {
        REQUIRE(ram.write(GuestPhysAddr(at), std::span(reinterpret_cast<const u8*>(s.data()), s.size())));
        tx.add_chain({{at, static_cast<u32>(s.size()), false}});
    }
    void post_rx(u64 at, u32 len) { rx.add_chain({{at, len, true}}); }
    std::string rx_bytes(u64 at, usize n) {
        std::string s(n, '\0');
        REQUIRE(ram.read(GuestPhysAddr(at), std::span(reinterpret_cast<u8*>(s.data()), n)));
        return s;
    }
    std::string output() {
        std::lock_guard<std::mutex> lock(out_mutex);
        return out;
    }
};
}  // namespace

TEST_CASE("virtio-console: identity and features", "[virtio]") {
    ConsoleRig r;
    CHECK(r.d.rd(mmio_reg::DeviceId) == 3);
    const u64 f = r.d.device_features();
    CHECK((f & 0xFFFFFF) == kFeatureEmergWrite);  // no SIZE, no MULTIPORT
    CHECK(f & feature::kVersion1);
    r.d.wr(mmio_reg::QueueSel, 2);
    CHECK(r.d.rd(mmio_reg::QueueNumMax) == 0);  // two queues only
}

TEST_CASE("virtio-console: transmitted buffers reach the sink before the notify returns", "[virtio]") {
    ConsoleRig r;
    r.send("hello, ", kTxBufs);
    r.send("world\n", kTxBufs + 0x100);
    r.d.notify(1);
    CHECK(r.output() == "hello, world\n");
    CHECK(r.tx.used_idx() == 2);
    CHECK(r.tx.used(0).second == 0);  // nothing written into the buffers
    CHECK(r.d.take_interrupt() == 1);
    // A buffer split over two descriptors is one stream.
    REQUIRE(r.ram.write(GuestPhysAddr(kTxBufs), std::span(reinterpret_cast<const u8*>("abcdef"), 6)));
    r.tx.add_chain({{kTxBufs, 2, false}, {kTxBufs + 4, 2, false}});
    r.d.notify(1);
    CHECK(r.output() == "hello, world\nabef");
}

TEST_CASE("virtio-console: input waits for receive buffers and fills them in order", "[virtio]") {
    ConsoleRig r;
    const std::string early = "typed early";
    r.console->push_input(std::span(reinterpret_cast<const u8*>(early.data()), early.size()));
    CHECK(r.console->input_pending() == early.size());
    CHECK_FALSE(r.d.irq);

    r.post_rx(kRxBufs, 5);
    r.post_rx(kRxBufs + 0x100, 64);
    r.d.notify(0);
    CHECK(r.console->input_pending() == 0);
    CHECK(r.rx.used_idx() == 2);
    CHECK(r.rx.used(0).second == 5);
    CHECK(r.rx.used(1).second == early.size() - 5);
    CHECK(r.rx_bytes(kRxBufs, 5) == "typed");
    CHECK(r.rx_bytes(kRxBufs + 0x100, early.size() - 5) == " early");
    CHECK(r.d.take_interrupt() == 1);

    // With a buffer already posted, input goes in at once (from another
    // thread). Like Linux, the driver asks (EVENT_IDX) to hear of the next used entry.
    r.rx.set_used_event(r.rx.used_idx());
    r.post_rx(kRxBufs + 0x200, 64);
    r.d.notify(0);
    std::thread t([&] { r.console->push_input(std::span(reinterpret_cast<const u8*>("x"), 1)); });
    t.join();
    CHECK(r.rx.used_idx() == 3);
    CHECK(r.rx_bytes(kRxBufs + 0x200, 1) == "x");
    CHECK(r.d.irq);
}

TEST_CASE("virtio-console: emergency write goes to the sink", "[virtio]") {
    ConsoleRig r;
    r.d.mmio.mmio_write(mmio_reg::Config + 8, 4, 'E');
    r.d.mmio.mmio_write(mmio_reg::Config + 0, 4, 'X');  // cols: read-only, ignored
    CHECK(r.output() == "E");
}

TEST_CASE("virtio-console: wrong-direction buffers break the queue, reset recovers", "[virtio]") {
    ConsoleRig r;
    SECTION("writable buffer in the transmit queue") {
        r.tx.add_chain({{kTxBufs, 8, true}});
        r.d.notify(1);
    }
    SECTION("readable buffer in the receive queue") {
        r.rx.add_chain({{kRxBufs, 8, false}});
        r.console->push_input(std::span(reinterpret_cast<const u8*>("y"), 1));
    }
    SECTION("a loop in the transmit queue") {
        r.tx.set_desc(0, kTxBufs, 4, kNext, 0);
        r.tx.make_available(0);
        r.d.notify(1);
    }
    CHECK(r.d.broken());
    CHECK((r.d.take_interrupt() & 2) == 2);
    CHECK(r.output().empty());

    r.rx = DriverQueue(r.ram, 64, kRxDesc, kRxAvail, kRxUsed);
    r.tx = DriverQueue(r.ram, 64, kTxDesc, kTxAvail, kTxUsed);
    REQUIRE(r.ram.write(GuestPhysAddr(kRxAvail), std::vector<u8>(0x1000, 0)));
    REQUIRE(r.ram.write(GuestPhysAddr(kTxAvail), std::vector<u8>(0x1000, 0)));
    REQUIRE(r.ram.write(GuestPhysAddr(kTxUsed), std::vector<u8>(0x1000, 0)));
    REQUIRE(r.d.negotiate(~0ull));
    r.d.setup_queue(0, r.rx);
    r.d.setup_queue(1, r.tx);
    r.d.driver_ok();
    CHECK_FALSE(r.d.broken());
    r.send("ok", kTxBufs);
    r.d.notify(1);
    CHECK(r.output() == "ok");
}
