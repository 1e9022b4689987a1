// VM definitions from JSON files (configs/vm-schema.md is the schema): what
// `disco run --vm FILE.json` and the fleet read. A file holds one VM (an
// object with "name", "kernel", ...) or a fleet ({"vms": [VM, ...]}).
//
// Everything in the file is checked before any VM starts: an unknown field, a
// value of the wrong type or out of range, a field given twice, a missing
// required field or a name used twice is one error line naming the file, the
// field and the reason, e.g.
//   vm1.json: field "smp": expected an integer from 1 to 16, got "four"
// Whether the kernel, initrd and disks can be opened is left to Vm::create,
// which says so in its own words when the VM starts.
#pragma once
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "vmm/monitor/vm.hpp"
#include "vmm/util/result.hpp"

namespace disco::monitor {

/// Where a VM's console goes ("console" in the schema).
struct ConsoleSpec {
    enum class Kind {
        Stdio,  // the monitor's standard output (output only in a fleet)
        Log,    // appended to a file
        Pty,    // a pseudo-terminal the user attaches to (screen, picocom, ...)
    } kind = Kind::Stdio;
    std::string log_path;  // Kind::Log: already resolved against the file's folder
};

/// What a guest reboot does ("reboot" in the schema).
enum class RebootPolicy {
    Restart,  // a fresh VM from the same definition, as bare `disco run` does
    Exit,     // the VM ends with status 0, as `disco run --no-reboot` does
};

/// One VM as its JSON file defines it.
struct VmDefinition {
    std::string name;
    /// Paths are resolved; console_out is left empty (the fleet sets it).
    VmConfig config;
    ConsoleSpec console;
    RebootPolicy reboot = RebootPolicy::Restart;
    /// For messages: the file it came from, as given, and where in it
    /// ("" for a one-VM file, "vms[2]." in a fleet file).
    std::string source, field_prefix;
};

/// Parses JSON text. `label` names it in messages (the file name as the user
/// gave it); relative paths in it are resolved against `base_dir`.
Result<std::vector<VmDefinition>, Error> parse_vm_json(std::string_view text, const std::string& label,
                                                       const std::filesystem::path& base_dir);

/// Reads and parses one file; relative paths resolve against its folder.
Result<std::vector<VmDefinition>, Error> load_vm_file(const std::string& path);

/// Every VM of every file, in order; VM names must be unique across them.
Result<std::vector<VmDefinition>, Error> load_vm_files(const std::vector<std::string>& paths);
}  // namespace disco::monitor
