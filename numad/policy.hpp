// Disco's page placement policy (disco-paper.md §4.1, [SOSP §4.2.3]) as pure logic: one
// interval's hot-page batch in, one decision per page out. No I/O, no clock: the caller says
// which interval it is and reports back which moves the monitor actually made.
//
// - A page is hot when its interval count reaches `hot_threshold`; colder pages are left.
// - A hot page that one node uses mostly (that node's share >= `dominant_share`) migrates to
//   that node, unless it is there already.
// - A hot page that no single node dominates, that was not written in the interval and that at
//   least two nodes use (each with >= `sharing_threshold` accesses) is replicated.
// - A written page that several nodes use (write-shared) stays where it is: moving it would
//   only move the remote misses elsewhere.
// - COW-shared pages are never moved (they belong to several VMs); replicated or moving pages
//   are left.
// - Each page may move at most `max_moves_per_page` times; a page that reaches the cap, or that
//   bounces `bounce_limit` times (migrated back to a node it was moved away from, or replicated
//   again after its replicas were collapsed by a write), is frozen for `freeze_intervals`
//   intervals (0: for good). A frozen page is left until it melts, and then starts afresh.
// - At most `moves_per_interval` moves per interval, hottest pages first.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "numad/hot_pages.hpp"

namespace disco::numad {

struct PolicyParams {
    std::uint64_t hot_threshold = 128;
    std::uint64_t sharing_threshold = 32;
    double dominant_share = 0.8;
    unsigned moves_per_interval = 64;
    unsigned max_moves_per_page = 4;
    unsigned bounce_limit = 2;
    unsigned freeze_intervals = 60;  // 0: a frozen page stays frozen for good
    unsigned forget_after = 600;     // intervals after which an idle page's history is dropped
};

/// One line of the policy's checks, for `--config` and flag validation: empty when valid.
std::string validate(const PolicyParams& p);

enum class Action { migrate, replicate, leave, freeze };
const char* action_name(Action a);

/// Why a page got its decision; reason_text() words it for the decisions log.
enum class Reason {
    cold,             // below the hot threshold
    not_private,      // COW-shared, replicated already or being moved
    frozen,           // frozen earlier and not melted yet
    dominant_remote,  // migrate: one remote node dominates
    dominant_home,    // leave: the dominant node is its home already
    read_shared,      // replicate
    write_shared,     // leave: written and used by several nodes
    no_pattern,       // leave: no dominant node, too few sharers
    over_budget,      // leave: the interval's move budget is spent
    bounced,          // freeze: ping-pong detected
    move_cap,         // freeze: moved max_moves_per_page times
};

struct Decision {
    Action action = Action::leave;
    Reason reason = Reason::cold;
    std::uint64_t interval = 0;
    std::string vm;
    std::uint64_t gpa = 0;
    unsigned from = 0;  // the page's home when decided
    unsigned to = 0;    // migrate: the destination; otherwise = from
    std::vector<std::uint32_t> counts;
    std::uint64_t total = 0;
    unsigned dominant_node = 0;
    double dominant_share = 0;       // of total, 0..1
    std::uint64_t frozen_until = 0;  // freeze: the interval it melts (0: never)
};

std::string reason_text(const Decision& d);

class Policy {
public:
    explicit Policy(PolicyParams params) : params_(params) {}

    /// Decides every page of `batch` for interval `interval` (strictly increasing from 1).
    /// Migrate/replicate decisions are proposals: report each with record_outcome().
    std::vector<Decision> decide(const HotPageBatch& batch, std::uint64_t interval);

    /// The monitor made (`done`) or refused the move; only made moves count against the page.
    void record_outcome(const Decision& d, bool done);

    /// Forget everything (the monitor restarted: its pages are not the ones we knew).
    void clear() { history_.clear(); }

    std::size_t frozen_pages(const std::string& vm) const;
    std::size_t frozen_pages() const;
    const PolicyParams& params() const { return params_; }

private:
    struct PageHistory {
        unsigned moves = 0;
        unsigned bounces = 0;
        std::optional<unsigned> left_node;  // the node the last migration moved it away from
        bool replicated_by_us = false;      // our last move was a replication
        bool frozen = false;
        std::uint64_t frozen_until = 0;  // 0 with frozen: for good
        std::uint64_t last_seen = 0;
    };
    using Key = std::pair<std::string, std::uint64_t>;

    Decision classify(const HotPage& page, PageHistory* history, std::uint64_t interval) const;
    void forget_idle(std::uint64_t interval);

    PolicyParams params_;
    std::map<Key, PageHistory> history_;
};

}  // namespace disco::numad
