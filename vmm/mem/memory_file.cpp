#include "vmm/mem/memory_file.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "vmm/mem/address.hpp"

namespace disco {
namespace {
MemoryError host_error(std::string what) {
    return MemoryError{MemoryError::Kind::HostMapping,
                       fmt::format("machine memory file: {}: {}", what, std::strerror(errno))};
}
}  // namespace

Result<MemoryFile, MemoryError> MemoryFile::create(std::string_view name, u64 bytes) {
    if (bytes == 0 || (bytes & (kPageSize - 1)) || bytes > u64(INT64_MAX))
        return fail(MemoryError{MemoryError::Kind::InvalidConfig,
                                fmt::format("machine memory file: {} bytes is no whole number of pages", bytes)});
    const std::string name_z(name);
    const int fd = memfd_create(name_z.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) return fail(host_error("memfd_create"));
    MemoryFile file(fd, bytes);  // closes the fd on every error path below
    // ftruncate only sets the size: tmpfs allocates a page when it is first touched.
    if (ftruncate(fd, static_cast<off_t>(bytes)) != 0)
        return fail(host_error(fmt::format("cannot size it to {} MiB", bytes >> 20)));
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0)
        return fail(host_error("cannot seal its size"));
    return file;
}

MemoryFile& MemoryFile::operator=(MemoryFile&& o) noexcept {
    if (this != &o) {
        if (fd_ >= 0) close(fd_);
        fd_ = std::exchange(o.fd_, -1);
        size_ = std::exchange(o.size_, 0);
    }
    return *this;
}

MemoryFile::~MemoryFile() {
    if (fd_ >= 0) close(fd_);
}

Result<void, MemoryError> MemoryFile::punch_hole(u64 offset, u64 len) const {
    if (offset > size_ || len > size_ - offset || ((offset | len) & (kPageSize - 1)))
        return fail(MemoryError{
            MemoryError::Kind::InvalidConfig,
            fmt::format("machine memory file: cannot free {:#x}+{:#x} of {:#x} bytes", offset, len, size_)});
    if (len == 0) return {};
    // KEEP_SIZE is required with PUNCH_HOLE (fallocate(2)); the size is sealed anyway.
    if (fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset),
                  static_cast<off_t>(len)) != 0)
        return fail(host_error(fmt::format("cannot free {:#x}+{:#x}", offset, len)));
    return {};
}
}  // namespace disco
