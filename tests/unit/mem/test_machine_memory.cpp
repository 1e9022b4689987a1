// Machine memory (vmm/mem/machine_memory.hpp): frame pools per node, zeroing,
// fallback, reference counts, the reverse map, topology, and a concurrent stress.
#include <numa.h>
#include <numaif.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <fstream>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "vmm/mem/machine_memory.hpp"

using namespace disco;
using Kind = MemoryError::Kind;

namespace {
std::unique_ptr<MachineMemory> make(MachineMemoryConfig config) {
    auto m = MachineMemory::create(config);
    if (!m) FAIL(m.error().message);
    return std::move(*m);
}

std::unique_ptr<MachineMemory> simulated(unsigned nodes, u32 frames_per_node) {
    return make({.bytes_per_node = u64(frames_per_node) * kPageSize, .numa_sim = nodes});
}

bool reads_zero(const MachineMemory& m, MachineFrame f) {
    const u8* p = m.host(f);
    return std::all_of(p, p + kPageSize, [](u8 b) { return b == 0; });
}

u64 resident_bytes() {
    std::ifstream statm("/proc/self/statm");
    u64 size = 0, resident = 0;
    statm >> size >> resident;
    return resident * static_cast<u64>(sysconf(_SC_PAGESIZE));
}
}  // namespace

TEST_CASE("frames round-trip through every node's pool", "[machine-memory]") {
    auto m = simulated(2, 4);
    for (NodeId n = 0; n < 2; ++n) {
        std::set<MachineFrame> got;
        for (int i = 0; i < 4; ++i) {
            auto f = m->allocate(n, Placement::Bind);
            REQUIRE(f);
            CHECK(m->node_of(*f) == n);
            CHECK(m->ref_count(*f) == 1);
            got.insert(*f);
        }
        CHECK(got.size() == 4);
        CHECK(m->node_stats(n).frames_in_use == 4);
        CHECK(m->node_stats(n).frames_free == 0);
        CHECK(m->allocate(n, Placement::Bind).error().kind == Kind::NodeExhausted);
        for (MachineFrame f : got) CHECK(m->release(f) == 0u);
        CHECK(m->node_stats(n).frames_free == 4);
        CHECK(m->node_stats(n).frames_in_use == 0);
        auto again = m->allocate(n, Placement::Bind);
        REQUIRE(again);
        CHECK(got.contains(*again));
        REQUIRE(m->release(*again));
    }
    const NodeStats t = m->totals();
    CHECK(t.frames_total == 8);
    CHECK(t.frames_free == 8);
    CHECK(t.fallback_allocations == 0);
}

TEST_CASE("an allocated frame reads zero, also when it is reused", "[machine-memory]") {
    auto m = simulated(1, 2);
    auto f = m->allocate(0);
    REQUIRE(f);
    CHECK(reads_zero(*m, *f));
    std::memset(m->host(*f), 0xAB, kPageSize);
    REQUIRE(m->release(*f));
    auto g = m->allocate(0);
    REQUIRE(g);
    CHECK(*g == *f);  // the freed frame is reused first, so zeroing really ran
    CHECK(reads_zero(*m, *g));
    // host() is base + index * 4 KiB: neighbouring frames are adjacent pages.
    auto h = m->allocate(0);
    REQUIRE(h);
    CHECK(m->host(*h) - m->host(*g) == static_cast<std::ptrdiff_t>((i64(h->index) - g->index) * kPageSize));
    CHECK(h->addr().value == u64(h->index) * kPageSize);
    CHECK(MachineFrame::containing(h->addr() + 0x123) == *h);
}

TEST_CASE("an exhausted preferred node falls back to another and counts it", "[machine-memory]") {
    auto m = simulated(3, 2);
    std::vector<MachineFrame> held;
    for (int i = 0; i < 2; ++i) held.push_back(*m->allocate(0));
    auto f = m->allocate(0);  // node 0 is empty; equal distances: nearest by number is node 1
    REQUIRE(f);
    CHECK(m->node_of(*f) == 1);
    CHECK(m->node_stats(0).fallback_allocations == 1);
    CHECK(m->node_stats(1).foreign_allocations == 1);
    CHECK(m->node_stats(1).fallback_allocations == 0);
    CHECK(m->node_stats(2).foreign_allocations == 0);
    CHECK(m->allocate(0, Placement::Bind).error().kind == Kind::NodeExhausted);
    CHECK(m->node_stats(0).fallback_allocations == 1);  // a Bind failure is no fallback
}

