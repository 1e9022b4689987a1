#include "numad/policy.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <numeric>
#include <tuple>

namespace disco::numad {

std::string validate(const PolicyParams& p) {
    if (p.hot_threshold < 1) return "--threshold must be at least 1";
    if (p.sharing_threshold < 1) return "--sharing-threshold must be at least 1";
    if (!(p.dominant_share > 0.5 && p.dominant_share <= 1.0))
        return fmt::format("--dominant-share must be in (0.5, 1], got {}", p.dominant_share);
    if (p.max_moves_per_page < 1) return "--moves-per-page must be at least 1";
    if (p.bounce_limit < 1) return "--bounce-limit must be at least 1";
    if (p.forget_after < 1) return "--forget-after must be at least 1";
    return {};
}

const char* action_name(Action a) {
    switch (a) {
        case Action::migrate:
            return "migrate";
        case Action::replicate:
            return "replicate";
        case Action::leave:
            return "leave";
        case Action::freeze:
            return "freeze";
    }
    return "?";
}

std::string reason_text(const Decision& d) {
    const unsigned pct = static_cast<unsigned>(d.dominant_share * 100.0 + 0.5);
    switch (d.reason) {
        case Reason::cold:
            return fmt::format("cold: {} accesses", d.total);
        case Reason::not_private:
            return "not a private page";
        case Reason::frozen:
            return d.frozen_until ? fmt::format("frozen until interval {}", d.frozen_until) : "frozen for good";
        case Reason::dominant_remote:
            return fmt::format("node {} made {}% of {} accesses", d.dominant_node, pct, d.total);
        case Reason::dominant_home:
            return fmt::format("home node {} made {}% of accesses", d.dominant_node, pct);
        case Reason::read_shared:
            return fmt::format("read-shared: no node above {}%", pct);
        case Reason::write_shared:
            return "write-shared";
        case Reason::no_pattern:
            return "no dominant node and too few sharers";
        case Reason::over_budget:
            return "move budget of the interval spent";
        case Reason::bounced:
            return "bounced between placements";
        case Reason::move_cap:
            return "reached the cap of moves per page";
    }
    return "?";
}

namespace {

Decision base_decision(const HotPage& page) {
    Decision d;
    d.vm = page.vm;
    d.gpa = page.gpa;
    d.from = d.to = page.home;
    d.counts = page.counts;
    d.total = std::accumulate(page.counts.begin(), page.counts.end(), std::uint64_t{0});
    if (!page.counts.empty()) {
        auto top = std::max_element(page.counts.begin(), page.counts.end());
        d.dominant_node = static_cast<unsigned>(top - page.counts.begin());
        d.dominant_share = d.total ? static_cast<double>(*top) / static_cast<double>(d.total) : 0.0;
    }
    return d;
}

bool is_move(Action a) { return a == Action::migrate || a == Action::replicate; }

}  // namespace

Decision Policy::classify(const HotPage& page, PageHistory* h, std::uint64_t interval) const {
    Decision d = base_decision(page);
    auto leave = [&](Reason r) {
        d.action = Action::leave;
        d.reason = r;
        return d;
    };
    if (d.total < params_.hot_threshold) return leave(Reason::cold);
    if (page.state != PageState::private_page) return leave(Reason::not_private);
    if (h && h->frozen) {
        d.frozen_until = h->frozen_until;
        return leave(Reason::frozen);
    }

    if (d.dominant_share >= params_.dominant_share) {
        if (d.dominant_node == page.home) return leave(Reason::dominant_home);
        d.action = Action::migrate;
        d.reason = Reason::dominant_remote;
        d.to = d.dominant_node;
    } else {
        const auto sharers = std::count_if(page.counts.begin(), page.counts.end(),
                                           [&](std::uint32_t c) { return c >= params_.sharing_threshold; });
        if (sharers < 2) return leave(Reason::no_pattern);
        if (page.written) return leave(Reason::write_shared);
        d.action = Action::replicate;
        d.reason = Reason::read_shared;
    }

    if (!h) return d;
    const bool bounce = d.action == Action::migrate ? h->left_node == d.to : h->replicated_by_us;
    Reason freeze_reason;
    if (bounce && h->bounces + 1 >= params_.bounce_limit)
        freeze_reason = Reason::bounced;
    else if (h->moves >= params_.max_moves_per_page)
        freeze_reason = Reason::move_cap;
    else
        return d;
    d.action = Action::freeze;
    d.reason = freeze_reason;
    d.to = d.from;
    d.frozen_until = params_.freeze_intervals ? interval + params_.freeze_intervals : 0;
    return d;
}

std::vector<Decision> Policy::decide(const HotPageBatch& batch, std::uint64_t interval) {
    forget_idle(interval);
    std::vector<const HotPage*> order;
    order.reserve(batch.pages.size());
    for (const auto& p : batch.pages) order.push_back(&p);
    // Hottest first, whatever order the monitor sent; ties in a fixed order so that a run
    // can be replayed.
    std::stable_sort(order.begin(), order.end(), [](const HotPage* a, const HotPage* b) {
        if (a->total != b->total) return a->total > b->total;
        return std::tie(a->vm, a->gpa) < std::tie(b->vm, b->gpa);
    });

    std::vector<Decision> out;
    out.reserve(order.size());
    unsigned budget = params_.moves_per_interval;
    for (const HotPage* page : order) {
        PageHistory* h = nullptr;
        if (auto it = history_.find({page->vm, page->gpa}); it != history_.end()) {
            h = &it->second;
            h->last_seen = interval;
        }
        Decision d = classify(*page, h, interval);
        d.interval = interval;
        if (is_move(d.action)) {
            if (budget == 0) {
                d.action = Action::leave;
                d.reason = Reason::over_budget;
                d.to = d.from;
            } else {
                --budget;
            }
        } else if (d.action == Action::freeze) {
            h->frozen = true;
            h->frozen_until = d.frozen_until;
        }
        out.push_back(std::move(d));
    }
    return out;
}

void Policy::record_outcome(const Decision& d, bool done) {
    if (!done || !is_move(d.action)) return;
    PageHistory& h = history_[{d.vm, d.gpa}];
    h.last_seen = std::max(h.last_seen, d.interval);
    if (d.action == Action::migrate) {
        if (h.left_node == d.to) ++h.bounces;
        h.left_node = d.from;
        h.replicated_by_us = false;
    } else {
        if (h.replicated_by_us) ++h.bounces;
        h.replicated_by_us = true;
    }
    ++h.moves;
}

void Policy::forget_idle(std::uint64_t interval) {
    std::erase_if(history_, [&](const auto& entry) {
        const PageHistory& h = entry.second;
        if (h.frozen) return h.frozen_until != 0 && interval >= h.frozen_until;  // melted: start afresh
        return interval - h.last_seen > params_.forget_after;
    });
}

std::size_t Policy::frozen_pages(const std::string& vm) const {
    return std::count_if(history_.begin(), history_.end(),
                         [&](const auto& e) { return e.second.frozen && e.first.first == vm; });
}

std::size_t Policy::frozen_pages() const {
    return std::count_if(history_.begin(), history_.end(), [](const auto& e) { return e.second.frozen; });
}

}  // namespace disco::numad
