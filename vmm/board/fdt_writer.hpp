// A thin, checked wrapper over libfdt's sequential-write API (Debian's
// libfdt-dev): nodes are opened and closed in order, properties are written
// as big-endian cells as the devicetree specification (v0.4, §2.2.4) says.
// Every libfdt status is checked; the first failure sticks and is reported
// by finish(), so building code reads like the tree it builds.
#pragma once
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "vmm/util/result.hpp"
#include "vmm/util/types.hpp"

namespace disco::board {

class FdtWriter {
public:
    explicit FdtWriter(usize capacity = 64 * 1024);
    void begin_node(std::string_view name);
    void end_node();
    void prop_empty(std::string_view name);
    void prop_u32(std::string_view name, u32 value);
    void prop_u64(std::string_view name, u64 value);
    void prop_cells(std::string_view name, std::initializer_list<u32> cells);
    void prop_cells(std::string_view name, std::span<const u32> cells);
    void prop_string(std::string_view name, std::string_view value);
    /// A list of NUL-terminated strings (e.g. compatible = "a", "b").
    void prop_strings(std::string_view name, std::initializer_list<std::string_view> values);
    void prop_bytes(std::string_view name, std::span<const u8> bytes);
    /// A new phandle for a node: write it with prop_u32("phandle", ...) inside that node.
    u32 allocate_phandle() { return next_phandle_++; }

    /// The finished blob (packed), or the first libfdt error with the node it happened in.
    Result<std::vector<u8>, Error> finish();

private:
    void check(int status, std::string_view what);
    std::vector<u8> buf_;
    std::string error_;
    std::vector<std::string> path_;
    u32 next_phandle_ = 1;
    bool finished_ = false;
};
}  // namespace disco::board