TEST_CASE("fallback goes to the nearest node first", "[machine-memory]") {
    auto m = make({.bytes_per_node = kPageSize, .numa_sim = 3, .sim_remote_distance = 30});
    CHECK(m->distance(0, 0) == 10);
    CHECK(m->distance(0, 2) == 30);
    REQUIRE(m->allocate(2));
    REQUIRE(m->allocate(2));  // node 2 empty: goes to node 0 (all equally far, lowest number)
    CHECK(m->node_stats(0).foreign_allocations == 1);
    CHECK(m->topology().fallback_order(1) == std::vector<NodeId>{0, 2});
}

TEST_CASE("allocation fails clearly when every node is exhausted", "[machine-memory]") {
    auto m = simulated(2, 3);
    std::vector<MachineFrame> held;
    for (int i = 0; i < 6; ++i) {
        auto f = m->allocate(1);
        REQUIRE(f);
        held.push_back(*f);
    }
    auto none = m->allocate(1);
    REQUIRE_FALSE(none);
    CHECK(none.error().kind == Kind::Exhausted);
    CHECK_THAT(none.error().message, Catch::Contains("exhausted"));
    CHECK(m->totals().frames_free == 0);
    REQUIRE(m->release(held.back()));
    CHECK(m->allocate(1));
}

TEST_CASE("bad nodes, frames and double releases are errors", "[machine-memory]") {
    auto m = simulated(2, 2);
    CHECK(m->allocate(2).error().kind == Kind::InvalidNode);
    const MachineFrame beyond(m->frame_count());
    CHECK_FALSE(m->contains(beyond));
    CHECK(m->add_ref(beyond).error().kind == Kind::InvalidFrame);
    CHECK(m->release(beyond).error().kind == Kind::InvalidFrame);
    CHECK(m->users(beyond).error().kind == Kind::InvalidFrame);
    CHECK(m->add_user(MachineFrame(), {1, 1}).error().kind == Kind::InvalidFrame);
    CHECK(m->ref_count(beyond) == 0);
    CHECK(m->release(MachineFrame(0)).error().kind == Kind::FrameNotAllocated);
    auto f = m->allocate(0);
    REQUIRE(f);
    REQUIRE(m->release(*f));
    CHECK(m->release(*f).error().kind == Kind::FrameNotAllocated);
    CHECK(m->totals().frames_free == 4);  // the double release did not free twice
}

TEST_CASE("reference counts keep a shared frame until the last release", "[machine-memory]") {
    auto m = simulated(1, 4);
    auto f = m->allocate(0);
    REQUIRE(f);
    REQUIRE(m->add_ref(*f));
    REQUIRE(m->add_ref(*f));
    CHECK(m->ref_count(*f) == 3);
    CHECK(m->release(*f) == 2u);
    CHECK(m->release(*f) == 1u);
    CHECK(m->node_stats(0).frames_in_use == 1);
    CHECK(m->release(*f) == 0u);
    CHECK(m->node_stats(0).frames_in_use == 0);
    CHECK(m->add_ref(*f).error().kind == Kind::FrameNotAllocated);
}

