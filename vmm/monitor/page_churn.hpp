// --page-churn RATE: the monitor itself migrates, replicates and collapses
// random guest pages of a running VM at RATE operations per second, so that
// anyone can check that a running guest is unaffected by page operations
// (the project's stress mode for DESIGN.md's memory path). One thread per VM.
#pragma once
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <random>
#include <string>
#include <thread>

#include "vmm/mem/guest_ram.hpp"

namespace disco::monitor {

struct ChurnCounts {
    u64 attempted = 0, migrated = 0, replicated = 0, collapsed = 0, busy = 0, refused = 0;
};

class PageChurn {
public:
    PageChurn(GuestRam& ram, unsigned nodes, double rate_per_second, u64 seed);
    ~PageChurn();
    PageChurn(const PageChurn&) = delete;
    PageChurn& operator=(const PageChurn&) = delete;
    void stop();
    ChurnCounts counts() const;
    std::string summary() const;

private:
    void loop();
    void one_operation();
    GuestRam& ram_;
    unsigned nodes_;
    double rate_;
    std::mt19937_64 rng_;
    std::vector<std::pair<u64, u64>> ranges_;  // RAM pages [first, last]
    std::vector<u64> replicated_;               // pages we replicated, to collapse later
    mutable std::mutex mutex_;
    std::condition_variable cv_;
    bool stopping_ = false;
    ChurnCounts counts_;
    std::thread thread_;
};
}  // namespace disco::monitor
