// VM definition files (configs/vm-schema.md): every field, the defaults, path
// resolution, and the one-line message for each kind of mistake.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "vmm/monitor/vm_config_json.hpp"

using namespace disco;
using namespace disco::monitor;
namespace fs = std::filesystem;

namespace {
const fs::path kBase = "/srv/vms";

VmDefinition parse_one(const std::string& text) {
    auto vms = parse_vm_json(text, "vm1.json", kBase);
    INFO(text);
    if (!vms) FAIL(vms.error().message);
    REQUIRE(vms->size() == 1);
    return (*vms)[0];
}

/// The message for `text`; the test fails if it parses.
std::string error_of(const std::string& text, const std::string& label = "vm1.json") {
    auto vms = parse_vm_json(text, label, kBase);
    INFO(text);
    REQUIRE_FALSE(vms.has_value());
    // One line, so that `disco run` prints exactly one.
    CHECK(vms.error().message.find('\n') == std::string::npos);
    return vms.error().message;
}

/// A minimal valid VM with one more field (a JSON fragment, or "").
std::string vm_with(const std::string& extra) {
    return R"({"name": "web", "kernel": "vmlinuz")" + (extra.empty() ? "" : ", " + extra) + "}";
}

/// A folder of its own, removed at the end.
struct TempDir {
    fs::path path;
    TempDir() {
        char tmpl[] = "/tmp/disco-vmjson-XXXXXX";
        REQUIRE(::mkdtemp(tmpl) != nullptr);
        path = tmpl;
    }
    ~TempDir() { fs::remove_all(path); }
    fs::path write(const std::string& name, const std::string& text) const {
        std::ofstream(path / name) << text;
        return path / name;
    }
};
}  // namespace

TEST_CASE("a minimal VM gets the defaults of `disco run`", "[vm-config]") {
    const VmDefinition vm = parse_one(vm_with(""));
    CHECK(vm.name == "web");
    CHECK(vm.config.kernel == "/srv/vms/vmlinuz");
    CHECK(vm.config.machine == Machine::Virt);
    CHECK(vm.config.memory_bytes == 256ull << 20);
    CHECK(vm.config.smp == 1);
    CHECK(vm.config.initrd.empty());
    CHECK(vm.config.cmdline.empty());
    CHECK(vm.config.disks.empty());
    CHECK(vm.config.max_insns == 0);
    CHECK(vm.config.access_counters);
    CHECK(vm.console.kind == ConsoleSpec::Kind::Stdio);
    CHECK(vm.reboot == RebootPolicy::Restart);
    CHECK(vm.source == "vm1.json");
    CHECK(vm.field_prefix.empty());
    CHECK_FALSE(vm.config.console_out);
}

TEST_CASE("every field of a VM is read", "[vm-config]") {
    const VmDefinition vm = parse_one(R"({
        "name": "db-2_x",
        "kernel": "/boot/vmlinuz",
        "initrd": "images/initramfs.cpio.gz",
        "append": "console=ttyS0 disco.run=\"echo hi\"",
        "memory": "1G",
        "smp": 4,
        "disks": [{"path": "root.img"}, {"path": "/data/base.img", "readonly": true}, {"path": "x.img", "readonly": false}],
        "machine": "virt",
        "console": {"log": "logs/db.log"},
        "reboot": "exit",
        "max_insns": 123456789012,
        "access_counters": false
    })");
    CHECK(vm.name == "db-2_x");
    CHECK(vm.config.kernel == "/boot/vmlinuz");
    CHECK(vm.config.initrd == "/srv/vms/images/initramfs.cpio.gz");
    CHECK(vm.config.cmdline == "console=ttyS0 disco.run=\"echo hi\"");
    CHECK(vm.config.memory_bytes == 1ull << 30);
    CHECK(vm.config.smp == 4);
    REQUIRE(vm.config.disks.size() == 3);
    CHECK(vm.config.disks[0].path == "/srv/vms/root.img");
    CHECK_FALSE(vm.config.disks[0].read_only);
    CHECK(vm.config.disks[1].path == "/data/base.img");
    CHECK(vm.config.disks[1].read_only);
    CHECK_FALSE(vm.config.disks[2].read_only);
    CHECK(vm.console.kind == ConsoleSpec::Kind::Log);
    CHECK(vm.console.log_path == "/srv/vms/logs/db.log");
    CHECK(vm.reboot == RebootPolicy::Exit);
    CHECK(vm.config.max_insns == 123456789012ull);
    CHECK_FALSE(vm.config.access_counters);
}

