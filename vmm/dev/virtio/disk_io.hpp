// File I/O through an IoRing for the disk backends: whole transfers (short
// ones continued, EINTR/EAGAIN retried) that report once, asynchronously on
// the ring's thread, or synchronously while the ring is otherwise idle
// (opening, creating and closing a disk).
#pragma once
#include <sys/uio.h>

#include <functional>
#include <span>
#include <vector>

#include "vmm/dev/virtio/io_ring.hpp"

namespace disco::dev {

/// The end of an operation: 0, or a negative errno.
using IoDone = std::function<void(int res)>;

/// Bytes that iov covers.
u64 iov_bytes(std::span<const iovec> iov);
/// After a short transfer of `bytes`: skips the iovecs from `first` on that
/// it covered wholly (advancing first) and trims the one it ended in.
void advance_iov(std::vector<iovec>& iov, usize& first, u64 bytes);
/// Appends to out the part [from, from + len) of the bytes that iov covers.
void slice_iov(std::span<const iovec> iov, u64 from, u64 len, std::vector<iovec>& out);

/// Reads (or writes) every byte of iov at offset of fd, then calls done: 0
/// once all moved, -EIO if the file ended first (a read) or a write made no
/// progress, else the error. done may run before this returns (no SQE left).
void submit_rw(IoRing& ring, int fd, bool write, u64 offset, std::vector<iovec> iov, IoDone done);
/// fdatasync(fd), then done.
void submit_fdatasync(IoRing& ring, int fd, IoDone done);

/// The same, waited for; only while nothing else is in flight on ring.
int sync_read(IoRing& ring, int fd, void* buf, u64 len, u64 offset);
int sync_write(IoRing& ring, int fd, const void* buf, u64 len, u64 offset);
int sync_fdatasync(IoRing& ring, int fd);
/// fallocate(fd, 0, offset, len): reserves the space (a hole needs none until written).
int sync_fallocate(IoRing& ring, int fd, u64 offset, u64 len);
}  // namespace disco::dev
