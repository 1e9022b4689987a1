#include "numad/daemon.hpp"

#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <optional>

#include "numad/decision_log.hpp"
#include "numad/monitor_api.hpp"
#include "numad/perf_sampler.hpp"
#include "numad/sampled_pages.hpp"
#include "numad/status_file.hpp"
#include "numad/stock_numad.hpp"
#include "numad/topology.hpp"

namespace disco::numad {

namespace {

using Clock = std::chrono::steady_clock;

template <class... Args>
void say(fmt::format_string<Args...> f, Args&&... args) {
    fmt::print(stderr, "disco-numad: {}\n", fmt::format(f, std::forward<Args>(args)...));
}

/// SIGTERM/SIGINT arrive on a signalfd, so waiting for the next interval and for a signal is
/// one poll().
class Signals {
public:
    Signals() {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        sigprocmask(SIG_BLOCK, &set, nullptr);
        fd_ = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    }
    ~Signals() {
        if (fd_ >= 0) close(fd_);
    }
    /// Sleeps up to `ms`; true when a stop signal came.
    bool wait(std::chrono::milliseconds ms) {
        pollfd p{fd_, POLLIN, 0};
        const auto deadline = Clock::now() + ms;
        for (;;) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
            const int r = poll(&p, 1, static_cast<int>(std::max<long long>(0, left)));
            if (r > 0) return true;
            if (r == 0 || errno != EINTR) return false;
        }
    }
    bool pending() { return wait(std::chrono::milliseconds(0)); }

private:
    int fd_ = -1;
};

double seconds(const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; }

bool connection_lost(const ClientError& e) { return e.kind != ClientError::Kind::command; }

class Daemon {
public:
    Daemon(const Options& o, DecisionLog log, SampleSource samples)
        : options_(o),
          status_path_(o.status_file.empty() ? default_status_path() : o.status_file),
          log_(std::move(log)),
          policy_(o.policy),
          sample_source_(std::move(samples)) {
        status_.pid = getpid();
        status_.socket = o.socket;
        status_.dry_run = o.dry_run;
        status_.access_source = "monitor soft-TLB fill counters";
    }

    int run() {
        std::chrono::milliseconds backoff{250};
        bool ready_sent = false;
        while (!signals_.pending()) {
            if (!client_) {
                auto c = MonitorClient::connect(options_.socket,
                                                ClientOptions{std::chrono::milliseconds(options_.timeout_ms)});
                if (!c) {
                    if (options_.once || options_.exit_on_disconnect) {
                        say("{}; exiting", c.error().message);
                        return 1;
                    }
                    if (c.error().message != last_connect_error_)
                        say("{}; retrying every {} ms at most", c.error().message, options_.max_backoff_ms);
                    last_connect_error_ = c.error().message;
                    set_status_line(fmt::format("monitor unreachable ({}); retrying", c.error().message));
                    write_status(false);
                    if (signals_.wait(backoff)) break;
                    backoff = std::min(backoff * 2, std::chrono::milliseconds(options_.max_backoff_ms));
                    continue;
                }
                last_connect_error_.clear();
                client_.emplace(std::move(*c));
                on_connected();
                if (!ready_sent) sd_notify(0, "READY=1");
                ready_sent = true;
            }
            const auto started = Clock::now();
            const Outcome outcome = one_interval();
            if (outcome == Outcome::fatal) return 1;
            if (outcome == Outcome::lost) {
                client_.reset();
                policy_.clear();
                if (options_.once || options_.exit_on_disconnect) return 1;
                // A monitor that accepts and drops us at once is not retried in a tight loop.
                if (signals_.wait(backoff)) break;
                backoff = std::min(backoff * 2, std::chrono::milliseconds(options_.max_backoff_ms));
                continue;
            }
            backoff = std::chrono::milliseconds(250);
            if (options_.once) break;
            const auto spent = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started);
            if (signals_.wait(std::chrono::milliseconds(options_.interval_ms) - spent)) break;
        }
        sd_notify(0, "STOPPING=1");
        write_status(client_.has_value());
        return 0;
    }

private:
    void on_connected() {
        say("connected to {} ({}, pid {})", options_.socket, client_->server_package(), client_->peer_pid());
        nodes_seen_ = 0;
        status_.topology.clear();
        describe_topology();
        if (auto numad = find_stock_numad()) say("{}", stock_numad_warning(*numad, client_->peer_pid()));
        if (sample_source_ && !perf_reported_) {
            status_.access_source = "monitor counters + given samples";
            say("access source: {}", status_.access_source);
            perf_reported_ = true;
        }
        samples_usable_ = true;                                        // a restarted monitor may resolve them
        if (perf_ && perf_pid_ != client_->peer_pid()) perf_.reset();  // a new monitor process
        if (!sample_source_ && !perf_ && client_->peer_pid() > 0) {
            auto p = PerfSampler::open(client_->peer_pid());
            if (p) {
                perf_.emplace(std::move(*p));
                perf_pid_ = client_->peer_pid();
                status_.access_source = "monitor counters + perf cache-miss samples";
            } else if (!perf_reported_) {
                status_.access_source = "monitor soft-TLB fill counters (perf sampling unavailable)";
            }
            if (!perf_reported_) say("access source: {}{}", status_.access_source, p ? "" : ": " + p.error().message);
            perf_reported_ = true;
        }
        if (perf_) status_.access_source = "monitor counters + perf cache-miss samples";
    }

