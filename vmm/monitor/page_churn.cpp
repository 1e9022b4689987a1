#include "vmm/monitor/page_churn.hpp"

#include <fmt/format.h>

#include <chrono>

namespace disco::monitor {

PageChurn::PageChurn(GuestRam& ram, unsigned nodes, double rate, u64 seed)
    : ram_(ram), nodes_(std::max(1u, nodes)), rate_(rate), rng_(seed) {
    for (const auto& r : ram.regions())
        ranges_.emplace_back(r->base().page(), r->base().page() + (r->size() >> kPageShift) - 1);
    thread_ = std::thread([this] { loop(); });
}

PageChurn::~PageChurn() { stop(); }

void PageChurn::stop() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
}

void PageChurn::loop() {
    using clock = std::chrono::steady_clock;
    const auto period = std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(1.0 / rate_));
    auto next = clock::now();
    std::unique_lock<std::mutex> lock(mutex_);
    while (!stopping_) {
        // Operations run at the rate on average; late ones catch up (bounded).
        next += period;
        if (clock::now() - next > std::chrono::seconds(1)) next = clock::now();
        if (cv_.wait_until(lock, next, [&] { return stopping_; })) break;
        lock.unlock();
        one_operation();
        lock.lock();
    }
}

void PageChurn::one_operation() {
    ChurnCounts delta;
    delta.attempted = 1;
    const auto& [first, last] = ranges_[rng_() % ranges_.size()];
    const u64 page = first + rng_() % (last - first + 1);
    Result<void, PageOpError> r;
    const unsigned kind = static_cast<unsigned>(rng_() % 3);
    bool collapsing = false, replicating = false;
    if (kind == 2 && !replicated_.empty()) {
        const usize i = rng_() % replicated_.size();
        r = ram_.collapse(replicated_[i]);
        replicated_[i] = replicated_.back();
        replicated_.pop_back();
        collapsing = true;
    } else if (kind == 1 && nodes_ > 1) {
        r = ram_.replicate(page);
        replicating = true;
        if (r) replicated_.push_back(page);
    } else {
        auto node = ram_.node_of(page);
        r = ram_.migrate(page, node ? static_cast<NodeId>((*node + 1 + rng_() % std::max(1u, nodes_ - 1)) % nodes_) : 0);
    }
    if (r) {
        (collapsing ? delta.collapsed : replicating ? delta.replicated : delta.migrated) = 1;
    } else if (r.error().kind == PageOpError::Kind::Busy) {
        delta.busy = 1;
    } else {
        delta.refused = 1;  // already there, collapsed on write meanwhile, ...
    }
    std::lock_guard<std::mutex> lock(mutex_);
    counts_.attempted += delta.attempted;
    counts_.migrated += delta.migrated;
    counts_.replicated += delta.replicated;
    counts_.collapsed += delta.collapsed;
    counts_.busy += delta.busy;
    counts_.refused += delta.refused;
}

ChurnCounts PageChurn::counts() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return counts_;
}

std::string PageChurn::summary() const {
    const ChurnCounts c = counts();
    const PageOpStats& s = ram_.page_op_stats();
    const u64 sd = s.shootdowns.load();
    return fmt::format(
        "page churn: {} operations: {} migrated, {} replicated, {} collapsed, {} busy, {} refused; "
        "{} collapses on guest writes; {} shootdowns, mean {:.1f} us",
        c.attempted, c.migrated, c.replicated, c.collapsed, c.busy, c.refused, s.collapses_on_write.load(), sd,
        sd ? s.shootdown_ns.load() / 1000.0 / static_cast<double>(sd) : 0.0);
}
}  // namespace disco::monitor
