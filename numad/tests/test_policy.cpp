// Disco's policy (numad/policy.hpp) on synthetic counter streams: each test builds the batches
// a monitor would send and plays the monitor's side (a migrated page changes home, a replicated
// page becomes "replicated", a write collapses it) between intervals.
#include <algorithm>
#include <catch2/catch.hpp>
#include <map>

#include "numad/policy.hpp"

using namespace disco::numad;

namespace {

HotPage page(std::string vm, std::uint64_t gpa, unsigned home, std::vector<std::uint32_t> counts, bool written = false,
             PageState state = PageState::private_page) {
    HotPage p;
    p.vm = std::move(vm);
    p.gpa = gpa;
    p.home = home;
    p.counts = std::move(counts);
    p.written = written;
    p.state = state;
    for (auto c : p.counts) p.total += c;
    return p;
}

HotPageBatch batch(std::vector<HotPage> pages, unsigned nodes = 2) {
    HotPageBatch b;
    b.nodes = nodes;
    b.pages = std::move(pages);
    return b;
}

Decision only(const std::vector<Decision>& ds) {
    REQUIRE(ds.size() == 1);
    return ds[0];
}

std::size_t count_action(const std::vector<Decision>& ds, Action a) {
    return std::count_if(ds.begin(), ds.end(), [&](const Decision& d) { return d.action == a; });
}

/// Decides and reports every move as done, as the monitor would.
std::vector<Decision> decide_and_apply(Policy& policy, const HotPageBatch& b, std::uint64_t interval) {
    auto ds = policy.decide(b, interval);
    for (const auto& d : ds) policy.record_outcome(d, true);
    return ds;
}

}  // namespace

TEST_CASE("a hot page used mostly by one remote node migrates there", "[numad][policy]") {
    Policy policy({});
    const auto& d = only(policy.decide(batch({page("web", 0x4000, 0, {10, 300})}), 1));
    CHECK(d.action == Action::migrate);
    CHECK(d.reason == Reason::dominant_remote);
    CHECK(d.from == 0);
    CHECK(d.to == 1);
    CHECK(d.total == 310);
    CHECK(d.vm == "web");
    CHECK(d.gpa == 0x4000);
    CHECK(reason_text(d) == "node 1 made 97% of 310 accesses");
}

TEST_CASE("a hot page already on its dominant node is left", "[numad][policy]") {
    Policy policy({});
    const auto& d = only(policy.decide(batch({page("web", 0x4000, 1, {10, 300})}), 1));
    CHECK(d.action == Action::leave);
    CHECK(d.reason == Reason::dominant_home);
}

TEST_CASE("a written page used by one node still migrates", "[numad][policy]") {
    Policy policy({});
    CHECK(only(policy.decide(batch({page("web", 0x4000, 0, {0, 0, 500}, true)}, 3), 1)).to == 2);
}

TEST_CASE("a hot read-shared page is replicated", "[numad][policy]") {
    Policy policy({});
    const auto& d = only(policy.decide(batch({page("web", 0x8000, 0, {100, 120, 90, 0}, false)}, 4), 1));
    CHECK(d.action == Action::replicate);
    CHECK(d.reason == Reason::read_shared);
}

TEST_CASE("a hot write-shared page is left where it is", "[numad][policy]") {
    Policy policy({});
    const auto& d = only(policy.decide(batch({page("web", 0x8000, 0, {100, 120}, true)}), 1));
    CHECK(d.action == Action::leave);
    CHECK(d.reason == Reason::write_shared);
}

TEST_CASE("no dominant node and a single sharer: left", "[numad][policy]") {
    PolicyParams p;
    p.sharing_threshold = 100;
    Policy policy(p);
    // 60% on node 1: not dominant (0.8); node 0 has 80 < 100, so only one sharer.
    const auto& d = only(policy.decide(batch({page("web", 0x8000, 0, {80, 120})}), 1));
    CHECK(d.action == Action::leave);
    CHECK(d.reason == Reason::no_pattern);
}

