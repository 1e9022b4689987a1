#include "vmm/dev/virtio/disk_io.hpp"

#include <fcntl.h>

#include <cerrno>
#include <climits>

namespace disco::dev {

u64 iov_bytes(std::span<const iovec> iov) {
    u64 n = 0;
    for (const iovec& v : iov) n += v.iov_len;
    return n;
}

void slice_iov(std::span<const iovec> iov, u64 from, u64 len, std::vector<iovec>& out) {
    for (const iovec& v : iov) {
        if (len == 0) return;
        if (from >= v.iov_len) {
            from -= v.iov_len;
            continue;
        }
        const u64 take = std::min<u64>(v.iov_len - from, len);
        out.push_back(iovec{static_cast<u8*>(v.iov_base) + from, take});
        from = 0;
        len -= take;
    }
}

void advance_iov(std::vector<iovec>& iov, usize& first, u64 bytes) {
    while (bytes > 0 && first < iov.size()) {
        iovec& v = iov[first];
        const u64 take = std::min<u64>(bytes, v.iov_len);
        v.iov_base = static_cast<u8*>(v.iov_base) + take;
        v.iov_len -= take;
        bytes -= take;
        if (v.iov_len == 0) ++first;
    }
}

namespace {
/// An operation that owns itself: it reports once, then is gone.
class OneShotOp : public IoOp {
protected:
    explicit OneShotOp(IoDone done) : done_(std::move(done)) {}
    void finish(int res) {
        IoDone done = std::move(done_);
        delete this;
        done(res);
    }

private:
    IoDone done_;
};

/// One readv/writev transfer, resubmitted from where a short one stopped.
class RwOp final : public OneShotOp {
public:
    RwOp(IoRing& ring, int fd, bool write, u64 offset, std::vector<iovec> iov, IoDone done)
        : OneShotOp(std::move(done)), ring_(ring), fd_(fd), write_(write), offset_(offset), iov_(std::move(iov)) {
        total_ = iov_bytes(iov_);
    }
    void submit() {
        if (moved_ == total_) return finish(0);
        io_uring_sqe* s = ring_.sqe();
        if (!s) return finish(-EBUSY);
        // More iovecs than one call takes: the rest goes as a short transfer's.
        const unsigned n = static_cast<unsigned>(std::min<usize>(iov_.size() - first_, IOV_MAX));
        if (write_)
            io_uring_prep_writev(s, fd_, iov_.data() + first_, n, offset_ + moved_);
        else
            io_uring_prep_readv(s, fd_, iov_.data() + first_, n, offset_ + moved_);
        IoRing::set_op(s, this);
    }
    void complete(int res) override {
        if (res == -EINTR || res == -EAGAIN) return submit();
        if (res < 0) return finish(res);
        if (res == 0) return finish(-EIO);  // end of file, or a write that makes no progress
        moved_ += static_cast<u64>(res);
        advance_iov(iov_, first_, static_cast<u64>(res));
        submit();
    }

private:
    IoRing& ring_;
    const int fd_;
    const bool write_;
    const u64 offset_;
    std::vector<iovec> iov_;
    u64 total_ = 0, moved_ = 0;
    usize first_ = 0;
};

class FsyncOp final : public OneShotOp {
public:
    FsyncOp(IoRing& ring, int fd, IoDone done) : OneShotOp(std::move(done)), ring_(ring), fd_(fd) {}
    void submit() {
        io_uring_sqe* s = ring_.sqe();
        if (!s) return finish(-EBUSY);
        io_uring_prep_fsync(s, fd_, IORING_FSYNC_DATASYNC);
        IoRing::set_op(s, this);
    }
    void complete(int res) override {
        if (res == -EINTR || res == -EAGAIN) return submit();
        finish(res < 0 ? res : 0);
    }

private:
    IoRing& ring_;
    const int fd_;
};

int sync_rw(IoRing& ring, int fd, bool write, void* buf, u64 len, u64 offset) {
    int result = 1;  // not done yet
    submit_rw(ring, fd, write, offset, {iovec{buf, len}}, [&](int r) { result = r; });
    ring.run_until([&] { return result != 1; });
    return result == 1 ? -EIO : result;
}
}  // namespace

void submit_rw(IoRing& ring, int fd, bool write, u64 offset, std::vector<iovec> iov, IoDone done) {
    (new RwOp(ring, fd, write, offset, std::move(iov), std::move(done)))->submit();
}

void submit_fdatasync(IoRing& ring, int fd, IoDone done) { (new FsyncOp(ring, fd, std::move(done)))->submit(); }

int sync_read(IoRing& ring, int fd, void* buf, u64 len, u64 offset) {
    return sync_rw(ring, fd, false, buf, len, offset);
}

int sync_write(IoRing& ring, int fd, const void* buf, u64 len, u64 offset) {
    return sync_rw(ring, fd, true, const_cast<void*>(buf), len, offset);
}

int sync_fdatasync(IoRing& ring, int fd) {
    int result = 1;
    submit_fdatasync(ring, fd, [&](int r) { result = r; });
    ring.run_until([&] { return result != 1; });
    return result == 1 ? -EIO : result;
}

int sync_fallocate(IoRing& ring, int fd, u64 offset, u64 len) {
    const int r = ring.run_one([&](io_uring_sqe* s) { io_uring_prep_fallocate(s, fd, 0, offset, len); });
    return r < 0 ? r : 0;
}
}  // namespace disco::dev
