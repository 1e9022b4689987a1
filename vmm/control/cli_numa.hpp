// The `disco` subcommands for a running monitor's memory and NUMA placement
// (the control socket's memory, numa, hot-pages and page-* commands):
//   disco stats [NAME]                  footprint: guest pages, frames, sharing (KSM's figures)
//   disco numa [NAME]                   nodes (frames, distances) and each VM's placement
//   disco numa hot [NAME] [--limit K]   the hottest guest pages by the access counters
//   disco numa migrate NAME GPA NODE    move a guest page to a node
//   disco numa replicate NAME GPA       copy a guest page to every node
//   disco numa collapse NAME GPA        back to one copy
// Human tables by default, --json for the reply's value. Exit status 0, 1
// when the monitor refuses or cannot be reached, 2 for a bad GPA.
#pragma once
#include <string>

#include "vmm/control/cli_client.hpp"

namespace disco::control {

struct NumaClientRequest {
    /// "stats", "numa", "hot", "migrate", "replicate" or "collapse".
    std::string action;
    std::string vm;   // "" = every VM (stats, numa, hot)
    std::string gpa;  // migrate, replicate, collapse: decimal or 0x hex
    unsigned node = 0;
    unsigned limit = 20;
};

int run_numa_client(const NumaClientRequest& request, const ClientOptions& options);
}  // namespace disco::control
