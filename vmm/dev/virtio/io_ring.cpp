#include "vmm/dev/virtio/io_ring.hpp"

#include <fmt/format.h>

#include <cstring>

namespace disco::dev {

Result<std::unique_ptr<IoRing>, Error> IoRing::create(unsigned entries) {
    std::unique_ptr<IoRing> ring(new IoRing);
    if (const int r = io_uring_queue_init(entries, &ring->ring_, 0); r < 0)
        return fail(Error{fmt::format("cannot create an io_uring instance: {}", std::strerror(-r))});
    return ring;
}

IoRing::~IoRing() { io_uring_queue_exit(&ring_); }

io_uring_sqe* IoRing::sqe() {
    io_uring_sqe* s = io_uring_get_sqe(&ring_);
    if (!s) {
        io_uring_submit(&ring_);
        s = io_uring_get_sqe(&ring_);
    }
    if (s) ++pending_;
    return s;
}

int IoRing::run_one(const std::function<void(io_uring_sqe*)>& prep) {
    struct One final : IoOp {
        int res = 0;
        bool done = false;
        void complete(int r) override {
            res = r;
            done = true;
        }
    } one;
    io_uring_sqe* s = sqe();
    if (!s) return -EBUSY;
    prep(s);
    set_op(s, &one);
    run_until([&] { return one.done; });
    return one.done ? one.res : -EIO;
}
}  // namespace disco::dev
