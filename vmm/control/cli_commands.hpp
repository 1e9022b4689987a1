// The command-line side of the control plane: the `daemon` subcommand and
// the client subcommands (list, status, start, stop; stats, numa; console), registered on the
// `disco` CLI11 app so that main.cpp only adds them and asks whether one ran.
#pragma once
#include <CLI/CLI.hpp>
#include <optional>
#include <string>
#include <vector>

#include "vmm/control/cli_client.hpp"
#include "vmm/control/cli_numa.hpp"
#include "vmm/control/daemon.hpp"

namespace disco::control {

class ControlSubcommands {
public:
    /// Adds the subcommands to `app` (which must outlive this).
    explicit ControlSubcommands(CLI::App& app);
    /// After app.parse(): the process's exit status if one of these
    /// subcommands was chosen (it has run), else nullopt.
    std::optional<int> run() const;

private:
    CLI::App* daemon_ = nullptr;
    std::vector<std::pair<std::string, CLI::App*>> clients_;
    std::string group_, machine_memory_ = "8G", metrics_;
    std::vector<std::string> allow_users_;
    DaemonOptions daemon_options_;
    ClientOptions client_options_;
    std::string vm_;
    /// stats, numa and numa's hot/migrate/replicate/collapse (cli_numa.hpp).
    std::vector<std::pair<std::string, CLI::App*>> numa_clients_;
    NumaClientRequest numa_request_;
    CLI::App* console_ = nullptr;  // console NAME (cli_console.hpp)
};
}  // namespace disco::control
