// The file behind machine memory: a sparse memfd (memfd_create(2)) of a fixed
// size. Nothing is committed until a page is touched through some mapping of
// it, and every page never written reads as zero. Because it is a file, one
// frame can be mapped at several addresses at once (MachineMemory's own
// mapping, and the monitor's per-VM views of guest RAM), and a view page can
// be moved onto another frame with mmap(MAP_FIXED) without changing the view
// address.
//
// The size is sealed (F_SEAL_SHRINK | F_SEAL_GROW): a stray ftruncate would
// otherwise turn every mapped page beyond the new end into SIGBUS.
//
// Threads: any thread; the kernel orders concurrent hole punches.
#pragma once
#include <string_view>
#include <utility>

#include "vmm/mem/memory_error.hpp"
#include "vmm/util/result.hpp"
#include "vmm/util/types.hpp"

namespace disco {
class MemoryFile {
public:
    /// A sealed memfd called `name` of `bytes` (a multiple of 4 KiB, > 0), all holes.
    /// Errors: InvalidConfig (size), HostMapping (memfd_create, ftruncate or fcntl refused).
    static Result<MemoryFile, MemoryError> create(std::string_view name, u64 bytes);

    MemoryFile() = default;
    MemoryFile(MemoryFile&& o) noexcept : fd_(std::exchange(o.fd_, -1)), size_(std::exchange(o.size_, 0)) {}
    MemoryFile& operator=(MemoryFile&& o) noexcept;
    MemoryFile(const MemoryFile&) = delete;
    MemoryFile& operator=(const MemoryFile&) = delete;
    ~MemoryFile();

    /// Frees the host memory behind [offset, offset + len) (page-aligned, inside
    /// the file): the range reads zero again and is unbacked until next touched.
    /// Every mapping of those pages loses them too. Errors: InvalidConfig (range),
    /// HostMapping (fallocate refused).
    Result<void, MemoryError> punch_hole(u64 offset, u64 len) const;

    int fd() const { return fd_; }
    u64 size() const { return size_; }

private:
    MemoryFile(int fd, u64 size) : fd_(fd), size_(size) {}
    int fd_ = -1;
    u64 size_ = 0;
};
}  // namespace disco
