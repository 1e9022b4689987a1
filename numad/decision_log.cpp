#include "numad/decision_log.hpp"

#include <errno.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <string.h>

#include <chrono>
#include <utility>

namespace disco::numad {

std::string format_decision(const Decision& d, const std::string& result) {
    std::string line = fmt::format("interval={} action={} vm={} gpa={:#x} from={} to={} counts={} total={}", d.interval,
                                   action_name(d.action), d.vm, d.gpa, d.from, d.to, fmt::join(d.counts, ","), d.total);
    if (!result.empty())
        line += fmt::format(" result={}", result.find(' ') == std::string::npos ? result : "\"" + result + "\"");
    line += fmt::format(" reason=\"{}\"", reason_text(d));
    return line;
}

Result<DecisionLog, Error> DecisionLog::open(const std::string& path) {
    if (path.empty()) return DecisionLog(stderr);
    std::FILE* f = std::fopen(path.c_str(), "ae");
    if (!f) return fail(Error{fmt::format("cannot open the log {}: {}", path, strerror(errno))});
    return DecisionLog(f);
}

DecisionLog::DecisionLog(DecisionLog&& other) noexcept : file_(std::exchange(other.file_, nullptr)) {}

DecisionLog::~DecisionLog() {
    if (file_ && file_ != stderr) std::fclose(file_);
}

void DecisionLog::write(const std::string& line) {
    const auto now = std::chrono::system_clock::now();
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
    const std::time_t secs = static_cast<std::time_t>(ms / 1000);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char stamp[32];
    std::strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
    fmt::print(file_, "{}.{:03}Z {}\n", stamp, ms % 1000, line);
    std::fflush(file_);
}

}  // namespace disco::numad