TEST_CASE("the reverse map holds one user inline and many in the side table", "[machine-memory]") {
    auto m = simulated(1, 4);
    auto f = m->allocate(0);
    REQUIRE(f);
    const FrameUser first{7, 0x12345};
    REQUIRE(m->add_user(*f, first));
    CHECK(*m->users(*f) == std::vector<FrameUser>{first});
    CHECK(m->add_user(*f, first).error().kind == Kind::DuplicateUser);
    CHECK(m->add_user(*f, {7, kMaxGuestPage + 1}).error().kind == Kind::InvalidUser);
    CHECK(m->add_user(*f, {7, kMaxGuestPage}));
    REQUIRE(m->remove_user(*f, {7, kMaxGuestPage}));

    std::set<FrameUser> expect{first};
    for (u32 vm = 0; vm < 8; ++vm) {
        for (u64 page = 0; page < 20; ++page) {
            const FrameUser u{vm, page * 3};
            REQUIRE(m->add_user(*f, u));
            expect.insert(u);
        }
    }
    CHECK(m->user_count(*f) == expect.size());
    auto all = *m->users(*f);
    CHECK(std::set<FrameUser>(all.begin(), all.end()) == expect);
    CHECK(m->add_user(*f, {3, 6}).error().kind == Kind::DuplicateUser);
    CHECK(m->remove_user(*f, {3, 7}).error().kind == Kind::UnknownUser);

    // Another frame's users stay apart, even in the same lock stripe.
    auto g = m->allocate(0);
    REQUIRE(g);
    REQUIRE(m->add_user(*g, {1, 1}));
    CHECK(m->user_count(*g) == 1);

    for (const FrameUser& u : expect)
        if (u != first) REQUIRE(m->remove_user(*f, u));
    CHECK(*m->users(*f) == std::vector<FrameUser>{first});  // back to the inline form
    CHECK(m->remove_user(*f, {7, 0x12346}).error().kind == Kind::UnknownUser);
    REQUIRE(m->remove_user(*f, first));
    CHECK(m->user_count(*f) == 0);
    CHECK(m->remove_user(*f, first).error().kind == Kind::UnknownUser);

    // The final release drops leftover users, so a reused frame starts with none.
    REQUIRE(m->add_user(*f, {1, 2}));
    REQUIRE(m->add_user(*f, {1, 3}));
    REQUIRE(m->release(*f));
    CHECK(m->add_user(*f, {1, 4}).error().kind == Kind::FrameNotAllocated);
    auto again = m->allocate(0);
    REQUIRE(again);
    CHECK(*again == *f);
    CHECK(m->user_count(*again) == 0);
    CHECK(m->users(*again)->empty());
}

TEST_CASE("simulated nodes split the capacity and node_of follows the split", "[machine-memory]") {
    auto m = make({.total_bytes = 16 * kPageSize + 123, .numa_sim = 3});
    REQUIRE(m->node_count() == 3);
    CHECK(m->frames_per_node() == 5);  // 16 frames do not split evenly: one is left out
    CHECK(m->frame_count() == 15);
    for (u32 i = 0; i < m->frame_count(); ++i) CHECK(m->node_of(MachineFrame(i)) == i / 5);
    for (NodeId n = 0; n < 3; ++n) {
        CHECK(m->node_stats(n).frames_total == 5);
        CHECK(m->node_info(n).simulated);
        CHECK(m->node_info(n).host_node == -1);
        CHECK_FALSE(m->node_info(n).cpus.empty());
        for (NodeId o = 0; o < 3; ++o) CHECK(m->distance(n, o) == (n == o ? 10u : 20u));
        for (int i = 0; i < 5; ++i) {
            auto f = m->allocate(n, Placement::Bind);
            REQUIRE(f);
            CHECK(f->index / 5 == n);
        }
    }
    CHECK_FALSE(m->topology().real());

    auto per_node = make({.bytes_per_node = 8 * kPageSize, .numa_sim = 4});
    CHECK(per_node->frame_count() == 32);
    CHECK(per_node->node_of(MachineFrame(31)) == 3);
}

TEST_CASE("impossible configurations are refused", "[machine-memory]") {
    auto kind = [](MachineMemoryConfig c) {
        auto m = MachineMemory::create(c);
        return m ? std::optional<Kind>() : std::optional<Kind>(m.error().kind);
    };
    CHECK(kind({.numa_sim = 2}) == Kind::InvalidConfig);
    CHECK(kind({.bytes_per_node = kPageSize, .total_bytes = kPageSize, .numa_sim = 1}) == Kind::InvalidConfig);
    CHECK(kind({.bytes_per_node = kPageSize - 1, .numa_sim = 1}) == Kind::InvalidConfig);
    CHECK(kind({.total_bytes = 3 * kPageSize, .numa_sim = 4}) == Kind::InvalidConfig);
    CHECK(kind({.bytes_per_node = kPageSize, .numa_sim = MachineMemory::kMaxNodes + 1}) == Kind::InvalidConfig);
    CHECK(kind({.bytes_per_node = kPageSize, .numa_sim = 2, .sim_remote_distance = 9}) == Kind::InvalidConfig);
    CHECK(kind({.bytes_per_node = 1ull << 44, .numa_sim = 1}) == Kind::InvalidConfig);  // 2^32 frames
}

