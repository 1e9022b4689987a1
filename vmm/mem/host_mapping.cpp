#include "vmm/mem/host_mapping.hpp"

#include <fmt/format.h>
#include <numaif.h>
#include <sys/mman.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "vmm/mem/address.hpp"

namespace disco {

Result<HostMapping, MemoryError> HostMapping::map(u64 bytes, int flags, int fd) {
    if (bytes > ~0ull - kPageSize)
        return fail(MemoryError{MemoryError::Kind::InvalidConfig, fmt::format("cannot map {} bytes", bytes)});
    const u64 size = (bytes + kPageSize - 1) & ~(kPageSize - 1);
    void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, flags | MAP_NORESERVE, fd, 0);
    if (p == MAP_FAILED)
        return fail(MemoryError{MemoryError::Kind::HostMapping,
                                fmt::format("cannot reserve {} MiB of host address space for machine memory: {}",
                                            size >> 20, std::strerror(errno))});
    return HostMapping(static_cast<u8*>(p), size);
}

Result<HostMapping, MemoryError> HostMapping::reserve(u64 bytes) {
    if (bytes == 0) return HostMapping();
    return map(bytes, MAP_PRIVATE | MAP_ANONYMOUS, -1);
}

Result<HostMapping, MemoryError> HostMapping::map_shared(int fd, u64 bytes) {
    if (bytes == 0) return HostMapping();
    return map(bytes, MAP_SHARED, fd);
}

HostMapping& HostMapping::operator=(HostMapping&& o) noexcept {
    if (this != &o) {
        if (base_) munmap(base_, size_);
        base_ = std::exchange(o.base_, nullptr);
        size_ = std::exchange(o.size_, 0);
    }
    return *this;
}

HostMapping::~HostMapping() {
    if (base_) munmap(base_, size_);
}

Result<void, MemoryError> HostMapping::bind_to_node(u64 offset, u64 len, int host_node) {
    if (host_node < 0 || offset > size_ || len > size_ - offset || ((offset | len) & (kPageSize - 1)))
        return fail(MemoryError{MemoryError::Kind::InvalidConfig,
                                fmt::format("cannot bind {:#x}+{:#x} of a {:#x}-byte mapping to host node {}", offset,
                                            len, size_, host_node)});
    if (len == 0) return {};
    constexpr unsigned kBitsPerWord = 8 * sizeof(unsigned long);
    std::vector<unsigned long> mask(host_node / kBitsPerWord + 1, 0);
    mask[host_node / kBitsPerWord] = 1ul << (host_node % kBitsPerWord);
    // mbind(2) reads maxnode - 1 bits of the mask, hence the + 1.
    const unsigned long maxnode = mask.size() * kBitsPerWord + 1;
    if (mbind(base_ + offset, len, MPOL_BIND, mask.data(), maxnode, 0) != 0)
        return fail(MemoryError{MemoryError::Kind::HostMapping,
                                fmt::format("cannot bind {} MiB of machine memory to host node {}: {}", len >> 20,
                                            host_node, std::strerror(errno))});
    return {};
}
}  // namespace disco