    /// Asks the monitor for its nodes; logged when the description changes.
    void describe_topology() {
        std::string description;
        if (auto t = query_topology(*client_)) {
            description = t->describe();
            nodes_seen_ = t->reported_nodes;
        } else if (t.error().kind == ClientError::Kind::command) {
            description = host_topology().describe() + " (the monitor has no numa command)";
            nodes_seen_ = std::nullopt;  // asking again would not help
        } else {
            description = "unknown";
        }
        if (description != status_.topology) say("topology: {}", description);
        status_.topology = description;
    }

    enum class Outcome { ok, lost, fatal };

    Outcome one_interval() {
        ++interval_;
        auto batch = pull_hot_pages(*client_, options_.batch, /*reset=*/true);
        if (!batch) return lost(batch.error());
        if (nodes_seen_ && batch->nodes != *nodes_seen_) {  // the first VM started, or the monitor changed
            describe_topology();
        }
        if (perf_ || sample_source_) {
            const std::vector<PerfSample> samples = sample_source_ ? sample_source_() : perf_->drain();
            if (!samples.empty() && samples_usable_) {
                auto merged = add_sampled_accesses(*client_, *batch, samples, options_.sample_weight);
                if (!merged && connection_lost(merged.error())) return lost(merged.error());
                if (!merged) {
                    // A monitor without resolve-addresses (or one that refuses it): asking again
                    // each interval would not help; its counters go on alone.
                    say("perf samples not used: {}", merged.error().message);
                    status_.access_source = "monitor soft-TLB fill counters (the monitor cannot resolve samples)";
                    samples_usable_ = false;
                }
            }
        }
        std::uint64_t moved = 0;
        // What the monitor said about one decision: its log line, the policy's history, the figures.
        const auto settle = [&](const Decision& d, bool done, const std::string& why) {
            policy_.record_outcome(d, done);
            log_.write(format_decision(d, done ? "done" : "refused: " + why));
            VmFigures& vm = figures_[d.vm];
            if (!done) {
                ++vm.failed;
                return;
            }
            ++moved;
            ++(d.action == Action::migrate ? vm.migrations : vm.replications);
        };
        // Migrations go in batches per VM and node: one request, two shootdowns for the lot.
        std::map<std::pair<std::string, unsigned>, std::vector<Decision>> migrations;
        for (const Decision& d : policy_.decide(*batch, interval_)) {
            if (d.action == Action::leave) continue;
            if (d.action == Action::freeze) {
                log_.write(format_decision(d, ""));
                continue;
            }
            if (options_.dry_run) {
                log_.write(format_decision(d, "dry-run"));
                continue;
            }
            if (d.action == Action::migrate) {
                migrations[{d.vm, d.to}].push_back(d);
                continue;
            }
            auto r = replicate_page(*client_, d.vm, d.gpa);
            if (!r && connection_lost(r.error())) return lost(r.error());
            settle(d, r.has_value(), r ? "" : r.error().message);
        }
        for (const auto& [target, decisions] : migrations) {
            for (std::size_t at = 0; at < decisions.size(); at += max_migrate_batch) {
                const std::size_t end = std::min(decisions.size(), at + max_migrate_batch);
                std::vector<std::uint64_t> gpas;
                for (std::size_t i = at; i < end; ++i) gpas.push_back(decisions[i].gpa);
                auto r = migrate_pages(*client_, target.first, gpas, target.second);
                if (!r && connection_lost(r.error())) return lost(r.error());
                std::map<std::uint64_t, std::string> refused;
                if (r) refused.insert(r->begin(), r->end());
                for (std::size_t i = at; i < end; ++i) {
                    const auto it = refused.find(decisions[i].gpa);
                    if (!r)
                        settle(decisions[i], false, r.error().message);
                    else
                        settle(decisions[i], it == refused.end(), it == refused.end() ? "" : it->second);
                }
            }
        }
        for (const VmAccesses& a : batch->vms) {
            VmFigures& vm = figures_[a.name];
            vm.local += a.local;
            vm.remote += a.remote;
            vm.interval_local = a.local;
            vm.interval_remote = a.remote;
        }
        total_moves_ += moved;
        set_status_line(
            fmt::format("interval {}: {} VMs, {:.1f}% local accesses, {} moves ({} this interval), {} pages frozen",
                        interval_, batch->vms.size(), 100.0 * local_ratio(batch->local, batch->remote), total_moves_,
                        moved, policy_.frozen_pages()));
        write_status(true);
        return Outcome::ok;
    }

