#include "numad/stock_numad.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>

namespace disco::numad {

namespace {

bool comm_is_numad(const std::filesystem::path& dir) {
    std::ifstream in(dir / "comm");
    std::string comm;
    return in && std::getline(in, comm) && comm == "numad";
}

}  // namespace

std::optional<pid_t> find_stock_numad(const std::string& proc_root, const std::string& pidfile) {
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(proc_root, ec)) {
        const std::string name = entry.path().filename().string();
        if (name.empty() || !std::all_of(name.begin(), name.end(), [](unsigned char c) { return std::isdigit(c); }))
            continue;
        if (comm_is_numad(entry.path())) return static_cast<pid_t>(std::stol(name));
    }
    // A pidfile alone may be stale: believe it only if that pid is numad.
    std::ifstream in(pidfile);
    long pid = 0;
    if (in >> pid && pid > 0 && comm_is_numad(std::filesystem::path(proc_root) / std::to_string(pid)))
        return static_cast<pid_t>(pid);
    return std::nullopt;
}

std::string stock_numad_warning(pid_t numad_pid, pid_t monitor_pid) {
    const std::string exclude = monitor_pid ? fmt::format("`numad -x {}`", monitor_pid) : "`numad -x <disco pid>`";
    return fmt::format(
        "warning: the stock numad (pid {}) is running; it binds and migrates the whole disco monitor and will undo "
        "disco-numad's page placement: stop it (`systemctl disable --now numad`) or exclude the monitor from it ({})",
        numad_pid, exclude);
}

}  // namespace disco::numad
