// The daemon loop: connect, then each interval pull the hot pages (resetting the counters),
// let the policy decide, ask the monitor to act, log every action and rewrite the status file.
//
// A monitor that goes away (closed socket, timeout, garbage) is reconnected with exponential
// backoff (250 ms doubling up to --max-backoff-ms), and the policy's page history is dropped,
// because a restarted monitor's pages are not the ones it knew; with --exit-on-disconnect (or
// --once) the daemon exits with status 1 instead. SIGTERM/SIGINT end it with status 0.
#pragma once
#include "numad/options.hpp"

namespace disco::numad {

/// Runs until signalled (or one interval with --once); returns the exit status.
int run_daemon(const Options& options);

}  // namespace disco::numad
