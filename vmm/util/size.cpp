#include "vmm/util/size.hpp"

#include <fmt/format.h>

#include <cctype>
#include <charconv>

namespace disco {
Result<u64, Error> parse_size(std::string_view text) {
    u64 value = 0;
    const char* first = text.data();
    const char* last = text.data() + text.size();
    auto [end, ec] = std::from_chars(first, last, value);
    if (ec != std::errc() || end == first)
        return fail(Error{fmt::format("'{}' is not a size (use e.g. 512M or 2G)", text)});
    std::string_view suffix(end, static_cast<usize>(last - end));
    unsigned shift = 20;  // a bare number is MiB, as in QEMU's -m
    if (!suffix.empty()) {
        switch (std::toupper(static_cast<unsigned char>(suffix[0]))) {
            case 'K':
                shift = 10;
                break;
            case 'M':
                shift = 20;
                break;
            case 'G':
                shift = 30;
                break;
            case 'T':
                shift = 40;
                break;
            case 'B':
                shift = 0;
                break;
            default:
                return fail(Error{fmt::format("'{}' has an unknown size suffix (use K, M, G or T)", text)});
        }
        suffix.remove_prefix(1);
        if (!suffix.empty() && shift != 0 && (suffix == "B" || suffix == "b" || suffix == "iB" || suffix == "ib"))
            suffix = {};
        if (!suffix.empty())
            return fail(Error{fmt::format("'{}' has an unknown size suffix (use K, M, G or T)", text)});
    }
    if (value > (~0ull >> shift)) return fail(Error{fmt::format("size '{}' is too large", text)});
    return value << shift;
}
}  // namespace disco
