#include "vmm/board/fdt_writer.hpp"

#include <fmt/format.h>
#include <libfdt.h>

namespace disco::board {

FdtWriter::FdtWriter(usize capacity) : buf_(capacity) {
    check(fdt_create(buf_.data(), static_cast<int>(buf_.size())), "create");
    check(fdt_finish_reservemap(buf_.data()), "reserve map");
    check(fdt_begin_node(buf_.data(), ""), "root");
}

void FdtWriter::check(int status, std::string_view what) {
    if (status >= 0 || !error_.empty()) return;
    std::string where = "/";
    for (const auto& p : path_) where += p + "/";
    error_ = fmt::format("device tree: {} at {}: {}", what, where, fdt_strerror(status));
}

void FdtWriter::begin_node(std::string_view name) {
    const std::string n(name);
    check(fdt_begin_node(buf_.data(), n.c_str()), "node " + n);
    path_.push_back(n);
}

void FdtWriter::end_node() {
    check(fdt_end_node(buf_.data()), "end of node");
    if (!path_.empty()) path_.pop_back();
}

void FdtWriter::prop_empty(std::string_view name) { prop_bytes(name, {}); }

void FdtWriter::prop_u32(std::string_view name, u32 value) { prop_cells(name, {value}); }

void FdtWriter::prop_u64(std::string_view name, u64 value) {
    prop_cells(name, {static_cast<u32>(value >> 32), static_cast<u32>(value)});
}

void FdtWriter::prop_cells(std::string_view name, std::initializer_list<u32> cells) {
    prop_cells(name, std::span<const u32>(cells.begin(), cells.size()));
}

void FdtWriter::prop_cells(std::string_view name, std::span<const u32> cells) {
    std::vector<u8> bytes;
    bytes.reserve(cells.size() * 4);
    for (u32 c : cells)
        for (int shift = 24; shift >= 0; shift -= 8) bytes.push_back(static_cast<u8>(c >> shift));
    prop_bytes(name, bytes);
}

void FdtWriter::prop_string(std::string_view name, std::string_view value) { prop_strings(name, {value}); }

void FdtWriter::prop_strings(std::string_view name, std::initializer_list<std::string_view> values) {
    std::vector<u8> bytes;
    for (auto v : values) {
        bytes.insert(bytes.end(), v.begin(), v.end());
        bytes.push_back(0);
    }
    prop_bytes(name, bytes);
}

void FdtWriter::prop_bytes(std::string_view name, std::span<const u8> bytes) {
    const std::string n(name);
    check(fdt_property(buf_.data(), n.c_str(), bytes.data(), static_cast<int>(bytes.size())), "property " + n);
}

Result<std::vector<u8>, Error> FdtWriter::finish() {
    if (!finished_) {
        finished_ = true;
        check(fdt_end_node(buf_.data()), "root end");
        check(fdt_finish(buf_.data()), "finish");
        if (error_.empty()) check(fdt_pack(buf_.data()), "pack");
    }
    if (!error_.empty()) return fail(Error{error_});
    if (!path_.empty()) return fail(Error{"device tree: unbalanced nodes"});
    buf_.resize(fdt_totalsize(buf_.data()));
    return buf_;
}
}  // namespace disco::board
