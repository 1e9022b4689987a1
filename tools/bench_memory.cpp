// bench-memory: page-migration throughput and soft-TLB shootdown latency
// while vCPUs run guest code (tools/bench memory runs it; a benchmark, not a
// test). Four interpreter vCPUs, one per simulated NUMA node, sweep two sets
// of 64 pages each round: on the written set each stores the round number in
// its own slot and loads it back, on the read set it loads a constant. The
// main thread meanwhile migrates random pages of one set (the read set unless
// --written) to random other nodes as fast as it can.
//
// Why two sets: a vCPU storing to a page being moved waits for the move,
// quiescent (guest_ram.hpp), and a shootdown does not wait for a quiescent
// vCPU. Moving written pages therefore measures mostly vCPUs parked in that
// wait; moving pages they only read leaves them running, so every shootdown
// (two per migration) waits for each vCPU to reach a safe point: the real
// cost. Both are worth knowing; --written gives the second.
//
// Shootdown latency comes from GuestRam::page_op_stats(): per migration, the
// shootdown time and count it added (this thread is the only initiator), so
// the percentiles are over migrations, of the mean of their shootdowns.
//
// Output: a header line, then key=value lines, among them migrations_per_s=,
// shootdown_us_mean=, shootdown_us_p50=, shootdown_us_p99=, shootdown_us_max=
// and guest_rounds= (compare with --no-migrations for the guest's slowdown).
// Exit status 1 when a vCPU read a value it should not have (a lost store or a
// stale copy: the memory layer is broken, and no figure means anything).
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "tests/unit/cpu_harness.hpp"  // the instruction encoders
#include "vmm/mem/guest_ram.hpp"
#include "vmm/mem/machine_memory.hpp"
#include "vmm/mem/shootdown.hpp"

using namespace disco;
using namespace disco::test::enc;

namespace {
constexpr unsigned kVcpus = 4, kNodes = 4, kSetPages = 64;
// Physical layout: vCPU k's code at 0x1000 * (k + 1), failure reports at
// kFailPa, then the written set and right after it the read set.
constexpr u64 kRamBytes = 1 << 20, kFailPa = 0x8000, kWrittenPa = 0x10000;
constexpr u64 kReadPa = kWrittenPa + kSetPages * kPageSize;
constexpr u64 kCodeVa = 0xFFFFFFFF80001000ull;  // kseg0
constexpr u32 kMagic = 0x5EED1234;              // what every read-set slot holds

/// vCPU k, for round c = 1, 2, ... (kept in r8): store c at slot k of each
/// written page and load it back, then load slot k of each read page; any
/// other value parks the vCPU after storing c at kFailPa + 8k.
std::vector<u32> sweep_program(unsigned k) {
    const u32 slot = k * 8;
    return {
        ori(8, 0, 1),                                   //  0: c = 1
        lui(14, kMagic >> 16),                          //  1: r14 = the read set's constant
        ori(14, 14, kMagic & 0xFFFF),                   //  2
        lui(9, 0x8001),                                 //  3: round: r9 = slot k of the first written page
        ori(9, 9, slot),                                //  4:   (kseg0 0x80010000 + 8k)
        ori(10, 0, kSetPages),                          //  5: pages left
        sd(8, 9, 0),                                    //  6: written: store c
        ld(11, 9, 0),                                   //  7:   load it back
        bne(11, 8, 16),                                 //  8:   different: to fail (25)
        nop(),                                          //  9
        daddiu(9, 9, 4096),                             // 10:   next page
        addiu(10, 10, -1),                              // 11
        bne(10, 0, -7),                                 // 12:   to written (6)
        nop(),                                          // 13:   r9 is now at the read set
        ori(10, 0, kSetPages),                          // 14
        ld(11, 9, 0),                                   // 15: read:
        bne(11, 14, 8),                                 // 16:   not the constant: to fail (25)
        nop(),                                          // 17
        daddiu(9, 9, 4096),                             // 18
        addiu(10, 10, -1),                              // 19
        bne(10, 0, -6),                                 // 20:   to read (15)
        nop(),                                          // 21
        daddiu(8, 8, 1),                                // 22: c + 1
        beq(0, 0, -21),                                 // 23: to round (3)
        nop(),                                          // 24
        lui(13, 0x8000),                                // 25: fail:
        ori(13, 13, static_cast<u32>(kFailPa + slot)),  // 26
        sd(8, 13, 0),                                   // 27:   the round, for main()
        self_loop(),                                    // 28:   park
        nop(),                                          // 29
    };
}

[[noreturn]] void die(const std::string& message) {
    std::fprintf(stderr, "bench-memory: %s\n", message.c_str());
    std::exit(2);
}

void write_u64(GuestRam& ram, u64 pa, u64 value) {
    u8 b[8];
    store_guest<ByteOrder::Little, u64>(b, value);
    if (!ram.write(GuestPhysAddr(pa), b)) die(fmt::format("cannot write guest RAM at {:#x}", pa));
}

u64 read_u64(const GuestRam& ram, u64 pa) {
    u8 b[8];
    if (!ram.read(GuestPhysAddr(pa), b)) die(fmt::format("cannot read guest RAM at {:#x}", pa));
    return load_guest<ByteOrder::Little, u64>(b);
}

double percentile(std::vector<double> v, double p) {
    if (v.empty()) return 0;
    const usize i = std::min(v.size() - 1, static_cast<usize>(p * static_cast<double>(v.size())));
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(i), v.end());
    return v[i];
}

