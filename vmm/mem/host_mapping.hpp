// A block of host address space for machine memory or its metadata, backed
// only when a page is first touched (a 16 GiB VM commits nothing up front),
// and every untouched page reads as zero. Metadata arrays rely on that: their
// all-zero state is their initial state. reserve() gives an anonymous private
// mapping with MAP_NORESERVE; map_shared() a shared mapping of a sparse file
// (the machine memory file), whose pages other mappings of the file see too.
#pragma once
#include <utility>

#include "vmm/mem/memory_error.hpp"
#include "vmm/util/result.hpp"
#include "vmm/util/types.hpp"

namespace disco {
class HostMapping {
public:
    /// Reserves `bytes` (rounded up to whole pages; 0 gives an empty mapping).
    static Result<HostMapping, MemoryError> reserve(u64 bytes);
    /// Maps bytes [0, bytes) of file `fd` (MAP_SHARED | MAP_NORESERVE), rounded up to whole pages.
    static Result<HostMapping, MemoryError> map_shared(int fd, u64 bytes);

    HostMapping() = default;
    HostMapping(HostMapping&& o) noexcept : base_(std::exchange(o.base_, nullptr)), size_(std::exchange(o.size_, 0)) {}
    HostMapping& operator=(HostMapping&& o) noexcept;
    HostMapping(const HostMapping&) = delete;
    HostMapping& operator=(const HostMapping&) = delete;
    ~HostMapping();

    /// Makes the host serve faults in [offset, offset + len) from host NUMA node
    /// `host_node` only (mbind MPOL_BIND, numaif.h). Call before the range is touched.
    /// For a shared mapping of a tmpfs file the policy is the file's (a shared
    /// policy, mbind(2)): it also governs faults through other mappings of the range.
    Result<void, MemoryError> bind_to_node(u64 offset, u64 len, int host_node);

    u8* data() const { return base_; }
    u64 size() const { return size_; }
    /// The mapping as an array of T. T must be an implicit-lifetime type whose
    /// all-zero bytes are a valid initial value.
    template <class T>
    T* as() const {
        return reinterpret_cast<T*>(base_);
    }

private:
    HostMapping(u8* base, u64 size) : base_(base), size_(size) {}
    static Result<HostMapping, MemoryError> map(u64 bytes, int flags, int fd);
    u8* base_ = nullptr;
    u64 size_ = 0;
};
}  // namespace disco
