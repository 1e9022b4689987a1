// Debian's stock numad (ecosystem.md §A3) treats the whole monitor as one process: it binds
// every thread to a node and migrates all of its memory, undoing what disco-numad places page by
// page. It is found by a process whose comm is exactly "numad", or by a live pid in its pidfile.
#pragma once
#include <sys/types.h>

#include <optional>
#include <string>

namespace disco::numad {

std::optional<pid_t> find_stock_numad(const std::string& proc_root = "/proc",
                                      const std::string& pidfile = "/var/run/numad.pid");

/// The warning, naming how to keep the two apart; `monitor_pid` 0 when unknown.
std::string stock_numad_warning(pid_t numad_pid, pid_t monitor_pid);

}  // namespace disco::numad
