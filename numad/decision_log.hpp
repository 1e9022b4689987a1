// The decisions log: one line per action (migrate, replicate, freeze, and a move the monitor
// refused), key=value so that grep/awk read it:
//   2025-01-01T12:00:00.123Z interval=12 action=migrate vm=web gpa=0x3f2000 from=0 to=1 counts=3,250 total=253
//   result=done reason="node 1 made 99% of 253 accesses"
#pragma once
#include <cstdio>
#include <string>

#include "numad/policy.hpp"
#include "vmm/util/result.hpp"

namespace disco::numad {

/// `result`: "done", "dry-run", "refused: <monitor's message>" or empty (freeze).
std::string format_decision(const Decision& d, const std::string& result);

class DecisionLog {
public:
    /// Appends to `path`; an empty path writes to stderr.
    static Result<DecisionLog, Error> open(const std::string& path);
    DecisionLog(DecisionLog&& other) noexcept;
    DecisionLog(const DecisionLog&) = delete;
    ~DecisionLog();

    void write(const std::string& line);  // adds the timestamp and the newline, flushes

private:
    explicit DecisionLog(std::FILE* f) : file_(f) {}
    std::FILE* file_;
};

}  // namespace disco::numad
