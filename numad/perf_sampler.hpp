// Host PMU sampling of the monitor's memory accesses (perf_event_open(2)), the closest thing a
// Linux host has to FLASH's per-page miss counters (disco-paper.md §7: "x86 lacks FLASH-style
// per-page miss counters: use ... PMU sampling"). It opens a sampling cache-miss event on the
// monitor process with PERF_SAMPLE_TID | PERF_SAMPLE_ADDR (the thread and the data address of
// each sample) and drains the ring into samples; the monitor's resolve-addresses command maps
// them back to guest pages and the vCPUs' nodes (numad/sampled_pages.hpp).
//
// Where the host does not offer it (no PMU in a VM, perf_event_paranoid, no CAP_PERFMON) open()
// says why, and the daemon uses the monitor's own counters alone, saying so once.
#pragma once
#include <sys/types.h>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "vmm/util/result.hpp"

namespace disco::numad {

struct PerfError {
    std::string message;
};

/// One sample: the monitor thread that missed and the host virtual address it touched.
struct PerfSample {
    std::uint64_t addr = 0;
    std::uint32_t tid = 0;
    friend bool operator==(const PerfSample&, const PerfSample&) = default;
};

/// What parse_perf_ring() made of the bytes between tail and head.
struct RingParse {
    std::uint64_t tail = 0;       // where the reader stops (the new data_tail)
    std::uint64_t records = 0;    // records walked, of any type
    std::uint64_t malformed = 0;  // records that could not be read (the rest was dropped)
};

/// Reads the records in ring `data` (its size a power of two; positions are taken modulo it)
/// from `tail` to `head`, appending each PERF_RECORD_SAMPLE with a data address to `out`.
/// Laid out as asked for (TID | ADDR: header, pid, tid, addr). Defensive: a record shorter than
/// its header says, longer than what is left, not 8-byte sized, or a head more than the ring
/// ahead of the tail ends the walk and drops what is left (tail = head), so that garbage in the
/// ring can neither crash the reader nor keep it looping.
RingParse parse_perf_ring(std::span<const unsigned char> data, std::uint64_t tail, std::uint64_t head,
                          std::vector<PerfSample>& out);

class PerfSampler {
public:
    /// Samples every `period` cache misses of process `pid` (all its threads, any CPU).
    static Result<PerfSampler, PerfError> open(pid_t pid, std::uint64_t period = default_period);
    static constexpr std::uint64_t default_period = 10007;

    PerfSampler(PerfSampler&& other) noexcept;
    PerfSampler& operator=(PerfSampler&&) = delete;
    PerfSampler(const PerfSampler&) = delete;
    ~PerfSampler();

    /// Reads every record in the ring and returns the samples that had a data address.
    std::vector<PerfSample> drain();
    /// Samples drained so far, and records that were malformed.
    std::uint64_t samples() const { return samples_; }
    std::uint64_t malformed() const { return malformed_; }

private:
    PerfSampler(int fd, void* ring, std::size_t ring_bytes) : fd_(fd), ring_(ring), ring_bytes_(ring_bytes) {}
    int fd_ = -1;
    void* ring_ = nullptr;
    std::size_t ring_bytes_ = 0;
    std::uint64_t samples_ = 0;
    std::uint64_t malformed_ = 0;
};

}  // namespace disco::numad
