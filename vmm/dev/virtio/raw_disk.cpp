#include "vmm/dev/virtio/raw_disk.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace disco::dev {

Result<std::unique_ptr<RawDisk>, Error> RawDisk::open(const std::string& path, bool read_only, IoRing& ring) {
    const int fd = ::open(path.c_str(), (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
    if (fd < 0) return fail(Error{fmt::format("disk image {}: {}", path, std::strerror(errno))});
    auto close_fail = [&](std::string msg) {
        ::close(fd);
        return fail(Error{std::move(msg)});
    };
    struct stat st {};
    if (fstat(fd, &st) != 0) return close_fail(fmt::format("disk image {}: {}", path, std::strerror(errno)));
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
        return close_fail(fmt::format("disk image {}: not a regular file or block device", path));
    const off_t size = lseek(fd, 0, SEEK_END);  // also right for block devices, where st_size is 0
    if (size < 0) return close_fail(fmt::format("disk image {}: {}", path, std::strerror(errno)));
    std::unique_ptr<RawDisk> disk(
        new RawDisk(path, fd, visible_disk_size(path, static_cast<u64>(size)), read_only, ring));
    if (read_only)
        if (auto id = image_identity(fd)) disk->base_ = ShareableBase{fd, path, *id};
    return disk;
}

RawDisk::~RawDisk() { ::close(fd_); }

std::string RawDisk::serial() const {
    const auto slash = path_.find_last_of('/');
    return slash == std::string::npos ? path_ : path_.substr(slash + 1);
}

void RawDisk::read(u64 offset, std::span<const iovec> iov, IoDone done) {
    submit_rw(ring_, fd_, false, offset, {iov.begin(), iov.end()}, std::move(done));
}

void RawDisk::write(u64 offset, std::span<const iovec> iov, IoDone done) {
    if (read_only_) return done(-EROFS);
    submit_rw(ring_, fd_, true, offset, {iov.begin(), iov.end()}, std::move(done));
}

void RawDisk::flush(IoDone done) {
    if (read_only_) return done(0);  // nothing can be dirty
    submit_fdatasync(ring_, fd_, std::move(done));
}

}  // namespace disco::dev
