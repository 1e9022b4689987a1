#include "vmm/dev/unimplemented.hpp"

#include <fmt/format.h>

#include <cstdio>

namespace disco::dev {
void UnimplementedRegisterLog::note(u64 offset, unsigned size, bool write) {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!seen_.insert(offset).second) return;
    }
    const std::string line =
        fmt::format("disco: {}: guest {} of unimplemented register at {:#x} (offset {:#x}, {} bytes); {} (logged once)\n",
                    device_, write ? "write" : "read", base_ + offset, offset, size,
                    write ? "ignored" : "reads as zero");
    std::fputs(line.c_str(), stderr);
}

usize UnimplementedRegisterLog::distinct() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return seen_.size();
}
}  // namespace disco::dev