TEST_CASE("pages below the hot threshold are left, at the threshold they move", "[numad][policy]") {
    PolicyParams p;
    p.hot_threshold = 200;
    Policy policy(p);
    auto ds = policy.decide(batch({page("a", 0x1000, 0, {0, 199}), page("a", 0x2000, 0, {0, 200})}), 1);
    REQUIRE(ds.size() == 2);
    CHECK(ds[0].gpa == 0x2000);  // hottest first
    CHECK(ds[0].action == Action::migrate);
    CHECK(ds[1].gpa == 0x1000);
    CHECK(ds[1].action == Action::leave);
    CHECK(ds[1].reason == Reason::cold);
}

TEST_CASE("COW-shared, replicated and moving pages are never moved", "[numad][policy]") {
    Policy policy({});
    for (PageState s : {PageState::shared, PageState::replicated, PageState::moving}) {
        const auto& d = only(policy.decide(batch({page("a", 0x1000, 0, {0, 900}, false, s)}), 1));
        CHECK(d.action == Action::leave);
        CHECK(d.reason == Reason::not_private);
        const auto& r = only(policy.decide(batch({page("a", 0x1000, 0, {400, 400}, false, s)}), 2));
        CHECK(r.action == Action::leave);
    }
}

TEST_CASE("the move budget goes to the hottest pages, exactly budget moves", "[numad][policy]") {
    PolicyParams p;
    p.moves_per_interval = 5;
    Policy policy(p);
    std::vector<HotPage> pages;
    // Twelve hot pages, sent coldest first, half migrations and half replications.
    for (std::uint32_t i = 0; i < 12; ++i) {
        const std::uint32_t heat = 200 + 10 * i;
        pages.push_back(i % 2 ? page("a", 0x1000 * i, 0, {0, heat}) : page("a", 0x1000 * i, 0, {heat / 2, heat / 2}));
    }
    const auto ds = policy.decide(batch(pages), 1);
    REQUIRE(ds.size() == 12);
    CHECK(count_action(ds, Action::migrate) + count_action(ds, Action::replicate) == 5);
    for (std::size_t i = 0; i < ds.size(); ++i) {
        if (i > 0) CHECK(ds[i - 1].total >= ds[i].total);
        if (i < 5) {
            CHECK((ds[i].action == Action::migrate || ds[i].action == Action::replicate));
        } else {
            CHECK(ds[i].action == Action::leave);
            CHECK(ds[i].reason == Reason::over_budget);
        }
    }
    // The budget is per interval: the next interval moves again.
    CHECK(count_action(policy.decide(batch(pages), 2), Action::migrate) > 0);
}

TEST_CASE("a page that bounces between two nodes is frozen, and melts later", "[numad][policy]") {
    PolicyParams p;
    p.bounce_limit = 2;
    p.freeze_intervals = 10;
    Policy policy(p);
    unsigned home = 0;
    std::vector<Action> seen;
    std::uint64_t interval = 0;
    // The accessing node alternates each interval: 0->1, 1->0 (bounce 1), then 0->1 would be
    // bounce 2: frozen instead.
    for (; interval < 3; ++interval) {
        const unsigned hot_node = interval % 2 == 0 ? 1 : 0;
        std::vector<std::uint32_t> counts(2, 0);
        counts[hot_node] = 500;
        const auto& d = only(decide_and_apply(policy, batch({page("a", 0x1000, home, counts)}), interval + 1));
        seen.push_back(d.action);
        if (d.action == Action::migrate) home = d.to;
        if (d.action == Action::freeze) {
            CHECK(d.reason == Reason::bounced);
            CHECK(d.frozen_until == interval + 1 + 10);
        }
    }
    CHECK(seen == std::vector<Action>{Action::migrate, Action::migrate, Action::freeze});
    CHECK(policy.frozen_pages() == 1);
    CHECK(policy.frozen_pages("a") == 1);
    CHECK(policy.frozen_pages("b") == 0);
    // Frozen: left, whatever the counters say.
    const auto& d = only(policy.decide(batch({page("a", 0x1000, home, {0, 900})}), 5));
    CHECK(d.action == Action::leave);
    CHECK(d.reason == Reason::frozen);
    CHECK(home == 0);
    // Melted at interval 13: it may move again.
    CHECK(only(policy.decide(batch({page("a", 0x1000, home, {0, 900})}), 13)).action == Action::migrate);
    CHECK(policy.frozen_pages() == 0);
}

