// Machine memory (vmm/mem/machine_memory.hpp): frame pools per node, zeroing,
// fallback, runs, views of the memory file, reference counts, the reverse map,
// topology, and a concurrent stress.
#include <fcntl.h>
#include <fmt/format.h>
#include <numa.h>
#include <numaif.h>
#include <sys/mman.h>
#include <sys/stat.h>
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

/// Host memory backing a file: what tmpfs has allocated for it.
u64 file_bytes(int fd) {
    struct stat st {};
    REQUIRE(fstat(fd, &st) == 0);
    return u64(st.st_blocks) * 512;
}

/// A view as the monitor will make one: a reserved range whose pages are
/// MAP_FIXED shared mappings of frames of the machine memory file.
class View {
public:
    explicit View(usize pages) : pages_(pages) {
        void* p = mmap(nullptr, pages * kPageSize, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        REQUIRE(p != MAP_FAILED);
        base_ = static_cast<u8*>(p);
    }
    View(const View&) = delete;
    View& operator=(const View&) = delete;
    ~View() { munmap(base_, pages_ * kPageSize); }

    /// Shows frames first .. first + count - 1 at pages page .. page + count - 1.
    void map(usize page, const MachineMemory& m, MachineFrame first, usize count = 1) {
        REQUIRE(page + count <= pages_);
        void* p = mmap(base_ + page * kPageSize, count * kPageSize, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
                       m.fd(), static_cast<off_t>(m.file_offset(first)));
        REQUIRE(p == base_ + page * kPageSize);
    }
    u8* page(usize i) const { return base_ + i * kPageSize; }

private:
    usize pages_;
    u8* base_ = nullptr;
};

/// Frames [first, first + count) all hold one reference and read zero.
void check_fresh_run(const MachineMemory& m, MachineFrame first, u32 count) {
    for (u32 i = 0; i < count; ++i) {
        const MachineFrame f(first.index + i);
        INFO("frame " << f.index);
        CHECK(m.ref_count(f) == 1);
        CHECK(reads_zero(m, f));
    }
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

TEST_CASE("views of the machine memory file show the frames' bytes both ways", "[machine-memory]") {
    auto m = simulated(2, 8);
    auto f = m->allocate(0);
    auto g = m->allocate(1);
    REQUIRE(f);
    REQUIRE(g);
    CHECK(m->file_offset(*g) == u64(g->index) * kPageSize);
    CHECK(m->host(*g) - m->host(MachineFrame(0)) == static_cast<std::ptrdiff_t>(m->file_offset(*g)));
    View view(2);
    view.map(0, *m, *f);
    view.map(1, *m, *g);
    std::memcpy(m->host(*f) + 100, "through host", 12);
    CHECK(std::memcmp(view.page(0) + 100, "through host", 12) == 0);
    std::memcpy(view.page(1) + kPageSize - 9, "via view", 8);
    CHECK(std::memcmp(m->host(*g) + kPageSize - 9, "via view", 8) == 0);
    CHECK(reads_zero(*m, *f) == false);
    CHECK(m->host(*f)[0] == 0);  // the neighbouring view page did not leak into f

    // Migration: copy the frame, then move the view page onto the copy. The view
    // address stays; what it reads and where its writes go switch to the new frame.
    auto copy = m->allocate(1);
    REQUIRE(copy);
    std::memcpy(m->host(*copy), m->host(*f), kPageSize);
    m->host(*f)[0] = 0x11;  // a write to the old frame after the copy...
    view.map(0, *m, *copy);
    CHECK(view.page(0)[0] == 0);  // ...is not seen through the moved view page
    CHECK(std::memcmp(view.page(0) + 100, "through host", 12) == 0);
    view.page(0)[1] = 0x22;
    CHECK(m->host(*copy)[1] == 0x22);
    CHECK(m->host(*f)[1] == 0);

    // The file: close-on-exec, a fixed size, named for /proc/PID/maps.
    CHECK((fcntl(m->fd(), F_GETFD) & FD_CLOEXEC) != 0);
    CHECK(ftruncate(m->fd(), 0) != 0);
    CHECK(ftruncate(m->fd(), 1ll << 40) != 0);
    char link[256] = {};
    REQUIRE(readlink(fmt::format("/proc/self/fd/{}", m->fd()).c_str(), link, sizeof link - 1) > 0);
    CHECK_THAT(std::string(link), Catch::StartsWith("/memfd:disco-machine-memory"));
}

TEST_CASE("a run is consecutive zeroed frames on the node asked for", "[machine-memory]") {
    auto m = simulated(2, 16);
    REQUIRE(m->allocate(1));  // a single frame first: the run starts after it
    auto run = m->allocate_run(1, 5, Placement::Bind);
    REQUIRE(run);
    CHECK(m->node_of(*run) == 1);
    CHECK(m->node_of(MachineFrame(run->index + 4)) == 1);
    CHECK(run->index == 17);
    check_fresh_run(*m, *run, 5);
    CHECK(m->node_stats(1).frames_in_use == 6);
    CHECK(m->node_stats(1).frames_free == 10);
    CHECK(m->node_stats(0).frames_in_use == 0);
    // One view mapping shows the whole run, in order.
    for (u32 i = 0; i < 5; ++i) m->host(MachineFrame(run->index + i))[7] = u8(i + 1);
    View view(5);
    view.map(0, *m, *run, 5);
    for (u32 i = 0; i < 5; ++i) CHECK(view.page(i)[7] == i + 1);
    // Single frames do not come out of the run.
    std::set<u32> taken;
    while (auto f = m->allocate(1, Placement::Bind)) taken.insert(f->index);
    CHECK(taken.size() == 10);
    for (u32 i = 0; i < 5; ++i) CHECK_FALSE(taken.contains(run->index + i));
}

TEST_CASE("a run falls back to the nearest node, or fails like allocate", "[machine-memory]") {
    auto m = simulated(3, 8);
    CHECK(m->allocate_run(3, 1).error().kind == Kind::InvalidNode);
    CHECK(m->allocate_run(0, 0).error().kind == Kind::InvalidRunLength);
    CHECK(m->allocate_run(0, 9).error().kind == Kind::InvalidRunLength);  // longer than a node
    auto whole = m->allocate_run(2, 8, Placement::Bind);
    REQUIRE(whole);
    CHECK(whole->index == 16);
    check_fresh_run(*m, *whole, 8);

    // Node 0 has 5 free frames but no run of 4 in them: frames 0..7 with 2 and 5 in use.
    auto head = m->allocate_run(0, 8);
    REQUIRE(head);
    for (u32 i : {0u, 1u, 3u, 4u, 6u, 7u}) REQUIRE(m->release(MachineFrame(i)) == 0u);
    auto held = m->allocate_run(0, 2);  // 0..1 are a run of two: taken and counted
    REQUIRE(held);
    CHECK(held->index == 0);
    REQUIRE(m->release(MachineFrame(0)));
    REQUIRE(m->release(MachineFrame(1)));
    CHECK(m->node_stats(0).frames_free == 6);
    auto refused = m->allocate_run(0, 3, Placement::Bind);
    REQUIRE_FALSE(refused);
    CHECK(refused.error().kind == Kind::NodeExhausted);
    CHECK_THAT(refused.error().message, Catch::Contains("3 consecutive"));
    CHECK(m->node_stats(0).fallback_allocations == 0);

    auto moved = m->allocate_run(0, 3);  // Preferred: node 1, the nearest with a run
    REQUIRE(moved);
    CHECK(m->node_of(*moved) == 1);
    check_fresh_run(*m, *moved, 3);
    CHECK(m->node_stats(0).fallback_allocations == 1);
    CHECK(m->node_stats(1).foreign_allocations == 1);

    REQUIRE(m->allocate_run(1, 5, Placement::Bind));  // node 1 full, node 2 full, node 0 fragmented
    auto none = m->allocate_run(1, 3);
    REQUIRE_FALSE(none);
    CHECK(none.error().kind == Kind::Exhausted);
    CHECK_THAT(none.error().message, Catch::Contains("exhausted"));
    CHECK(m->allocate_run(1, 2));  // 0..1 on node 0 still are a run of two
}

TEST_CASE("frames of a run are released one by one and reused, as singles and as runs", "[machine-memory]") {
    auto m = simulated(1, 16);
    auto run = m->allocate_run(0, 8);
    REQUIRE(run);
    CHECK(run->index == 0);
    for (u32 i = 0; i < 8; ++i) std::memset(m->host(MachineFrame(i)), 0xC0 + i, kPageSize);
    REQUIRE(m->add_ref(MachineFrame(3)));  // shared: survives the release below
    for (u32 i = 0; i < 8; ++i) CHECK(m->release(MachineFrame(i)) == (i == 3 ? 1u : 0u));
    CHECK(m->ref_count(MachineFrame(3)) == 1);
    CHECK(m->host(MachineFrame(3))[0] == 0xC3);
    CHECK(m->node_stats(0).frames_free == 15);

    // A single allocation takes the most recently freed frame, zeroed.
    auto single = m->allocate(0);
    REQUIRE(single);
    CHECK(single->index == 7);
    CHECK(reads_zero(*m, *single));

    // 0..2 and 4..6 freed, 3 and 7 held: the fresh frames serve a run first.
    auto fresh = m->allocate_run(0, 6);
    REQUIRE(fresh);
    CHECK(fresh->index == 8);
    // 8 frames free (0..2, 4..6, 14..15) but no 4 of them consecutive.
    CHECK(m->node_stats(0).frames_free == 8);
    CHECK(m->allocate_run(0, 4, Placement::Bind).error().kind == Kind::NodeExhausted);
    REQUIRE(m->release(*single));
    // With 7 free again, 4..7 are a run of used frames: zeroed and handed out.
    auto recycled = m->allocate_run(0, 4, Placement::Bind);
    REQUIRE(recycled);
    CHECK(recycled->index == 4);
    check_fresh_run(*m, *recycled, 4);

    // A free tail below the watermark (4..13) joins the fresh frames above it (14..15).
    for (u32 i = 4; i < 14; ++i) {
        std::memset(m->host(MachineFrame(i)), 0xEE, kPageSize);
        REQUIRE(m->release(MachineFrame(i)) == 0u);
    }
    auto straddle = m->allocate_run(0, 12, Placement::Bind);
    REQUIRE(straddle);
    CHECK(straddle->index == 4);
    check_fresh_run(*m, *straddle, 12);
    CHECK(m->node_stats(0).frames_free == 3);  // 0..2
    for (u32 i = 0; i < 3; ++i) REQUIRE(m->allocate(0, Placement::Bind));
    CHECK(m->allocate(0, Placement::Bind).error().kind == Kind::NodeExhausted);
    for (u32 i = 0; i < 16; ++i) REQUIRE(m->release(MachineFrame(i)) == 0u);
    CHECK(m->node_stats(0).frames_free == 16);
    auto all = m->allocate_run(0, 16, Placement::Bind);
    REQUIRE(all);
    check_fresh_run(*m, *all, 16);
}

TEST_CASE("a 256 MiB run commits host memory only for the pages touched", "[machine-memory]") {
    constexpr u32 kFrames = 65536;
    auto m = simulated(1, kFrames);
    const u64 before = resident_bytes();
    auto run = m->allocate_run(0, kFrames);
    REQUIRE(run);
    View ram(kFrames);
    ram.map(0, *m, *run, kFrames);  // one mapping for the VM's whole RAM
    for (u32 i = 0; i < kFrames; i += 4096) ram.page(i)[i % kPageSize] = 1;
    const u64 grown = resident_bytes() - std::min(before, resident_bytes());
    INFO("resident set grew by " << (grown >> 10) << " KiB; the file holds " << (file_bytes(m->fd()) >> 10) << " KiB");
    CHECK(file_bytes(m->fd()) == 16 * kPageSize);
    CHECK(grown < (32ull << 20));  // 16 pages, 256 KiB of reference counts, page tables (TSan: its shadow)

    // Frames released one by one (after migrations, say) and the run taken
    // again from the recycled frames: the used ones are returned to the host.
    for (u32 i = 0; i < kFrames; ++i) REQUIRE(m->release(MachineFrame(run->index + i)) == 0u);
    CHECK(file_bytes(m->fd()) == 16 * kPageSize);  // a release alone frees nothing
    auto again = m->allocate_run(0, kFrames, Placement::Bind);
    REQUIRE(again);
    CHECK(*again == *run);
    CHECK(file_bytes(m->fd()) == 0);
    for (u32 i = 0; i < kFrames; i += 4096) CHECK(ram.page(i)[i % kPageSize] == 0);
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

    // A shared mapping of the machine memory file: the binding belongs to the
    // file range, so another mapping of it (a view) faults in under it too.
    auto file = MemoryFile::create("disco-test", 1 << 20);
    REQUIRE(file);
    auto main = HostMapping::map_shared(file->fd(), file->size());
    REQUIRE(main);
    REQUIRE(main->bind_to_node(0, 64 << 10, node));
    void* v = mmap(nullptr, 64 << 10, PROT_READ | PROT_WRITE, MAP_SHARED, file->fd(), 0);
    REQUIRE(v != MAP_FAILED);
    auto* view = static_cast<u8*>(v);
    view[kPageSize] = 1;
    mode = -1;
    REQUIRE(get_mempolicy(&mode, mask, 16 * 64, view + kPageSize, MPOL_F_ADDR) == 0);
    CHECK(mode == MPOL_BIND);
    REQUIRE(get_mempolicy(&page_node, nullptr, 0, view + kPageSize, MPOL_F_NODE | MPOL_F_ADDR) == 0);
    CHECK(page_node == node);
    CHECK(main->data()[kPageSize] == 1);
    munmap(v, 64 << 10);
}

TEST_CASE("the memory file is sparse and gives memory back when a hole is punched", "[machine-memory]") {
    auto file = MemoryFile::create("disco-test", 1 << 30);
    REQUIRE(file);
    CHECK(file->size() == 1u << 30);
    CHECK(file_bytes(file->fd()) == 0);
    auto map = HostMapping::map_shared(file->fd(), file->size());
    REQUIRE(map);
    std::memset(map->data() + (512 << 20), 0x77, 3 * kPageSize);
    CHECK(file_bytes(file->fd()) == 3 * kPageSize);
    REQUIRE(file->punch_hole((512 << 20) + kPageSize, kPageSize));
    CHECK(file_bytes(file->fd()) == 2 * kPageSize);
    CHECK(map->data()[(512 << 20) + kPageSize] == 0);
    CHECK(map->data()[(512 << 20) + 2 * kPageSize] == 0x77);
    CHECK(file->punch_hole(100, kPageSize).error().kind == Kind::InvalidConfig);
    CHECK(file->punch_hole(0, (1 << 30) + kPageSize).error().kind == Kind::InvalidConfig);
    CHECK(MemoryFile::create("disco-test", 0).error().kind == Kind::InvalidConfig);
    CHECK(MemoryFile::create("disco-test", 100).error().kind == Kind::InvalidConfig);
}

namespace {
struct StressSettings {
    unsigned threads;
    usize hold_limit;     // frames each thread holds at most
    unsigned run_one_in;  // one allocation in this many is a run of 2 to kMaxRun frames
    std::chrono::milliseconds duration;
    usize exchange_limit = SIZE_MAX;  // frames passed between threads at most (each keeps one alive)
    static constexpr u32 kMaxRun = 5;
};

struct StressCounts {
    u64 problems, allocations, runs, exhausted;
};

/// Threads allocate frames and runs, tag them, share them, check them and
/// release them frame by frame; every inconsistency seen counts as a problem.
/// Afterwards every frame of `m` must be free again.
StressCounts stress(MachineMemory& mm, const StressSettings& settings) {
    MachineMemory* m = &mm;
    const unsigned kThreads = settings.threads;
    const usize kHoldLimit = settings.hold_limit;
    constexpr u32 kMaxRun = StressSettings::kMaxRun;
    struct Held {
        MachineFrame frame;
        FrameUser user;
        bool own;  // allocated by this thread: it wrote the tag
    };
    std::mutex exchange_lock;
    std::deque<MachineFrame> exchange;  // each entry carries one reference
    std::atomic<u64> problems{0}, allocations{0}, runs{0}, exhausted{0};
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
            if (op < 45 && held.size() + kMaxRun <= kHoldLimit) {
                const auto placement = rng() % 4 ? Placement::Preferred : Placement::Bind;
                const NodeId node = static_cast<NodeId>(rng() % 2);
                const u32 run = rng() % settings.run_one_in ? 1 : 2 + static_cast<u32>(rng() % (kMaxRun - 1));
                auto f = run == 1 ? m->allocate(node, placement) : m->allocate_run(node, run, placement);
                if (!f) {
                    if (f.error().kind != Kind::Exhausted && f.error().kind != Kind::NodeExhausted) ++problems;
                    ++exhausted;
                    continue;
                }
                ++allocations;
                if (run > 1) ++runs;
                if (m->node_of(*f) != m->node_of(MachineFrame(f->index + run - 1))) ++problems;
                for (u32 i = 0; i < run; ++i) {  // each frame of a run is held and released on its own
                    const MachineFrame fi(f->index + i);
                    if (!reads_zero(*m, fi) || m->user_count(fi) != 0 || m->ref_count(fi) == 0) ++problems;
                    const u64 tag = u64(tid) << 32 | fi.index;
                    std::memcpy(m->host(fi), &tag, sizeof tag);
                    m->host(fi)[kPageSize - 1] = 0xEE;  // dirty the whole page span for the zeroing check
                    const FrameUser u{tid, next_page++};
                    if (!m->add_user(fi, u)) ++problems;
                    held.push_back({fi, u, true});
                }
            } else if (op < 55 && !held.empty()) {
                const MachineFrame f = held[rng() % held.size()].frame;
                std::lock_guard g(exchange_lock);
                if (exchange.size() >= settings.exchange_limit) continue;
                if (!m->add_ref(f)) ++problems;
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
    std::this_thread::sleep_for(settings.duration);
    stop = true;
    for (auto& t : threads) t.join();
    for (MachineFrame f : exchange)
        if (!m->release(f)) ++problems;

    for (u32 i = 0; i < m->frame_count(); ++i) {
        CHECK(m->ref_count(MachineFrame(i)) == 0);
        CHECK(m->user_count(MachineFrame(i)) == 0);
    }
    for (NodeId n = 0; n < m->node_count(); ++n) {
        CHECK(m->node_stats(n).frames_in_use == 0);
        CHECK(m->node_stats(n).frames_free == m->frames_per_node());
    }
    return {problems, allocations, runs, exhausted};
}
}  // namespace

TEST_CASE("concurrent allocation, sharing and release leave every pool empty", "[machine-memory]") {
    // 4 x 48 frames held > 2 x 64 in the pools: they run dry and fall back.
    auto m = simulated(2, 64);
    const auto c = stress(*m, {.threads = 4, .hold_limit = 48, .run_one_in = 8, .duration = std::chrono::seconds(1)});
    INFO(c.allocations << " allocations (" << c.runs << " runs), " << c.exhausted << " refused");
    CHECK(c.problems == 0);
    CHECK(c.allocations > 1000);
    CHECK(c.runs > 0);
    CHECK(c.exhausted > 0);
    CHECK(m->totals().fallback_allocations > 0);
}

TEST_CASE("concurrent runs and single frames never share a frame", "[machine-memory]") {
    // 3 x 36 frames held + 8 passed on < 2 x 64: no shortage of frames, only of
    // consecutive ones, so most runs succeed and races between run scans,
    // single allocations and releases are frequent.
    auto m = simulated(2, 64);
    const auto c = stress(*m, {.threads = 3,
                               .hold_limit = 36,
                               .run_one_in = 2,
                               .duration = std::chrono::milliseconds(500),
                               .exchange_limit = 8});
    INFO(c.allocations << " allocations (" << c.runs << " runs), " << c.exhausted << " refused");
    CHECK(c.problems == 0);
    CHECK(c.runs > 100);
}

TEST_CASE("a host address resolves to its frame, node and users; others do not", "[machine-memory][resolve]") {
    auto m = simulated(2, 8);
    auto f = m->allocate(1, Placement::Bind);
    REQUIRE(f);
    REQUIRE(m->add_user(*f, {.vm = 3, .gppage = 0x42}));
    const auto at = [](const u8* p) { return static_cast<u64>(reinterpret_cast<uintptr_t>(p)); };
    auto owner = m->resolve_host_address(at(m->host(*f)) + 0x123);  // any byte of the frame
    REQUIRE(owner);
    CHECK(owner->frame == *f);
    CHECK(owner->node == 1);
    CHECK(owner->users == std::vector<FrameUser>{{.vm = 3, .gppage = 0x42}});

    // A shared frame lists each of its users.
    REQUIRE(m->add_user(*f, {.vm = 5, .gppage = 0x7}));
    owner = m->resolve_host_address(at(m->host(*f)) + kPageSize - 1);
    REQUIRE(owner);
    auto users = owner->users;
    std::sort(users.begin(), users.end());
    CHECK(users == std::vector<FrameUser>{{.vm = 3, .gppage = 0x42}, {.vm = 5, .gppage = 0x7}});

    // Node 0's first frame; then addresses outside every pool.
    owner = m->resolve_host_address(at(m->host(MachineFrame(0))));
    REQUIRE(owner);
    CHECK(owner->node == 0);
    CHECK(owner->users.empty());  // free: no users
    const u8* end = m->host(MachineFrame(m->frame_count() - 1)) + kPageSize;
    CHECK_FALSE(m->resolve_host_address(at(end)));
    CHECK_FALSE(m->resolve_host_address(at(m->host(MachineFrame(0))) - 1));
    CHECK_FALSE(m->resolve_host_address(0));
    CHECK_FALSE(m->resolve_host_address(~0ull));
    int on_stack = 0;
    CHECK_FALSE(m->resolve_host_address(at(reinterpret_cast<const u8*>(&on_stack))));
}
