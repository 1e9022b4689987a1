// The host end of one fleet VM's console (ConsoleSpec): a log file, a
// pseudo-terminal or the monitor's stdout. It outlives the Vm objects it
// serves (a guest reboot makes a new Vm on the same console).
//
// Threads: write() is called by the VM's device and vCPU threads, possibly
// several at once; flush() by the supervisor. A pty console runs a reader
// thread from start_input() to stop_input() that hands typed bytes to the
// sink; the sink must be safe to call from that thread.
#pragma once
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "vmm/monitor/vm_config_json.hpp"
#include "vmm/util/result.hpp"
#include "vmm/util/types.hpp"

namespace disco::monitor {

class FleetConsole {
public:
    using InputSink = std::function<void(std::span<const u8>)>;

    /// Opens the log file (append) or the pty; a Stdio console opens nothing.
    static Result<std::unique_ptr<FleetConsole>, Error> open(const ConsoleSpec& spec);
    virtual ~FleetConsole() = default;

    /// Guest output (any thread).
    virtual void write(std::span<const u8> bytes) = 0;
    /// Writes out a partial last line (the VM ended).
    virtual void flush() {}
    /// Where a person attaches: the log file or the pty's /dev/pts/N; "" for stdio.
    virtual std::string where() const = 0;
    /// Starts forwarding typed bytes (pty only; the others have no input).
    virtual Result<void, Error> start_input(InputSink) { return {}; }
    /// Ends the reader thread; idempotent.
    virtual void stop_input() {}
};
}  // namespace disco::monitor
