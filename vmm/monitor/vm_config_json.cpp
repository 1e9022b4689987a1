#include "vmm/monitor/vm_config_json.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>

#include "vmm/board/virt.hpp"
#include "vmm/util/size.hpp"

namespace disco::monitor {
namespace {
using nlohmann::json;
namespace fs = std::filesystem;

constexpr unsigned kMaxBareMetalCpus = 64;  // what Vm::build_baremetal accepts
constexpr usize kMaxNameLength = 32;
constexpr usize kMaxShownValue = 40;

constexpr const char* kVmFields[] = {"name",  "kernel",  "initrd",  "append", "memory",    "smp",
                                     "disks", "machine", "console", "reboot", "max_insns", "access_counters"};
constexpr const char* kDiskFields[] = {"path", "readonly", "overlay"};
constexpr const char* kConsoleFields[] = {"log", "pty"};

/// A value as the user wrote it, cut short if long, for "got ..." in messages.
std::string shown(const json& value) {
    std::string text = value.dump();
    if (text.size() > kMaxShownValue) text = text.substr(0, kMaxShownValue - 3) + "...";
    return text;
}

template <usize N>
std::string joined(const char* const (&names)[N]) {
    std::string out;
    for (const char* n : names) out += (out.empty() ? "" : ", ") + std::string(n);
    return out;
}

template <usize N>
bool known(const char* const (&names)[N], const std::string& key) {
    return std::ranges::any_of(names, [&](const char* n) { return key == n; });
}

bool valid_name(const std::string& name) {
    if (name.empty() || name.size() > kMaxNameLength) return false;
    return std::ranges::all_of(
        name, [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'; });
}

/// Reads the fields of one VM object; every message names the file and the
/// field's full path inside it.
class VmReader {
public:
    VmReader(const std::string& label, std::string prefix, const fs::path& base_dir)
        : label_(label), prefix_(std::move(prefix)), base_dir_(base_dir) {}

    Result<VmDefinition, Error> read(const json& vm) const {
        if (!vm.is_object()) {
            const std::string where =
                prefix_.empty() ? "" : fmt::format(" at {}", prefix_.substr(0, prefix_.size() - 1));
            return fail(Error{fmt::format("{}: expected a VM (a JSON object){}, got {}", label_, where, shown(vm))});
        }
        DISCO_TRY(reject_unknown(vm, kVmFields, ""));
        VmDefinition def;
        def.source = label_;
        def.field_prefix = prefix_;
        VmConfig& c = def.config;

        auto name = DISCO_TRY(required_string(vm, "name"));
        if (!valid_name(name))
            return bad("name", fmt::format("expected 1 to {} characters from a-z, 0-9, '-' and '_', got {}",
                                           kMaxNameLength, shown(vm["name"])));
        def.name = std::move(name);

        if (const json* m = find(vm, "machine")) {
            if (*m == "virt")
                c.machine = Machine::Virt;
            else if (*m == "baremetal")
                c.machine = Machine::BareMetal;
            else
                return bad("machine", fmt::format("expected \"virt\" or \"baremetal\", got {}", shown(*m)));
        }
        const bool virt = c.machine == Machine::Virt;

        for (const char* virt_only : {"initrd", "append", "disks"})
            if (!virt && find(vm, virt_only))
                return bad(virt_only,
                           "needs \"machine\": \"virt\" (the bare-metal board has no initrd, command "
                           "line or disks)");
        c.kernel = DISCO_TRY(required_path(vm, "kernel"));
        if (find(vm, "initrd")) c.initrd = DISCO_TRY(path_field(vm, "initrd"));
        if (const json* a = find(vm, "append")) {
            if (!a->is_string()) return bad("append", fmt::format("expected a string, got {}", shown(*a)));
            c.cmdline = a->get<std::string>();
        }

        // The same defaults as `disco run`'s --memory.
        c.memory_bytes = virt ? 256ull << 20 : 64ull << 20;
        if (const json* m = find(vm, "memory")) {
            if (!m->is_string())
                return bad("memory", fmt::format("expected a size such as \"256M\" or \"2G\", got {}", shown(*m)));
            auto bytes = parse_size(m->get<std::string>());
            if (!bytes) return bad("memory", bytes.error().message);
            c.memory_bytes = *bytes;
        }

        if (const json* s = find(vm, "smp")) {
            const unsigned max = virt ? board::kMaxCpus : kMaxBareMetalCpus;
            if (!s->is_number_unsigned() || s->get<u64>() < 1 || s->get<u64>() > max)
                return bad("smp", fmt::format("expected an integer from 1 to {}, got {}", max, shown(*s)));
            c.smp = s->get<unsigned>();
        }

        if (const json* d = find(vm, "disks")) c.disks = DISCO_TRY(disks(*d));

        if (const json* con = find(vm, "console")) def.console = DISCO_TRY(console(*con));

        if (const json* r = find(vm, "reboot")) {
            if (*r == "restart")
                def.reboot = RebootPolicy::Restart;
            else if (*r == "exit")
                def.reboot = RebootPolicy::Exit;
            else
                return bad("reboot", fmt::format("expected \"restart\" or \"exit\", got {}", shown(*r)));
        }

        if (const json* n = find(vm, "max_insns")) {
            if (!n->is_number_unsigned())
                return bad("max_insns", fmt::format("expected a whole number (0: no limit), got {}", shown(*n)));
            c.max_insns = n->get<u64>();
        }

        if (const json* a = find(vm, "access_counters")) {
            if (!a->is_boolean())
                return bad("access_counters", fmt::format("expected true or false, got {}", shown(*a)));
            c.access_counters = a->get<bool>();
        }
        return def;
    }

private:
    std::unexpected<Error> bad(std::string_view field, std::string_view reason) const {
        return fail(Error{fmt::format("{}: field \"{}{}\": {}", label_, prefix_, field, reason)});
    }

    static const json* find(const json& object, const char* key) {
        const auto it = object.find(key);
        return it == object.end() ? nullptr : &*it;
    }

    /// `scope` is the field path of `object` ("" for the VM itself).
    template <usize N>
    Result<void, Error> reject_unknown(const json& object, const char* const (&names)[N],
                                       std::string_view scope) const {
        for (const auto& [key, value] : object.items())
            if (!known(names, key))
                return bad(fmt::format("{}{}", scope, key), fmt::format("unknown field (known: {})", joined(names)));
        return {};
    }

    Result<std::string, Error> required_string(const json& vm, const char* field) const {
        const json* v = find(vm, field);
        if (!v) return bad(field, "required");
        if (!v->is_string()) return bad(field, fmt::format("expected a string, got {}", shown(*v)));
        return v->get<std::string>();
    }

    Result<std::string, Error> required_path(const json& vm, const char* field) const {
        if (!find(vm, field)) return bad(field, "required");
        return path_field(vm, field);
    }

    /// A file name; a relative one is taken from the JSON file's folder.
    Result<std::string, Error> path_field(const json& object, std::string_view field, std::string_view key) const {
        const json* v = find(object, std::string(key).c_str());
        if (!v || !v->is_string() || v->get<std::string>().empty())
            return bad(field, fmt::format("expected a file name, got {}", v ? shown(*v) : "nothing"));
        return resolve(v->get<std::string>());
    }
    Result<std::string, Error> path_field(const json& vm, const char* field) const {
        return path_field(vm, field, field);
    }

    std::string resolve(const std::string& path) const {
        const fs::path p(path);
        return p.is_absolute() ? path : (base_dir_ / p).lexically_normal().string();
    }

    Result<std::vector<board::DiskSpec>, Error> disks(const json& list) const {
        constexpr const char* kShape = "{\"path\": FILE, \"readonly\": BOOL}";
        if (!list.is_array()) return bad("disks", fmt::format("expected an array of {}, got {}", kShape, shown(list)));
        std::vector<board::DiskSpec> out;
        for (usize i = 0; i < list.size(); ++i) {
            const json& d = list[i];
            const std::string field = fmt::format("disks[{}]", i);
            if (!d.is_object()) return bad(field, fmt::format("expected an object {}, got {}", kShape, shown(d)));
            DISCO_TRY(reject_unknown(d, kDiskFields, field + "."));
            board::DiskSpec disk;
            if (!find(d, "path")) return bad(field + ".path", "required");
            disk.path = DISCO_TRY(path_field(d, field + ".path", "path"));
            if (const json* ro = find(d, "readonly")) {
                if (!ro->is_boolean())
                    return bad(field + ".readonly", fmt::format("expected true or false, got {}", shown(*ro)));
                disk.read_only = ro->get<bool>();
            }
            // "overlay": FILE makes "path" the read-only base (configs/disk-overlay-format.md).
            if (find(d, "overlay")) disk.overlay = DISCO_TRY(path_field(d, field + ".overlay", "overlay"));
            out.push_back(std::move(disk));
        }
        return out;
    }

    Result<ConsoleSpec, Error> console(const json& con) const {
        constexpr const char* kShape = "expected \"stdio\", {\"log\": FILE} or {\"pty\": true}";
        ConsoleSpec spec;
        if (con == "stdio") return spec;
        if (!con.is_object() || con.empty()) return bad("console", fmt::format("{}, got {}", kShape, shown(con)));
        DISCO_TRY(reject_unknown(con, kConsoleFields, "console."));
        if (con.size() != 1) return bad("console", "expected one of \"log\" or \"pty\", got both");
        if (const json* pty = find(con, "pty")) {
            if (*pty != true)
                return bad(
                    "console.pty",
                    fmt::format("expected true (for no console, use {{\"log\": \"/dev/null\"}}), got {}", shown(*pty)));
            spec.kind = ConsoleSpec::Kind::Pty;
            return spec;
        }
        spec.kind = ConsoleSpec::Kind::Log;
        spec.log_path = DISCO_TRY(path_field(con, "console.log", "log"));
        return spec;
    }

    const std::string& label_;
    std::string prefix_;
    const fs::path& base_dir_;
};

/// nlohmann keeps the last of two equal keys without a word; a parser
/// callback sees every key and notes the first repeat.
class DuplicateKeyCheck {
public:
    bool operator()(int, json::parse_event_t event, json& parsed) {
        switch (event) {
            case json::parse_event_t::object_start:
                keys_.emplace_back();
                break;
            case json::parse_event_t::object_end:
                if (!keys_.empty()) keys_.pop_back();
                break;
            case json::parse_event_t::key:
                if (!keys_.empty() && !keys_.back().insert(parsed.get<std::string>()).second && !duplicate_)
                    duplicate_ = parsed.get<std::string>();
                break;
            default:
                break;
        }
        return true;
    }
    std::optional<std::string> duplicate_;

private:
    std::vector<std::set<std::string>> keys_;
};

/// "[json.exception.parse_error.101] parse error at line 2, ..." without the tag.
std::string parse_message(const json::parse_error& e) {
    std::string what = e.what();
    if (const auto close = what.find("] "); what.starts_with("[json.exception") && close != std::string::npos)
        what = what.substr(close + 2);
    return what;
}

std::string names_in(const std::string& source, const std::string& prefix) {
    return prefix.empty() ? source : fmt::format("{} {}", source, prefix.substr(0, prefix.size() - 1));
}

Result<void, Error> check_unique_names(const std::vector<VmDefinition>& vms) {
    for (usize i = 0; i < vms.size(); ++i)
        for (usize j = 0; j < i; ++j)
            if (vms[i].name == vms[j].name)
                return fail(
                    Error{fmt::format("{}: field \"{}name\": \"{}\" is already used by {}", vms[i].source,
                                      vms[i].field_prefix, vms[i].name, names_in(vms[j].source, vms[j].field_prefix))});
    return {};
}
}  // namespace

Result<std::vector<VmDefinition>, Error> parse_vm_json(std::string_view text, const std::string& label,
                                                       const std::filesystem::path& base_dir) {
    DuplicateKeyCheck duplicates;
    json doc;
    try {
        doc = json::parse(text, std::ref(duplicates));
    } catch (const json::parse_error& e) {
        return fail(Error{fmt::format("{}: not valid JSON: {}", label, parse_message(e))});
    }
    if (duplicates.duplicate_)
        return fail(Error{fmt::format("{}: field \"{}\": given twice", label, *duplicates.duplicate_)});

    std::vector<VmDefinition> vms;
    if (!doc.is_object() || !doc.contains("vms")) {
        if (!doc.is_object())
            return fail(Error{fmt::format("{}: expected a VM (a JSON object) or a fleet ({{\"vms\": [...]}}), got {}",
                                          label, shown(doc))});
        vms.push_back(DISCO_TRY(VmReader(label, "", base_dir).read(doc)));
        return vms;
    }
    for (const auto& [key, value] : doc.items())
        if (key != "vms")
            return fail(
                Error{fmt::format("{}: field \"{}\": unknown field (a fleet file holds only \"vms\")", label, key)});
    const json& list = doc["vms"];
    if (!list.is_array() || list.empty())
        return fail(
            Error{fmt::format("{}: field \"vms\": expected a non-empty array of VMs, got {}", label, shown(list))});
    for (usize i = 0; i < list.size(); ++i)
        vms.push_back(DISCO_TRY(VmReader(label, fmt::format("vms[{}].", i), base_dir).read(list[i])));
    DISCO_TRY(check_unique_names(vms));
    return vms;
}

Result<std::vector<VmDefinition>, Error> load_vm_file(const std::string& path) {
    std::error_code ec;
    if (fs::is_directory(path, ec)) return fail(Error{fmt::format("{}: cannot read: it is a folder", path)});
    std::ifstream in(path, std::ios::binary);
    if (!in) return fail(Error{fmt::format("{}: cannot read: {}", path, std::strerror(errno))});
    std::ostringstream text;
    text << in.rdbuf();
    if (in.bad()) return fail(Error{fmt::format("{}: cannot read: {}", path, std::strerror(errno))});
    const fs::path absolute = fs::absolute(path, ec);
    return parse_vm_json(text.str(), path, ec ? fs::path(path).parent_path() : absolute.parent_path());
}

Result<std::vector<VmDefinition>, Error> load_vm_files(const std::vector<std::string>& paths) {
    std::vector<VmDefinition> all;
    for (const auto& path : paths) {
        auto vms = DISCO_TRY(load_vm_file(path));
        std::ranges::move(vms, std::back_inserter(all));
    }
    DISCO_TRY(check_unique_names(all));
    return all;
}
}  // namespace disco::monitor
