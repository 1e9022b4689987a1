// The GIC's shared 64-bit counter (GIC_SH_COUNTER, guest-board.md §4.2),
// derived from a host monotonic clock in nanoseconds: value = base +
// (now - base_ns) * hz / 1e9 while running, frozen while COUNTSTOP is set.
// Writes and stop/start re-base it so that the value is continuous. Not
// thread-safe on its own: the GIC calls it under its lock.
#pragma once
#include <optional>

#include "vmm/util/types.hpp"

namespace disco::dev {

class GicCounter {
public:
    GicCounter(u64 hz, u64 now_ns) : hz_(hz), base_ns_(now_ns) {}

    u64 value(u64 now_ns) const;
    void set(u64 now_ns, u64 value);
    bool stopped() const { return stopped_; }
    void set_stopped(u64 now_ns, bool stop);

    /// The host time at which the counter first reads >= target: now_ns if it
    /// already does, nullopt if it never will (stopped, or a 0 Hz clock).
    std::optional<u64> when_reaches(u64 now_ns, u64 target) const;

private:
    u64 ticks_since_base(u64 now_ns) const;

    u64 hz_;
    u64 base_value_ = 0;
    u64 base_ns_;
    bool stopped_ = false;
};
}  // namespace disco::dev
