#include "numad/monitor_api.hpp"

#include <fmt/format.h>

#include <limits>
#include <numeric>

namespace disco::numad {

using json = nlohmann::json;

namespace {

inline constexpr const char* hot_pages_command = "__com.disco-project_hot-pages";
inline constexpr unsigned max_nodes = 1024;  // libnuma's MAX_NUMNODES is at most this

/// Thrown only inside this file, by the field readers below, and turned into a ClientError
/// by the parse functions: a reply is either read in full or rejected.
struct BadReply {
    std::string what;
};

const json& field(const json& object, const char* name, const char* where) {
    if (!object.is_object()) throw BadReply{fmt::format("{} is not an object", where)};
    auto it = object.find(name);
    if (it == object.end()) throw BadReply{fmt::format("{} lacks '{}'", where, name)};
    return *it;
}

std::uint64_t unsigned_field(const json& object, const char* name, const char* where,
                             std::uint64_t max = std::numeric_limits<std::uint64_t>::max()) {
    const json& v = field(object, name, where);
    if (!v.is_number_unsigned()) throw BadReply{fmt::format("{}: '{}' is not a non-negative integer", where, name)};
    const auto value = v.get<std::uint64_t>();
    if (value > max) throw BadReply{fmt::format("{}: '{}' is {} (at most {})", where, name, value, max)};
    return value;
}

bool bool_field(const json& object, const char* name, const char* where) {
    const json& v = field(object, name, where);
    if (!v.is_boolean()) throw BadReply{fmt::format("{}: '{}' is not a boolean", where, name)};
    return v.get<bool>();
}

std::string string_field(const json& object, const char* name, const char* where) {
    const json& v = field(object, name, where);
    if (!v.is_string()) throw BadReply{fmt::format("{}: '{}' is not a string", where, name)};
    return v.get<std::string>();
}

const json& array_field(const json& object, const char* name, const char* where) {
    const json& v = field(object, name, where);
    if (!v.is_array()) throw BadReply{fmt::format("{}: '{}' is not an array", where, name)};
    return v;
}

PageState page_state(const std::string& s) {
    if (s == "private") return PageState::private_page;
    if (s == "replicated") return PageState::replicated;
    if (s == "shared") return PageState::shared;
    if (s == "moving") return PageState::moving;
    throw BadReply{fmt::format("page: unknown state '{}'", s)};
}

HotPage parse_page(const json& p, unsigned nodes) {
    HotPage page;
    page.vm = string_field(p, "vm", "page");
    page.gpa = unsigned_field(p, "gpa", "page");
    page.home = static_cast<unsigned>(unsigned_field(p, "home", "page", nodes - 1));
    page.state = page_state(string_field(p, "state", "page"));
    page.written = bool_field(p, "written", "page");
    const json& counts = array_field(p, "counts", "page");
    if (counts.size() != nodes)
        throw BadReply{
            fmt::format("page {:#x} of '{}' has {} counts for {} nodes", page.gpa, page.vm, counts.size(), nodes)};
    for (const json& c : counts) {
        if (!c.is_number_unsigned() || c.get<std::uint64_t>() > std::numeric_limits<std::uint32_t>::max())
            throw BadReply{
                fmt::format("page {:#x} of '{}': a count is not a 32-bit unsigned integer", page.gpa, page.vm)};
        page.counts.push_back(c.get<std::uint32_t>());
    }
    page.total = unsigned_field(p, "total", "page");
    const auto sum = std::accumulate(page.counts.begin(), page.counts.end(), std::uint64_t{0});
    if (page.total != sum)
        throw BadReply{fmt::format("page {:#x} of '{}': total {} is not the sum of its counts {}", page.gpa, page.vm,
                                   page.total, sum)};
    return page;
}

ClientError bad_reply(const char* command, const std::string& what) {
    return ClientError{ClientError::Kind::protocol, fmt::format("{}: unexpected reply: {}", command, what), {}};
}

}  // namespace

Result<HotPageBatch, ClientError> parse_hot_pages(const json& reply) {
    try {
        HotPageBatch batch;
        batch.nodes = static_cast<unsigned>(unsigned_field(reply, "nodes", "reply", max_nodes));
        // 0 nodes: the monitor has no machine memory yet (no VM has started); then no pages.
        batch.simulated = bool_field(reply, "simulated", "reply");
        const json& accesses = field(reply, "accesses", "reply");
        batch.local = unsigned_field(accesses, "local", "accesses");
        batch.remote = unsigned_field(accesses, "remote", "accesses");
        for (const json& v : array_field(reply, "vms", "reply")) {
            batch.vms.push_back(VmAccesses{string_field(v, "name", "vm"), unsigned_field(v, "local", "vm"),
                                           unsigned_field(v, "remote", "vm")});
        }
        const json& pages = array_field(reply, "pages", "reply");
        if (batch.nodes == 0 && !pages.empty()) throw BadReply{"reply: pages on 0 nodes"};
        for (const json& p : pages) batch.pages.push_back(parse_page(p, batch.nodes));
        return batch;
    } catch (const BadReply& e) {
        return fail(bad_reply(hot_pages_command, e.what));
    } catch (const json::exception& e) {
        return fail(bad_reply(hot_pages_command, e.what()));
    }
}

Result<HotPageBatch, ClientError> pull_hot_pages(MonitorClient& client, unsigned limit, bool reset) {
    const json reply = DISCO_TRY(client.execute(hot_pages_command, {{"limit", limit}, {"reset", reset}}));
    return parse_hot_pages(reply);
}

Result<unsigned, ClientError> migrate_page(MonitorClient& client, const std::string& vm, std::uint64_t gpa,
                                           unsigned node) {
    static constexpr const char* command = "__com.disco-project_page-migrate";
    const json reply = DISCO_TRY(client.execute(command, {{"vm", vm}, {"gpa", gpa}, {"node", node}}));
    try {
        return static_cast<unsigned>(unsigned_field(reply, "node", "reply", max_nodes));
    } catch (const BadReply& e) {
        return fail(bad_reply(command, e.what));
    }
}

Result<std::vector<std::pair<std::uint64_t, std::string>>, ClientError> migrate_pages(
    MonitorClient& client, const std::string& vm, const std::vector<std::uint64_t>& gpas, unsigned node) {
    static constexpr const char* command = "__com.disco-project_pages-migrate";
    const json reply = DISCO_TRY(client.execute(command, {{"vm", vm}, {"gpas", gpas}, {"node", node}}));
    try {
        std::vector<std::pair<std::uint64_t, std::string>> refused;
        for (const json& f : array_field(reply, "failed", "reply")) {
            if (!f.is_object() || !f.contains("gpa") || !f["gpa"].is_number_unsigned() || !f.contains("desc") ||
                !f["desc"].is_string())
                throw BadReply{"a failed entry is not {gpa, desc}"};
            refused.emplace_back(f["gpa"].get<std::uint64_t>(), f["desc"].get<std::string>());
        }
        (void)array_field(reply, "migrated", "reply");
        return refused;
    } catch (const BadReply& e) {
        return fail(bad_reply(command, e.what));
    }
}

Result<ResolvedSamples, ClientError> parse_resolved(const json& reply) {
    static constexpr const char* command = "__com.disco-project_resolve-addresses";
    try {
        ResolvedSamples r;
        for (const json& p : array_field(reply, "pages", "reply")) {
            ResolvedPage page;
            page.vm = string_field(p, "vm", "page");
            page.gpa = unsigned_field(p, "gpa", "page");
            page.node = static_cast<unsigned>(unsigned_field(p, "node", "page", max_nodes - 1));
            page.state = page_state(string_field(p, "state", "page"));
            if (p.contains("accessor_node"))
                page.accessor_node = static_cast<unsigned>(unsigned_field(p, "accessor_node", "page", max_nodes - 1));
            r.pages.push_back(std::move(page));
        }
        r.unresolved = unsigned_field(reply, "unresolved", "reply");
        return r;
    } catch (const BadReply& e) {
        return fail(bad_reply(command, e.what));
    } catch (const json::exception& e) {
        return fail(bad_reply(command, e.what()));
    }
}

Result<ResolvedSamples, ClientError> resolve_addresses(MonitorClient& client, std::span<const PerfSample> samples) {
    json batch = json::array();
    for (const PerfSample& s : samples) {
        json sample = {{"addr", s.addr}};
        if (s.tid > 0) sample["tid"] = s.tid;
        batch.push_back(std::move(sample));
    }
    const json reply = DISCO_TRY(client.execute("__com.disco-project_resolve-addresses", {{"samples", batch}}));
    return parse_resolved(reply);
}

Result<std::vector<unsigned>, ClientError> replicate_page(MonitorClient& client, const std::string& vm,
                                                          std::uint64_t gpa) {
    static constexpr const char* command = "__com.disco-project_page-replicate";
    const json reply = DISCO_TRY(client.execute(command, {{"vm", vm}, {"gpa", gpa}}));
    try {
        std::vector<unsigned> nodes;
        for (const json& n : array_field(reply, "nodes", "reply")) {
            if (!n.is_number_unsigned() || n.get<std::uint64_t>() >= max_nodes)
                throw BadReply{"a node is not a node number"};
            nodes.push_back(n.get<unsigned>());
        }
        return nodes;
    } catch (const BadReply& e) {
        return fail(bad_reply(command, e.what));
    }
}

}  // namespace disco::numad
