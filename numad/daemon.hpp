// The daemon loop: connect, then each interval pull the hot pages (resetting the counters),
// let the policy decide, ask the monitor to act, log every action and rewrite the status file.
//
// A monitor that goes away (closed socket, timeout, garbage) is reconnected with exponential
// backoff (250 ms doubling up to --max-backoff-ms), and the policy's page history is dropped,
// because a restarted monitor's pages are not the ones it knew; with --exit-on-disconnect (or
// --once) the daemon exits with status 1 instead. SIGTERM/SIGINT end it with status 0.
//
// Each interval's host PMU samples (perf_sampler.hpp), where the host offers them, are resolved
// by the monitor and merged into the interval's counts before the policy runs
// (sampled_pages.hpp); where it does not, the monitor's counters are used alone.
#pragma once
#include <functional>
#include <vector>

#include "numad/options.hpp"
#include "numad/perf_sampler.hpp"

namespace disco::numad {

/// Where an interval's samples come from. Empty: a PerfSampler on the monitor's pid, opened on
/// connecting; otherwise this is drained each interval instead (for a host without a PMU, as
/// in the tests).
using SampleSource = std::function<std::vector<PerfSample>()>;

/// Runs until signalled (or one interval with --once); returns the exit status.
int run_daemon(const Options& options, SampleSource samples = {});

}  // namespace disco::numad