TEST_CASE("machine, console and reboot take each of their values", "[vm-config]") {
    const VmDefinition bare = parse_one(vm_with(R"("machine": "baremetal", "smp": 64)"));
    CHECK(bare.config.machine == Machine::BareMetal);
    CHECK(bare.config.memory_bytes == 64ull << 20);  // the bare-metal default, as --memory's
    CHECK(bare.config.smp == 64);
    CHECK(parse_one(vm_with(R"("console": "stdio")")).console.kind == ConsoleSpec::Kind::Stdio);
    CHECK(parse_one(vm_with(R"("console": {"pty": true})")).console.kind == ConsoleSpec::Kind::Pty);
    CHECK(parse_one(vm_with(R"("reboot": "restart")")).reboot == RebootPolicy::Restart);
    CHECK(parse_one(vm_with(R"("memory": "512")")).config.memory_bytes == 512ull << 20);
}

TEST_CASE("relative paths resolve against the JSON file's folder", "[vm-config]") {
    CHECK(parse_one(vm_with(R"("initrd": "../images/./initrd.gz")")).config.initrd == "/srv/images/initrd.gz");

    TempDir dir;
    fs::create_directories(dir.path / "sub");
    dir.write("sub/vm.json", R"({"name": "a", "kernel": "k.elf", "disks": [{"path": "d.img"}],
                                 "console": {"log": "../a.log"}})");
    // Named relative to the working directory, the way a user types it.
    const fs::path old_cwd = fs::current_path();
    fs::current_path(dir.path);
    auto vms = load_vm_file("sub/vm.json");
    fs::current_path(old_cwd);
    REQUIRE(vms.has_value());
    const VmDefinition& vm = (*vms)[0];
    CHECK(vm.config.kernel == (dir.path / "sub/k.elf").string());
    CHECK(vm.config.disks.at(0).path == (dir.path / "sub/d.img").string());
    CHECK(vm.console.log_path == (dir.path / "a.log").string());
    CHECK(vm.source == "sub/vm.json");
}

TEST_CASE("a fleet file holds several VMs", "[vm-config]") {
    auto vms = parse_vm_json(R"({"vms": [{"name": "a", "kernel": "ka"}, {"name": "b", "kernel": "kb", "smp": 2}]})",
                             "fleet.json", kBase);
    REQUIRE(vms.has_value());
    REQUIRE(vms->size() == 2);
    CHECK((*vms)[0].name == "a");
    CHECK((*vms)[1].config.kernel == "/srv/vms/kb");
    CHECK((*vms)[1].config.smp == 2);
    CHECK((*vms)[1].field_prefix == "vms[1].");

    CHECK(error_of(R"({"vms": [{"name": "a", "kernel": "k"}, {"name": "a", "kernel": "k"}]})", "fleet.json") ==
          R"(fleet.json: field "vms[1].name": "a" is already used by fleet.json vms[0])");
    CHECK(error_of(R"({"vms": [{"name": "a", "kernel": "k"}, {"name": "b", "smp": "two", "kernel": "k"}]})",
                   "fleet.json") == R"(fleet.json: field "vms[1].smp": expected an integer from 1 to 16, got "two")");
    CHECK(error_of(R"({"vms": []})") == R"(vm1.json: field "vms": expected a non-empty array of VMs, got [])");
    CHECK(error_of(R"({"vms": [3]})") == R"(vm1.json: expected a VM (a JSON object) at vms[0], got 3)");
    CHECK(error_of(R"({"vms": [], "name": "x"})") ==
          R"(vm1.json: field "name": unknown field (a fleet file holds only "vms"))");
}

