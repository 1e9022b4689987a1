// Parses sizes written the way QEMU users write them: "512" (MiB), "64M",
// "2G", "4096K", "1T"; case-insensitive suffix, optional trailing "B" / "iB".
#pragma once
#include <string_view>

#include "vmm/util/result.hpp"
#include "vmm/util/types.hpp"

namespace disco {
Result<u64, Error> parse_size(std::string_view text);
}
