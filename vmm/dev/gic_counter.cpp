#include "vmm/dev/gic_counter.hpp"

#include <limits>

namespace disco::dev {
namespace {
constexpr u64 kNsPerSecond = 1'000'000'000;
using u128 = unsigned __int128;
}  // namespace

u64 GicCounter::ticks_since_base(u64 now_ns) const {
    if (stopped_ || now_ns <= base_ns_) return 0;  // a clock that steps back never runs the counter backwards
    return static_cast<u64>(u128{now_ns - base_ns_} * hz_ / kNsPerSecond);
}

u64 GicCounter::value(u64 now_ns) const { return base_value_ + ticks_since_base(now_ns); }

void GicCounter::set(u64 now_ns, u64 value) {
    base_value_ = value;
    base_ns_ = now_ns;
}

void GicCounter::set_stopped(u64 now_ns, bool stop) {
    if (stop == stopped_) return;
    set(now_ns, value(now_ns));  // freeze or resume from the value reached now
    stopped_ = stop;
}

std::optional<u64> GicCounter::when_reaches(u64 now_ns, u64 target) const {
    if (value(now_ns) >= target) return now_ns;
    if (stopped_ || hz_ == 0) return std::nullopt;
    // Smallest elapsed time whose tick count reaches target - base (round up).
    const u128 elapsed = (u128{target - base_value_} * kNsPerSecond + hz_ - 1) / hz_;
    const u128 at = u128{base_ns_} + elapsed;
    return at > std::numeric_limits<u64>::max() ? std::nullopt : std::optional<u64>(static_cast<u64>(at));
}
}  // namespace disco::dev