TEST_CASE("each field's bad values are named with the file, the field and the reason", "[vm-config]") {
    // The example of the issue, exactly.
    CHECK(error_of(vm_with(R"("smp": "four")")) ==
          R"(vm1.json: field "smp": expected an integer from 1 to 16, got "four")");
    CHECK(error_of(vm_with(R"("smp": 0)")) == R"(vm1.json: field "smp": expected an integer from 1 to 16, got 0)");
    CHECK(error_of(vm_with(R"("smp": 17)")) == R"(vm1.json: field "smp": expected an integer from 1 to 16, got 17)");
    CHECK(error_of(vm_with(R"("smp": -1)")) == R"(vm1.json: field "smp": expected an integer from 1 to 16, got -1)");
    CHECK(error_of(vm_with(R"("smp": 2.5)")) == R"(vm1.json: field "smp": expected an integer from 1 to 16, got 2.5)");
    CHECK(error_of(vm_with(R"("machine": "baremetal", "smp": 65)")) ==
          R"(vm1.json: field "smp": expected an integer from 1 to 64, got 65)");

    const std::string name_rule = "expected 1 to 32 characters from a-z, 0-9, '-' and '_', got ";
    CHECK(error_of(R"({"name": "Web", "kernel": "k"})") == R"(vm1.json: field "name": )" + name_rule + R"("Web")");
    CHECK(error_of(R"({"name": "", "kernel": "k"})") == R"(vm1.json: field "name": )" + name_rule + R"("")");
    CHECK(error_of(R"({"name": "a b", "kernel": "k"})") == R"(vm1.json: field "name": )" + name_rule + R"("a b")");
    CHECK(error_of(R"({"name": "a/b", "kernel": "k"})") == R"(vm1.json: field "name": )" + name_rule + R"("a/b")");
    CHECK(parse_one(R"({"name": ")" + std::string(32, 'x') + R"(", "kernel": "k"})").name.size() == 32);
    CHECK(error_of(R"({"name": ")" + std::string(33, 'x') + R"(", "kernel": "k"})")
              .starts_with(R"(vm1.json: field "name": )" + name_rule));
    CHECK(error_of(R"({"name": 7, "kernel": "k"})") == R"(vm1.json: field "name": expected a string, got 7)");

    CHECK(error_of(R"({"name": "a", "kernel": ""})") == R"(vm1.json: field "kernel": expected a file name, got "")");
    CHECK(error_of(R"({"name": "a", "kernel": ["k"]})") ==
          R"(vm1.json: field "kernel": expected a file name, got ["k"])");
    CHECK(error_of(vm_with(R"("initrd": false)")) == R"(vm1.json: field "initrd": expected a file name, got false)");
    CHECK(error_of(vm_with(R"("append": 1)")) == R"(vm1.json: field "append": expected a string, got 1)");

    CHECK(error_of(vm_with(R"("memory": 256)")) ==
          R"(vm1.json: field "memory": expected a size such as "256M" or "2G", got 256)");
    CHECK(error_of(vm_with(R"("memory": "lots")")) ==
          R"(vm1.json: field "memory": 'lots' is not a size (use e.g. 512M or 2G))");
    CHECK(error_of(vm_with(R"("memory": "12Q")")) ==
          R"(vm1.json: field "memory": '12Q' has an unknown size suffix (use K, M, G or T))");

    CHECK(error_of(vm_with(R"("machine": "malta")")) ==
          R"(vm1.json: field "machine": expected "virt" or "baremetal", got "malta")");
    CHECK(error_of(vm_with(R"("reboot": "never")")) ==
          R"(vm1.json: field "reboot": expected "restart" or "exit", got "never")");
    CHECK(error_of(vm_with(R"("max_insns": -5)")) ==
          R"(vm1.json: field "max_insns": expected a whole number (0: no limit), got -5)");
    CHECK(error_of(vm_with(R"("max_insns": "1000")")) ==
          R"(vm1.json: field "max_insns": expected a whole number (0: no limit), got "1000")");
    CHECK(error_of(vm_with(R"("access_counters": "off")")) ==
          R"(vm1.json: field "access_counters": expected true or false, got "off")");
}

TEST_CASE("disks are checked entry by entry", "[vm-config]") {
    const std::string shape = R"({"path": FILE, "readonly": BOOL})";
    CHECK(error_of(vm_with(R"("disks": "a.img")")) ==
          R"(vm1.json: field "disks": expected an array of )" + shape + R"(, got "a.img")");
    CHECK(error_of(vm_with(R"("disks": [{"path": "a"}, "b.img"])")) ==
          R"(vm1.json: field "disks[1]": expected an object )" + shape + R"(, got "b.img")");
    CHECK(error_of(vm_with(R"("disks": [{"readonly": true}])")) == R"(vm1.json: field "disks[0].path": required)");
    CHECK(error_of(vm_with(R"("disks": [{"path": 3}])")) ==
          R"(vm1.json: field "disks[0].path": expected a file name, got 3)");
    CHECK(error_of(vm_with(R"("disks": [{"path": "a", "readonly": "yes"}])")) ==
          R"(vm1.json: field "disks[0].readonly": expected true or false, got "yes")");
    CHECK(error_of(vm_with(R"("disks": [{"path": "a", "cache": "none"}])")) ==
          R"(vm1.json: field "disks[0].cache": unknown field (known: path, readonly, overlay))");
    CHECK(parse_one(vm_with(R"("disks": [])")).config.disks.empty());
}

TEST_CASE("a disk with an overlay: the base and the overlay, both relative to the file", "[vm-config]") {
    const VmDefinition vm =
        parse_one(vm_with(R"("disks": [{"path": "../base.img", "overlay": "vm1.ovl"}, {"path": "x"}])"));
    REQUIRE(vm.config.disks.size() == 2);
    CHECK(vm.config.disks[0].path == "/srv/base.img");
    CHECK(vm.config.disks[0].overlay == "/srv/vms/vm1.ovl");
    CHECK_FALSE(vm.config.disks[0].read_only);
    CHECK(vm.config.disks[1].overlay.empty());
    CHECK(error_of(vm_with(R"("disks": [{"path": "a", "overlay": ""}])")) ==
          R"(vm1.json: field "disks[0].overlay": expected a file name, got "")");
    CHECK(error_of(vm_with(R"("disks": [{"path": "a", "overlay": true}])")) ==
          R"(vm1.json: field "disks[0].overlay": expected a file name, got true)");
}