struct Options {
    double seconds = 3;
    bool counters = true, migrate = true, written = false;
};

Options parse(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--seconds" && i + 1 < argc)
            o.seconds = std::atof(argv[++i]);
        else if (a == "--access-counters" && i + 1 < argc)
            o.counters = std::string(argv[++i]) != "off";
        else if (a == "--written")
            o.written = true;
        else if (a == "--no-migrations")
            o.migrate = false;
        else
            die(fmt::format("usage: {} [--seconds S] [--access-counters on|off] [--written] [--no-migrations]",
                            argv[0]));
    }
    if (!(o.seconds > 0)) die("--seconds must be positive");
    return o;
}
}  // namespace

int main(int argc, char** argv) {
    const Options opt = parse(argc, argv);
    auto mm = MachineMemory::create({.bytes_per_node = 4 << 20, .numa_sim = kNodes});
    if (!mm) die(mm.error().message);
    GuestRam ram;
    Shootdown shootdown(kVcpus);
    ram.use_machine_memory(mm->get(), 0, 1);
    ram.set_shootdown(&shootdown);
    if (auto r = ram.add_region(GuestPhysAddr(0), kRamBytes); !r) die(r.error().message());
    for (u64 p = 0; p < kSetPages; ++p)
        for (unsigned k = 0; k < kVcpus; ++k) write_u64(ram, kReadPa + p * kPageSize + 8 * k, kMagic);
    CodeWatch code(kRamBytes);
    MmioBus mmio;
    std::atomic<bool> stop{false};
    std::vector<std::unique_ptr<cpu::Cpu>> cpus;
    for (unsigned k = 0; k < kVcpus; ++k) {
        cpu::CpuBus bus{&ram, &mmio, &code, &stop, [](const std::string& m) { die("vCPU: " + m); }, nullptr};
        bus.shootdown = &shootdown;
        bus.view = k % kNodes;
        if (opt.counters) bus.access_counters = &(*mm)->access_counters();
        auto c = std::make_unique<cpu::Cpu>(std::move(bus), ByteOrder::Little, k);
        c->write_cp0(cpu::cp0::Status, cpu::status::CU0 | cpu::status::KX);
        const u64 va = kCodeVa + k * kPageSize;
        u64 pa = va & 0x1FFFFFFF;
        for (u32 w : sweep_program(k)) {
            u8 b[4];
            store_guest<ByteOrder::Little, u32>(b, w);
            if (!ram.write(GuestPhysAddr(pa), b)) die("cannot load the guest program");
            pa += 4;
        }
        c->pc = va;
        cpus.push_back(std::move(c));
    }
    std::vector<std::thread> threads;
    for (auto& c : cpus)
        threads.emplace_back([&stop, cpu = c.get()] {
            while (!stop.load(std::memory_order_relaxed)) cpu->run(1 << 20);
        });

    const PageOpStats& stats = ram.page_op_stats();
    const u64 first_page = (opt.written ? kWrittenPa : kReadPa) >> kPageShift;
    std::mt19937_64 rng(1);
    std::vector<double> shootdown_us;  // per migration: the mean of its shootdowns
    shootdown_us.reserve(1 << 20);
    u64 migrations = 0, refused = 0, migrate_ns = 0;
    const auto start = std::chrono::steady_clock::now();
    const auto end = start + std::chrono::duration<double>(opt.seconds);
    if (!opt.migrate) std::this_thread::sleep_until(end);
    for (auto now = start; opt.migrate && now < end; now = std::chrono::steady_clock::now()) {
        const u64 page = first_page + rng() % kSetPages;
        const auto from = ram.node_of(page);
        if (!from) die(from.error().message);
        const NodeId to = static_cast<NodeId>((*from + 1 + rng() % (kNodes - 1)) % kNodes);
        const u64 n0 = stats.shootdowns.load(std::memory_order_relaxed);
        const u64 ns0 = stats.shootdown_ns.load(std::memory_order_relaxed);
        const auto t0 = std::chrono::steady_clock::now();
        const auto r = ram.migrate(page, to);
        migrate_ns += static_cast<u64>(std::chrono::nanoseconds(std::chrono::steady_clock::now() - t0).count());
        if (!r) {
            ++refused;  // Busy (a store or pin raced it): counted, not retried
            continue;
        }
        ++migrations;
        const u64 n = stats.shootdowns.load(std::memory_order_relaxed) - n0;
        const u64 ns = stats.shootdown_ns.load(std::memory_order_relaxed) - ns0;
        if (n) shootdown_us.push_back(static_cast<double>(ns) / static_cast<double>(n) / 1e3);
    }
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    stop.store(true);
    for (auto& c : cpus) c->kick();
    for (auto& t : threads) t.join();

    u64 rounds = 0;
    for (unsigned k = 0; k < kVcpus; ++k) {
        if (const u64 failed = read_u64(ram, kFailPa + 8 * k)) {
            std::fprintf(stderr,
                         "bench-memory: vCPU %u read a wrong value in round %llu (a lost store or a stale page)\n", k,
                         static_cast<unsigned long long>(failed));
            return 1;
        }
        rounds += cpus[k]->r[8] - 1;
    }
    const u64 sd_count = stats.shootdowns.load(), sd_ns = stats.shootdown_ns.load();
    const u64 attempts = migrations + refused;
    std::printf(
        "bench-memory: %u interpreter vCPUs on %u simulated nodes, migrating the pages they %s, "
        "access counters %s, %.2f s\n",
        kVcpus, kNodes, opt.written ? "store to" : "read", opt.counters ? "on" : "off", elapsed);
    std::printf("migrations=%llu refused=%llu guest_rounds=%llu shootdowns=%llu\n",
                static_cast<unsigned long long>(migrations), static_cast<unsigned long long>(refused),
                static_cast<unsigned long long>(rounds), static_cast<unsigned long long>(sd_count));
    std::printf("migrate_us_mean=%.2f\n", attempts ? static_cast<double>(migrate_ns) / 1e3 / double(attempts) : 0.0);
    std::printf("migrations_per_s=%.0f\n", static_cast<double>(migrations) / elapsed);
    std::printf("shootdown_us_mean=%.2f\n", sd_count ? static_cast<double>(sd_ns) / 1e3 / double(sd_count) : 0.0);
    std::printf("shootdown_us_p50=%.2f\n", percentile(shootdown_us, 0.50));
    std::printf("shootdown_us_p99=%.2f\n", percentile(shootdown_us, 0.99));
    std::printf("shootdown_us_max=%.2f\n", percentile(shootdown_us, 1.0));
    return 0;
}
