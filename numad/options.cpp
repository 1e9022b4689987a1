#include "numad/options.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>
#include <variant>

#include "numad/monitor_api.hpp"

namespace disco::numad {

namespace {

/// One setting, reachable both as `--NAME` and as the config file's key "NAME".
struct Setting {
    const char* name;
    std::variant<unsigned*, std::uint64_t*, double*, bool*, std::string*> target;
    const char* help;
};

std::vector<Setting> settings(Options& o) {
    PolicyParams& p = o.policy;
    return {
        {"socket", &o.socket, "the monitor's control socket (required)"},
        {"interval-ms", &o.interval_ms, "milliseconds between counter pulls (10..3600000)"},
        {"batch", &o.batch, "hot pages pulled per interval (1..4096)"},
        {"threshold", &p.hot_threshold, "accesses in one interval that make a page hot"},
        {"sharing-threshold", &p.sharing_threshold, "accesses in one interval that make a node a sharer"},
        {"dominant-share", &p.dominant_share, "share of a page's accesses (0.5, 1] that makes a node its owner"},
        {"moves-per-interval", &p.moves_per_interval, "most migrations + replications per interval"},
        {"moves-per-page", &p.max_moves_per_page, "moves of one page before it is frozen"},
        {"bounce-limit", &p.bounce_limit, "bounces of one page before it is frozen"},
        {"freeze-intervals", &p.freeze_intervals, "intervals a frozen page stays frozen; 0: for good"},
        {"forget-after", &p.forget_after, "intervals after which an unseen page's history is dropped"},
        {"sample-weight", &o.sample_weight, "accesses one perf sample of a page stands for (1..1000000)"},
        {"timeout-ms", &o.timeout_ms, "longest wait for one monitor reply (100..600000)"},
        {"max-backoff-ms", &o.max_backoff_ms, "longest pause between reconnection attempts (100..3600000)"},
        {"exit-on-disconnect", &o.exit_on_disconnect, "exit (status 1) when the monitor goes away, not reconnect"},
        {"once", &o.once, "run one interval and exit"},
        {"dry-run", &o.dry_run, "decide and log, but ask the monitor to move nothing"},
        {"log", &o.log_file, "the decisions log (appended); default stderr"},
        {"status-file", &o.status_file, "where the status JSON is written (and read by --status)"},
    };
}

std::string check_ranges(const Options& o) {
    if (o.socket.empty()) return "--socket is required";
    if (o.interval_ms < 10 || o.interval_ms > 3'600'000)
        return fmt::format("--interval-ms must be in 10..3600000, got {}", o.interval_ms);
    if (o.batch < 1 || o.batch > max_hot_pages_limit)
        return fmt::format("--batch must be in 1..{}, got {}", max_hot_pages_limit, o.batch);
    if (o.timeout_ms < 100 || o.timeout_ms > 600'000)
        return fmt::format("--timeout-ms must be in 100..600000, got {}", o.timeout_ms);
    if (o.max_backoff_ms < 100 || o.max_backoff_ms > 3'600'000)
        return fmt::format("--max-backoff-ms must be in 100..3600000, got {}", o.max_backoff_ms);
    if (o.sample_weight < 1 || o.sample_weight > 1'000'000)
        return fmt::format("--sample-weight must be in 1..1000000, got {}", o.sample_weight);
    if (std::string e = validate(o.policy); !e.empty()) return e;
    return {};
}

Result<void, Error> set_from_json(const Setting& s, const nlohmann::json& v) {
    auto wrong = [&](const char* expected) {
        return fail(Error{fmt::format("config: \"{}\" must be {}", s.name, expected)});
    };
    if (auto* u = std::get_if<unsigned*>(&s.target)) {
        if (!v.is_number_unsigned() || v.get<std::uint64_t>() > std::numeric_limits<unsigned>::max())
            return wrong("a non-negative integer");
        **u = v.get<unsigned>();
    } else if (auto* u64 = std::get_if<std::uint64_t*>(&s.target)) {
        if (!v.is_number_unsigned()) return wrong("a non-negative integer");
        **u64 = v.get<std::uint64_t>();
    } else if (auto* d = std::get_if<double*>(&s.target)) {
        if (!v.is_number()) return wrong("a number");
        **d = v.get<double>();
    } else if (auto* b = std::get_if<bool*>(&s.target)) {
        if (!v.is_boolean()) return wrong("true or false");
        **b = v.get<bool>();
    } else if (auto* str = std::get_if<std::string*>(&s.target)) {
        if (!v.is_string()) return wrong("a string");
        **str = v.get<std::string>();
    }
    return {};
}

}  // namespace

Result<void, Error> apply_config(const std::string& text, Options& options,
                                 const std::vector<std::string>& given_on_command_line) {
    const auto config = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (config.is_discarded()) return fail(Error{"config: not valid JSON"});
    if (!config.is_object()) return fail(Error{"config: not a JSON object"});
    const auto known = settings(options);
    for (const auto& [key, value] : config.items()) {
        auto s = std::find_if(known.begin(), known.end(), [&](const Setting& k) { return key == k.name; });
        if (s == known.end()) return fail(Error{fmt::format("config: unknown key \"{}\"", key)});
        if (std::find(given_on_command_line.begin(), given_on_command_line.end(), key) != given_on_command_line.end())
            continue;
        DISCO_TRY(set_from_json(*s, value));
    }
    return {};
}

Result<Invocation, Error> parse_command_line(int argc, char** argv) {
    Invocation inv;
    CLI::App app{
        "disco-numad: Disco's NUMA daemon. Pulls the monitor's per-page access counters over its control\n"
        "socket each interval, migrates pages that one remote node uses, replicates read-shared ones\n"
        "(numad/README.md)."};
    app.set_version_flag("--version", "disco-numad 0.1.0");
    std::vector<std::pair<std::string, CLI::Option*>> flags;
    for (const Setting& s : settings(inv.options)) {
        const std::string flag = std::string("--") + s.name;
        CLI::Option* opt = std::visit(
            [&](auto* target) -> CLI::Option* {
                using T = std::remove_pointer_t<decltype(target)>;
                if constexpr (std::is_same_v<T, bool>)
                    return app.add_flag(flag, *target, s.help);
                else
                    return app.add_option(flag, *target, s.help)->capture_default_str();
            },
            s.target);
        flags.emplace_back(s.name, opt);
    }
    std::string config_file;
    app.add_option("--config", config_file, "a JSON file of the same settings (keys as the flag names)");
    bool status = false;
    app.add_flag("--status", status, "print the running daemon's figures (from its status file) and exit");
    app.add_flag("--json", inv.json, "with --status: print the status file's JSON as it is");
    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp&) {
        inv.mode = Mode::help;
        inv.help_text = app.help();
        return inv;
    } catch (const CLI::CallForVersion&) {
        inv.mode = Mode::help;
        inv.help_text = "disco-numad 0.1.0\n";
        return inv;
    } catch (const CLI::ParseError& e) {
        std::string what = e.what();
        std::replace(what.begin(), what.end(), '\n', ' ');
        return fail(Error{what});
    }
    if (inv.json && !status) return fail(Error{"--json is only meaningful with --status"});
    if (!config_file.empty()) {
        std::ifstream in(config_file);
        if (!in) return fail(Error{fmt::format("cannot read the config file {}", config_file)});
        std::stringstream text;
        text << in.rdbuf();
        std::vector<std::string> given;
        for (const auto& [name, opt] : flags)
            if (opt->count() > 0) given.push_back(name);
        if (auto r = apply_config(text.str(), inv.options, given); !r)
            return fail(Error{fmt::format("{}: {}", config_file, r.error().message)});
    }
    if (status) {
        inv.mode = Mode::status;
        return inv;
    }
    if (std::string e = check_ranges(inv.options); !e.empty()) return fail(Error{e});
    return inv;
}

std::string default_status_path() {
    if (const char* rd = std::getenv("RUNTIME_DIRECTORY"); rd && *rd) {
        std::string dir = rd;
        dir = dir.substr(0, dir.find(':'));  // systemd lists several folders with ':' between
        return dir + "/status.json";
    }
    if (geteuid() == 0) return "/run/disco-numad/status.json";
    if (const char* xdg = std::getenv("XDG_RUNTIME_DIR"); xdg && *xdg)
        return std::string(xdg) + "/disco-numad/status.json";
    return fmt::format("/tmp/disco-numad-{}/status.json", geteuid());
}

}  // namespace disco::numad