TEST_CASE("the console is stdio, a log file or a pty, one of them", "[vm-config]") {
    const std::string shape = R"(expected "stdio", {"log": FILE} or {"pty": true}, got )";
    CHECK(error_of(vm_with(R"("console": "tty")")) == R"(vm1.json: field "console": )" + shape + R"("tty")");
    CHECK(error_of(vm_with(R"("console": {})")) == R"(vm1.json: field "console": )" + shape + "{}");
    CHECK(error_of(vm_with(R"("console": 1)")) == R"(vm1.json: field "console": )" + shape + "1");
    CHECK(error_of(vm_with(R"("console": {"log": "a", "pty": true})")) ==
          R"(vm1.json: field "console": expected one of "log" or "pty", got both)");
    CHECK(error_of(vm_with(R"("console": {"pty": false})")) ==
          R"(vm1.json: field "console.pty": expected true (for no console, use {"log": "/dev/null"}), got false)");
    CHECK(error_of(vm_with(R"("console": {"log": ""})")) ==
          R"(vm1.json: field "console.log": expected a file name, got "")");
    CHECK(error_of(vm_with(R"("console": {"file": "a"})")) ==
          R"(vm1.json: field "console.file": unknown field (known: log, pty))");
}

TEST_CASE("missing, unknown, repeated and misplaced fields are refused", "[vm-config]") {
    CHECK(error_of(R"({"kernel": "k"})") == R"(vm1.json: field "name": required)");
    CHECK(error_of(R"({"name": "a"})") == R"(vm1.json: field "kernel": required)");
    CHECK(error_of(vm_with(R"("memroy": "1G")")) ==
          R"(vm1.json: field "memroy": unknown field (known: name, kernel, initrd, append, memory, smp, disks, )"
          R"(machine, console, reboot, max_insns, access_counters))");
    CHECK(error_of(vm_with(R"("smp": 2, "smp": 3)")) == R"(vm1.json: field "smp": given twice)");
    for (const char* field : {R"("initrd": "i")", R"("append": "quiet")", R"("disks": [])"}) {
        const std::string message = error_of(vm_with(std::string(R"("machine": "baremetal", )") + field));
        CHECK(message.find(R"(needs "machine": "virt")") != std::string::npos);
        CHECK(message.starts_with(R"(vm1.json: field ")"));
    }
}

TEST_CASE("a file that is not a JSON object says so in one line", "[vm-config]") {
    CHECK(error_of("[1, 2]") == R"(vm1.json: expected a VM (a JSON object) or a fleet ({"vms": [...]}), got [1,2])");
    const std::string syntax = error_of(R"({"name": "a",})");
    CHECK(syntax.starts_with("vm1.json: not valid JSON: parse error at line 1"));
    CHECK(error_of("").starts_with("vm1.json: not valid JSON: "));
    // Long values are cut short in messages.
    const std::string long_value = error_of(vm_with(R"("append": [")" + std::string(200, 'y') + R"("])"));
    CHECK(long_value.size() < 120);
    CHECK(long_value.ends_with("..."));
}

TEST_CASE("files are read, and names are unique across them", "[vm-config]") {
    TempDir dir;
    const auto a = dir.write("a.json", R"({"name": "web", "kernel": "k"})").string();
    const auto b = dir.write("b.json", R"({"name": "db", "kernel": "k"})").string();
    const auto c = dir.write("c.json", R"({"name": "web", "kernel": "k"})").string();
    auto both = load_vm_files({a, b});
    REQUIRE(both.has_value());
    CHECK(both->size() == 2);
    CHECK(both->at(1).name == "db");

    auto clash = load_vm_files({a, b, c});
    REQUIRE_FALSE(clash.has_value());
    CHECK(clash.error().message == c + R"(: field "name": "web" is already used by )" + a);

    auto missing = load_vm_file((dir.path / "nope.json").string());
    REQUIRE_FALSE(missing.has_value());
    CHECK(missing.error().message == (dir.path / "nope.json").string() + ": cannot read: No such file or directory");
    auto folder = load_vm_file(dir.path.string());
    REQUIRE_FALSE(folder.has_value());
    CHECK(folder.error().message == dir.path.string() + ": cannot read: it is a folder");
}
