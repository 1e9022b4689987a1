#include "numad/status_file.hpp"

#include <errno.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace disco::numad {

using json = nlohmann::json;

double local_ratio(std::uint64_t local, std::uint64_t remote) {
    const std::uint64_t all = local + remote;
    return all ? static_cast<double>(local) / static_cast<double>(all) : 0.0;
}

json to_json(const DaemonStatus& s) {
    json vms = json::array();
    for (const auto& v : s.vms) {
        vms.push_back({{"name", v.name},
                       {"local", v.local},
                       {"remote", v.remote},
                       {"local_ratio", local_ratio(v.local, v.remote)},
                       {"interval_local", v.interval_local},
                       {"interval_remote", v.interval_remote},
                       {"migrations", v.migrations},
                       {"replications", v.replications},
                       {"failed", v.failed},
                       {"frozen", v.frozen}});
    }
    return {{"version", 1},
            {"pid", s.pid},
            {"updated", s.updated},
            {"interval", s.interval},
            {"connected", s.connected},
            {"dry_run", s.dry_run},
            {"socket", s.socket},
            {"access_source", s.access_source},
            {"topology", s.topology},
            {"cpu_user_s", s.cpu_user_s},
            {"cpu_system_s", s.cpu_system_s},
            {"vms", vms}};
}

Result<DaemonStatus, Error> status_from_json(const json& j) {
    try {
        if (j.at("version").get<int>() != 1) return fail(Error{"a status file of an unknown version"});
        DaemonStatus s;
        s.pid = j.at("pid").get<long>();
        s.updated = j.at("updated").get<std::int64_t>();
        s.interval = j.at("interval").get<std::uint64_t>();
        s.connected = j.at("connected").get<bool>();
        s.dry_run = j.at("dry_run").get<bool>();
        s.socket = j.at("socket").get<std::string>();
        s.access_source = j.at("access_source").get<std::string>();
        s.topology = j.at("topology").get<std::string>();
        s.cpu_user_s = j.at("cpu_user_s").get<double>();
        s.cpu_system_s = j.at("cpu_system_s").get<double>();
        for (const json& v : j.at("vms")) {
            s.vms.push_back(VmFigures{v.at("name").get<std::string>(), v.at("local").get<std::uint64_t>(),
                                      v.at("remote").get<std::uint64_t>(), v.at("interval_local").get<std::uint64_t>(),
                                      v.at("interval_remote").get<std::uint64_t>(),
                                      v.at("migrations").get<std::uint64_t>(),
                                      v.at("replications").get<std::uint64_t>(), v.at("failed").get<std::uint64_t>(),
                                      v.at("frozen").get<std::uint64_t>()});
        }
        return s;
    } catch (const json::exception& e) {
        return fail(Error{fmt::format("not a disco-numad status file: {}", e.what())});
    }
}

Result<void, Error> write_status(const std::string& path, const DaemonStatus& s) {
    const std::filesystem::path file(path);
    std::error_code ec;
    if (file.has_parent_path()) {
        std::filesystem::create_directories(file.parent_path(), ec);
        if (ec) return fail(Error{fmt::format("cannot make {}: {}", file.parent_path().string(), ec.message())});
    }
    const std::string tmp = path + ".tmp";
    const std::string text = to_json(s).dump(2) + "\n";
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return fail(Error{fmt::format("cannot write {}: {}", tmp, strerror(errno))});
    const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
    const int err = errno;
    ::close(fd);
    if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
        const int e = ok ? errno : err;
        ::unlink(tmp.c_str());
        return fail(Error{fmt::format("cannot write {}: {}", path, strerror(e))});
    }
    return {};
}

Result<DaemonStatus, Error> read_status(const std::string& path, std::string* raw) {
    std::ifstream in(path);
    if (!in)
        return fail(
            Error{fmt::format("no status file at {} (is disco-numad running? --status-file names another)", path)});
    std::stringstream text;
    text << in.rdbuf();
    const json j = json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return fail(Error{fmt::format("{}: not valid JSON", path)});
    if (raw) *raw = text.str();
    auto s = status_from_json(j);
    if (!s) return fail(Error{fmt::format("{}: {}", path, s.error().message)});
    return s;
}

std::string format_status(const DaemonStatus& s, std::int64_t now) {
    std::string out = fmt::format(
        "disco-numad pid {}: {}, interval {}, updated {}s ago{}\n"
        "socket {}; {}; counters: {}\n"
        "daemon CPU time: {:.2f}s user, {:.2f}s system\n",
        s.pid, s.connected ? "connected" : "NOT connected", s.interval, std::max<std::int64_t>(0, now - s.updated),
        s.dry_run ? " (dry run: nothing moved)" : "", s.socket,
        s.topology.empty() ? "topology not known yet" : s.topology, s.access_source, s.cpu_user_s, s.cpu_system_s);
    out += fmt::format("{:<20} {:>8} {:>9} {:>10} {:>12} {:>7} {:>7}\n", "VM", "local%", "last%", "migrated",
                       "replicated", "failed", "frozen");
    auto pct = [](std::uint64_t l, std::uint64_t r) {
        return l + r ? fmt::format("{:.1f}", 100.0 * local_ratio(l, r)) : std::string("-");
    };
    for (const auto& v : s.vms) {
        out += fmt::format("{:<20} {:>8} {:>9} {:>10} {:>12} {:>7} {:>7}\n", v.name, pct(v.local, v.remote),
                           pct(v.interval_local, v.interval_remote), v.migrations, v.replications, v.failed, v.frozen);
    }
    if (s.vms.empty()) out += "(no VMs reported yet)\n";
    return out;
}

}  // namespace disco::numad