    Outcome lost(const ClientError& e) {
        if (!connection_lost(e)) {
            // The monitor refused hot-pages itself (a monitor without the command, say):
            // retrying would not change its answer.
            say("{}; exiting", e.message);
            set_status_line(e.message);
            write_status(true);
            return Outcome::fatal;
        }
        say("lost the monitor: {}{}", e.message,
            options_.once || options_.exit_on_disconnect ? "; exiting" : "; reconnecting");
        set_status_line(fmt::format("lost the monitor: {}", e.message));
        write_status(false);
        return Outcome::lost;
    }

    void set_status_line(const std::string& line) { sd_notifyf(0, "STATUS=%s", line.c_str()); }

    void write_status(bool connected) {
        rusage ru{};
        getrusage(RUSAGE_SELF, &ru);
        status_.cpu_user_s = seconds(ru.ru_utime);
        status_.cpu_system_s = seconds(ru.ru_stime);
        status_.updated =
            std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
                .count();
        status_.interval = interval_;
        status_.connected = connected;
        status_.vms.clear();
        for (auto& [name, f] : figures_) {
            f.name = name;
            f.frozen = policy_.frozen_pages(name);
            status_.vms.push_back(f);
        }
        if (auto r = disco::numad::write_status(status_path_, status_); !r) {
            if (!status_error_reported_) say("{}", r.error().message);
            status_error_reported_ = true;
        }
    }

    const Options& options_;
    std::string status_path_;
    DecisionLog log_;
    Policy policy_;
    Signals signals_;
    std::optional<MonitorClient> client_;
    SampleSource sample_source_;
    std::optional<PerfSampler> perf_;
    pid_t perf_pid_ = 0;  // the monitor process perf_ samples
    bool samples_usable_ = true;
    bool perf_reported_ = false;
    bool status_error_reported_ = false;
    std::string last_connect_error_;
    std::uint64_t interval_ = 0;
    std::optional<unsigned> nodes_seen_ = 0;  // the monitor's node count when last asked
    std::uint64_t total_moves_ = 0;
    std::map<std::string, VmFigures> figures_;
    DaemonStatus status_;
};

}  // namespace

int run_daemon(const Options& options, SampleSource samples) {
    auto log = DecisionLog::open(options.log_file);
    if (!log) {
        say("{}", log.error().message);
        return 2;
    }
    Daemon daemon(options, std::move(*log), std::move(samples));
    return daemon.run();
}

}  // namespace disco::numad