TEST_CASE("a 16 GiB machine memory commits host memory only for frames in use", "[machine-memory]") {
    const u64 before = resident_bytes();
    auto m = make({.total_bytes = 16ull << 30, .numa_sim = 2});
    std::vector<MachineFrame> held;
    for (int i = 0; i < 64; ++i) {
        auto f = m->allocate(i % 2);
        REQUIRE(f);
        std::memset(m->host(*f), 0x5A, kPageSize);
        held.push_back(*f);
    }
    CHECK(m->frame_count() == (16ull << 30) / kPageSize);
    const u64 grown = resident_bytes() - std::min(before, resident_bytes());
    INFO("resident set grew by " << (grown >> 10) << " KiB");
    CHECK(grown < (32ull << 20));
}

TEST_CASE("real NUMA nodes come from libnuma (one node on this host)", "[machine-memory]") {
    auto m = make({.total_bytes = 64ull << 20});
    REQUIRE(m->node_count() >= 1);
    const NumaNode& n0 = m->node_info(0);
    CHECK_FALSE(n0.simulated);
    if (numa_available() < 0) {
        CHECK(m->node_count() == 1);
        CHECK(n0.host_node == -1);
        CHECK_FALSE(m->topology().real());
    } else {
        CHECK(m->topology().real());
        bitmask* mems = numa_get_mems_allowed();
        unsigned expect_nodes = 0;
        int first = -1;
        for (int n = 0; n <= numa_max_node(); ++n) {
            if (!numa_bitmask_isbitset(mems, n)) continue;
            if (first < 0) first = n;
            ++expect_nodes;
        }
        numa_bitmask_free(mems);
        CHECK(m->node_count() == expect_nodes);
        CHECK(n0.host_node == first);
        const int d = numa_distance(first, first);
        CHECK(m->distance(0, 0) == (d > 0 ? u32(d) : 10u));
        // The node's CPUs, as far as this process may use them.
        bitmask* cpus = numa_allocate_cpumask();
        REQUIRE(numa_node_to_cpus(first, cpus) == 0);
        const auto allowed = allowed_cpus();
        std::vector<unsigned> expect_cpus;
        for (unsigned c = 0; c < cpus->size; ++c)
            if (numa_bitmask_isbitset(cpus, c) && std::ranges::binary_search(allowed, c)) expect_cpus.push_back(c);
        numa_bitmask_free(cpus);
        CHECK(n0.cpus == expect_cpus);
        CHECK_FALSE(n0.cpus.empty());
    }
    CHECK(m->frames_per_node() == (64u << 20) / kPageSize / m->node_count());
    auto f = m->allocate(0);
    REQUIRE(f);
    CHECK(reads_zero(*m, *f));
    m->host(*f)[kPageSize - 1] = 1;
    CHECK(m->release(*f) == 0u);
}

TEST_CASE("host mappings bind their pages to a host node", "[machine-memory]") {
    auto map = HostMapping::reserve(1 << 20);
    REQUIRE(map);
    CHECK(map->size() == 1u << 20);
    CHECK(map->bind_to_node(4096, 1 << 20, 0).error().kind == Kind::InvalidConfig);  // beyond the end
    CHECK(map->bind_to_node(100, 4096, 0).error().kind == Kind::InvalidConfig);      // not page-aligned
    if (numa_available() < 0) {
        WARN("libnuma reports no NUMA support; mbind not exercised");
        return;
    }
    const int node = numa_node_of_cpu(allowed_cpus().front());
    auto bound = map->bind_to_node(0, 64 << 10, node);
    if (!bound && (errno == EPERM || errno == ENOSYS)) {
        WARN("mbind is not permitted here: " << bound.error().message);
        return;
    }
    REQUIRE(bound);
    map->data()[0] = 1;  // fault the page in under the policy
    int mode = -1;
    unsigned long mask[16] = {};
    REQUIRE(get_mempolicy(&mode, mask, 16 * 64, map->data(), MPOL_F_ADDR) == 0);
    CHECK(mode == MPOL_BIND);
    CHECK((mask[node / 64] >> (node % 64) & 1) == 1);
    int page_node = -1;
    REQUIRE(get_mempolicy(&page_node, nullptr, 0, map->data(), MPOL_F_NODE | MPOL_F_ADDR) == 0);
    CHECK(page_node == node);
}

