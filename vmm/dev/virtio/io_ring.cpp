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
    if (io_uring_sqe* s = io_uring_get_sqe(&ring_)) return s;
    io_uring_submit(&ring_);
    return io_uring_get_sqe(&ring_);
}
}  // namespace disco::dev
