// disco-numad's command line and its optional JSON config file (numad/README.md lists every
// option with its default and why). Flags given on the command line win over the file.
#pragma once
#include <string>

#include "numad/policy.hpp"
#include "vmm/util/result.hpp"

namespace disco::numad {

struct Options {
    std::string socket;
    unsigned interval_ms = 1000;
    unsigned batch = 256;  // hot pages pulled per interval (the monitor allows 1..4096)
    unsigned timeout_ms = 5000;
    unsigned max_backoff_ms = 10000;
    /// Accesses one perf sample stands for (numad/README.md): a sample is taken every
    /// PerfSampler::default_period (10007) cache misses; 32 makes four samples of one page in
    /// an interval reach the default hot threshold (128).
    unsigned sample_weight = 32;
    bool exit_on_disconnect = false;
    bool once = false;
    bool dry_run = false;
    std::string log_file;     // the decisions log; empty: stderr
    std::string status_file;  // empty: default_status_path()
    PolicyParams policy;
};

enum class Mode { run, status, help };

struct Invocation {
    Mode mode = Mode::run;
    Options options;
    bool json = false;      // --status --json
    std::string help_text;  // Mode::help
};

/// Parses argv (and the --config file it names). The error is one line for the user.
Result<Invocation, Error> parse_command_line(int argc, char** argv);

/// Applies a JSON config object to `options`, skipping keys named in `given_on_command_line`.
Result<void, Error> apply_config(const std::string& text, Options& options,
                                 const std::vector<std::string>& given_on_command_line);

/// $RUNTIME_DIRECTORY/status.json (systemd's RuntimeDirectory=disco-numad), else
/// /run/disco-numad/status.json as root, else $XDG_RUNTIME_DIR/disco-numad/status.json, else
/// /tmp/disco-numad-UID/status.json.
std::string default_status_path();

}  // namespace disco::numad