TEST_CASE("concurrent allocation, sharing and release leave every pool empty", "[machine-memory]") {
    constexpr unsigned kThreads = 4;
    constexpr u32 kFramesPerNode = 64;
    constexpr usize kHoldLimit = 48;  // 4 x 48 > 2 x 64: pools run dry and fall back
    auto m = simulated(2, kFramesPerNode);

    struct Held {
        MachineFrame frame;
        FrameUser user;
        bool own;  // allocated by this thread: it wrote the tag
    };
    std::mutex exchange_lock;
    std::deque<MachineFrame> exchange;  // each entry carries one reference
    std::atomic<u64> problems{0}, allocations{0}, exhausted{0};
    std::atomic<bool> stop{false};

    auto worker = [&](unsigned tid) {
        std::mt19937_64 rng(0x5eed + tid);
        std::vector<Held> held;
        u64 next_page = 0;
        auto tag_of = [&](MachineFrame f) {
            u64 v;
            std::memcpy(&v, m->host(f), sizeof v);
            return v;
        };
        auto drop = [&](usize i) {
            const Held h = held[i];
            held[i] = held.back();
            held.pop_back();
            if (h.own && tag_of(h.frame) != (u64(tid) << 32 | h.frame.index)) ++problems;
            if (!m->remove_user(h.frame, h.user)) ++problems;
            if (!m->release(h.frame)) ++problems;
        };
        while (!stop.load(std::memory_order_relaxed)) {
            const unsigned op = rng() % 100;
            if (op < 45 && held.size() < kHoldLimit) {
                const auto placement = rng() % 4 ? Placement::Preferred : Placement::Bind;
                auto f = m->allocate(static_cast<NodeId>(rng() % 2), placement);
                if (!f) {
                    if (f.error().kind != Kind::Exhausted && f.error().kind != Kind::NodeExhausted) ++problems;
                    ++exhausted;
                    continue;
                }
                ++allocations;
                if (!reads_zero(*m, *f) || m->user_count(*f) != 0) ++problems;
                const u64 tag = u64(tid) << 32 | f->index;
                std::memcpy(m->host(*f), &tag, sizeof tag);
                m->host(*f)[kPageSize - 1] = 0xEE;  // dirty the whole page span for the zeroing check
                const FrameUser u{tid, next_page++};
                if (!m->add_user(*f, u)) ++problems;
                held.push_back({*f, u, true});
            } else if (op < 55 && !held.empty()) {
                const MachineFrame f = held[rng() % held.size()].frame;
                if (!m->add_ref(f)) ++problems;
                std::lock_guard g(exchange_lock);
                exchange.push_back(f);
            } else if (op < 65) {
                MachineFrame f;
                {
                    std::lock_guard g(exchange_lock);
                    if (exchange.empty()) continue;
                    f = exchange.front();
                    exchange.pop_front();
                }
                if (tag_of(f) >> 32 >= kThreads || (tag_of(f) & 0xFFFFFFFF) != f.index) ++problems;
                const FrameUser u{tid, next_page++};
                if (!m->add_user(f, u)) ++problems;
                held.push_back({f, u, false});
            } else if (op < 95 && !held.empty()) {
                drop(rng() % held.size());
            } else if (!held.empty()) {
                const Held& h = held[rng() % held.size()];
                auto users = m->users(h.frame);
                if (!users || std::find(users->begin(), users->end(), h.user) == users->end()) ++problems;
                if (m->ref_count(h.frame) == 0 || m->node_of(h.frame) >= m->node_count()) ++problems;
            }
        }
        while (!held.empty()) drop(held.size() - 1);
    };

    std::vector<std::thread> threads;
    for (unsigned t = 0; t < kThreads; ++t) threads.emplace_back(worker, t);
    std::this_thread::sleep_for(std::chrono::seconds(1));
    stop = true;
    for (auto& t : threads) t.join();
    for (MachineFrame f : exchange)
        if (!m->release(f)) ++problems;

    INFO(allocations.load() << " allocations, " << exhausted.load() << " refused");
    CHECK(problems == 0);
    CHECK(allocations > 1000);
    CHECK(exhausted > 0);
    CHECK(m->totals().fallback_allocations > 0);
    for (NodeId n = 0; n < m->node_count(); ++n) {
        CHECK(m->node_stats(n).frames_in_use == 0);
        CHECK(m->node_stats(n).frames_free == kFramesPerNode);
    }
    for (u32 i = 0; i < m->frame_count(); ++i) {
        CHECK(m->ref_count(MachineFrame(i)) == 0);
        CHECK(m->user_count(MachineFrame(i)) == 0);
    }
}
