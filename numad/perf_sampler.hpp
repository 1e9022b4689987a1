// Host PMU sampling of the monitor's memory accesses (perf_event_open(2)), the closest thing a
// Linux host has to FLASH's per-page miss counters (disco-paper.md §7: "x86 lacks FLASH-style
// per-page miss counters: use ... PMU sampling"). It opens a sampling cache-miss event on the
// monitor process with PERF_SAMPLE_ADDR (the data address of each sample) and drains the ring.
//
// Where the host does not offer it (no PMU in a VM, perf_event_paranoid, no CAP_PERFMON) open()
// says why, and the daemon uses the monitor's own counters alone, saying so once.
//
// TODO: the samples are host virtual addresses inside the monitor; turning them into (VM,
// guest page) needs the monitor to export where its machine-memory memfd is mapped (a frame is
// then (addr - base) / 4096, and the monitor's reverse map names the guest page). Until the
// monitor exposes that, samples are counted (`samples()`) but not fed to the policy.
#pragma once
#include <sys/types.h>

#include <cstdint>
#include <string>

#include "vmm/util/result.hpp"

namespace disco::numad {

struct PerfError {
    std::string message;
};

class PerfSampler {
public:
    /// Samples every `period` cache misses of process `pid` (all its threads, any CPU).
    static Result<PerfSampler, PerfError> open(pid_t pid, std::uint64_t period = 10007);

    PerfSampler(PerfSampler&& other) noexcept;
    PerfSampler& operator=(PerfSampler&&) = delete;
    PerfSampler(const PerfSampler&) = delete;
    ~PerfSampler();

    /// Reads every sample in the ring; returns how many had a data address.
    std::uint64_t drain();
    std::uint64_t samples() const { return samples_; }

private:
    PerfSampler(int fd, void* ring, std::size_t ring_bytes) : fd_(fd), ring_(ring), ring_bytes_(ring_bytes) {}
    int fd_ = -1;
    void* ring_ = nullptr;
    std::size_t ring_bytes_ = 0;
    std::uint64_t samples_ = 0;
};

}  // namespace disco::numad
