#include "vmm/mem/mmio.hpp"

#include <fmt/format.h>

namespace disco {
namespace {
thread_local unsigned t_current_vcpu = 0;
}
unsigned current_vcpu() { return t_current_vcpu; }
void set_current_vcpu(unsigned index) { t_current_vcpu = index; }

Result<void, Error> MmioBus::add(GuestPhysAddr base, u64 len, std::shared_ptr<MmioDevice> dev) {
    if (len == 0 || base.value + len < base.value)
        return fail(Error{fmt::format("device {}: empty or overflowing MMIO range at {:#x}", dev->name(), base.value)});
    auto next = ranges_.lower_bound(base.value);
    if (next != ranges_.end() && next->first < base.value + len)
        return fail(
            Error{fmt::format("device {} at {:#x} overlaps {}", dev->name(), base.value, next->second.dev->name())});
    if (next != ranges_.begin()) {
        auto prev = std::prev(next);
        if (prev->first + prev->second.len > base.value)
            return fail(Error{
                fmt::format("device {} at {:#x} overlaps {}", dev->name(), base.value, prev->second.dev->name())});
    }
    ranges_.emplace(base.value, Range{len, std::move(dev)});
    return {};
}

std::optional<MmioBus::Hit> MmioBus::find(GuestPhysAddr a, unsigned size) const {
    auto it = ranges_.upper_bound(a.value);
    if (it == ranges_.begin()) return std::nullopt;
    --it;
    const u64 off = a.value - it->first;
    if (off >= it->second.len || size > it->second.len - off) return std::nullopt;
    return Hit{it->second.dev.get(), off};
}
}  // namespace disco
