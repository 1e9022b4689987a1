#include "vmm/monitor/page_scanner.hpp"

#include <fmt/format.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstring>

namespace disco::monitor {
namespace {
double thread_cpu_seconds() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

/// A 64-bit hash of a page's bytes. The page may be written by a vCPU while
/// we read it (a racy read, on purpose: the hash only nominates candidates,
/// and share_from compares the bytes again with the page held still), so
/// this one function is exempt from ThreadSanitizer.
__attribute__((no_sanitize("thread"))) u64 page_hash(const u8* page) {
    u64 h = 0x9E3779B97F4A7C15ull;
    for (usize i = 0; i < kPageSize; i += 8) {
        u64 w;
        std::memcpy(&w, page + i, 8);
        h = (h ^ w) * 0xFF51AFD7ED558CCDull;
        h ^= h >> 32;
    }
    return h;
}
}  // namespace

PageScanner::PageScanner(double pages_per_second) : rate_(pages_per_second) {
    thread_ = std::thread([this] { loop(); });
}

PageScanner::~PageScanner() { stop(); }

void PageScanner::stop() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
}

void PageScanner::add(GuestRam& ram) {
    if (!ram.machine_memory()) return;
    Target t{&ram, {}, {}};
    for (const auto& r : ram.regions())
        t.ranges.emplace_back(r->base().page(), r->base().page() + (r->size() >> kPageShift) - 1);
    std::lock_guard<std::mutex> lock(mutex_);
    targets_.push_back(std::move(t));
}

void PageScanner::remove(GuestRam& ram) {
    std::lock_guard<std::mutex> lock(mutex_);  // no batch runs while we hold it
    std::erase_if(targets_, [&](const Target& t) { return t.ram == &ram; });
    std::erase_if(by_hash_, [&](const auto& entry) { return entry.second.ram == &ram; });
    cursor_target_ = cursor_range_ = 0;
    cursor_page_ = 0;
}

void PageScanner::loop() {
    using clock = std::chrono::steady_clock;
    constexpr auto kBatch = std::chrono::milliseconds(10);
    const u64 per_batch = std::max<u64>(1, static_cast<u64>(rate_ / 100.0));
    std::unique_lock<std::mutex> lock(mutex_);
    auto next = clock::now();
    while (!stopping_) {
        next += kBatch;
        if (clock::now() - next > std::chrono::seconds(1)) next = clock::now();
        if (cv_.wait_until(lock, next, [&] { return stopping_; })) break;
        const double cpu0 = thread_cpu_seconds();
        scan_batch(per_batch);
        stats_.cpu_seconds += thread_cpu_seconds() - cpu0;
    }
}

bool PageScanner::next_page(Target*& t, u64& ppage) {
    if (targets_.empty()) return false;
    if (cursor_target_ >= targets_.size()) {
        // A pass over every RAM is done: the candidates start again, as KSM's
        // unstable tree does, so that stale entries do not pile up.
        cursor_target_ = cursor_range_ = 0;
        cursor_page_ = 0;
        by_hash_.clear();
        ++stats_.passes;
    }
    Target& target = targets_[cursor_target_];
    auto [first, last] = target.ranges[cursor_range_];
    if (cursor_page_ < first) cursor_page_ = first;
    t = &target;
    ppage = cursor_page_;
    if (++cursor_page_ > last) {
        cursor_page_ = 0;
        if (++cursor_range_ >= target.ranges.size()) {
            cursor_range_ = 0;
            ++cursor_target_;
        }
    }
    return true;
}

void PageScanner::scan_batch(u64 n) {
    for (u64 i = 0; i < n; ++i) {
        Target* t = nullptr;
        u64 ppage = 0;
        if (!next_page(t, ppage)) return;
        scan_page(*t, ppage);
    }
}

void PageScanner::scan_page(Target& t, u64 ppage) {
    const auto state = t.ram->state_of(ppage);
    if (!state) return;
    if (*state & (page_state::kMoving | page_state::kReplicated | page_state::kPinMask)) {
        ++stats_.busy;
        return;
    }
    const u8* host = t.ram->host_page(GuestPhysAddr(ppage << kPageShift));
    const u64 h = page_hash(host);
    ++stats_.pages_scanned;
    // Volatile pages (written since the previous pass) are not worth merging:
    // the next write would break the sharing at once.
    const auto previous = t.last_hash.find(ppage);
    const u32 h32 = static_cast<u32>(h);
    const bool stable = previous != t.last_hash.end() && previous->second == h32;
    t.last_hash[ppage] = h32;
    const bool shared = *state & page_state::kShared;
    if (!stable && !shared) return;
    auto [it, inserted] = by_hash_.try_emplace(h, Candidate{t.ram, ppage});
    if (inserted || shared) return;  // the first with this content, or merged already: a target for later ones
    if (it->second.ram == t.ram && it->second.ppage == ppage) return;
    auto merged = t.ram->share_from(ppage, *it->second.ram, it->second.ppage);
    if (merged) {
        ++stats_.merged;
    } else if (merged.error().kind == PageOpError::Kind::NotIdentical) {
        ++stats_.not_identical;
        it->second = Candidate{t.ram, ppage};  // the newer content wins the slot
    } else if (merged.error().kind == PageOpError::Kind::Busy) {
        ++stats_.busy;
    }
}

ScanStats PageScanner::stats() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
}

std::string PageScanner::summary() const {
    const ScanStats s = stats();
    return fmt::format("page scan: {} pages hashed in {} passes, {} merged, {} not identical, {} busy; {:.3f} s CPU",
                       s.pages_scanned, s.passes, s.merged, s.not_identical, s.busy, s.cpu_seconds);
}
}  // namespace disco::monitor