TEST_CASE("a page replicated, collapsed by a write, and replicated again is frozen for good", "[numad][policy]") {
    PolicyParams p;
    p.bounce_limit = 1;
    p.freeze_intervals = 0;
    Policy policy(p);
    const auto read_shared = [](PageState s) { return batch({page("a", 0x1000, 0, {300, 300}, false, s)}); };
    CHECK(only(decide_and_apply(policy, read_shared(PageState::private_page), 1)).action == Action::replicate);
    CHECK(only(decide_and_apply(policy, read_shared(PageState::replicated), 2)).action == Action::leave);
    // A write collapsed the replicas; the monitor reports it private again.
    const auto& d = only(decide_and_apply(policy, read_shared(PageState::private_page), 3));
    CHECK(d.action == Action::freeze);
    CHECK(d.reason == Reason::bounced);
    CHECK(d.frozen_until == 0);
    CHECK(reason_text(only(policy.decide(read_shared(PageState::private_page), 100000))) == "frozen for good");
}

TEST_CASE("moves per page are capped", "[numad][policy]") {
    PolicyParams p;
    p.max_moves_per_page = 2;
    p.bounce_limit = 100;  // only the cap stops it
    Policy policy(p);
    unsigned home = 0;
    std::vector<Action> seen;
    for (std::uint64_t i = 1; i <= 4; ++i) {
        std::vector<std::uint32_t> counts(3, 0);
        counts[(home + 1) % 3] = 400;  // always the next node: no bounce, just moves
        const auto& d = only(decide_and_apply(policy, batch({page("a", 0x1000, home, counts)}, 3), i));
        seen.push_back(d.action);
        if (d.action == Action::migrate) home = d.to;
        if (d.action == Action::freeze) CHECK(d.reason == Reason::move_cap);
    }
    CHECK(seen == std::vector<Action>{Action::migrate, Action::migrate, Action::freeze, Action::leave});
}

TEST_CASE("a move the monitor refused does not count against the page", "[numad][policy]") {
    PolicyParams p;
    p.max_moves_per_page = 1;
    Policy policy(p);
    const auto b = batch({page("a", 0x1000, 0, {0, 400})});
    for (std::uint64_t i = 1; i <= 3; ++i) {
        const auto ds = policy.decide(b, i);
        CHECK(only(ds).action == Action::migrate);
        policy.record_outcome(ds[0], false);
    }
}

TEST_CASE("the same page in two VMs has two histories", "[numad][policy]") {
    PolicyParams p;
    p.max_moves_per_page = 1;
    Policy policy(p);
    decide_and_apply(policy, batch({page("a", 0x1000, 0, {0, 400})}), 1);
    const auto ds = policy.decide(batch({page("a", 0x1000, 1, {400, 0}), page("b", 0x1000, 1, {400, 0})}), 2);
    REQUIRE(ds.size() == 2);
    CHECK(ds[0].vm == "a");
    CHECK(ds[0].action == Action::freeze);
    CHECK(ds[1].vm == "b");
    CHECK(ds[1].action == Action::migrate);
}

TEST_CASE("policy parameters are checked", "[numad][policy]") {
    CHECK(validate(PolicyParams{}).empty());
    PolicyParams p;
    p.dominant_share = 0.5;
    CHECK_FALSE(validate(p).empty());
    p = {};
    p.hot_threshold = 0;
    CHECK_FALSE(validate(p).empty());
    p = {};
    p.max_moves_per_page = 0;
    CHECK_FALSE(validate(p).empty());
}
