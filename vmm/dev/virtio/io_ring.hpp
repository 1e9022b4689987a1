// A small owner of one io_uring instance (liburing) for a device I/O thread:
// creation with a clear error, SQE allocation that never hands out null, and
// completion reaping. Used by one thread at a time.
#pragma once
#include <liburing.h>

#include <memory>

#include "vmm/util/result.hpp"
#include "vmm/util/types.hpp"

namespace disco::dev {

class IoRing {
public:
    static Result<std::unique_ptr<IoRing>, Error> create(unsigned entries);
    ~IoRing();
    IoRing(const IoRing&) = delete;
    IoRing& operator=(const IoRing&) = delete;

    /// A free submission entry, first submitting queued ones if the ring is
    /// full; null only if the kernel takes none of them either.
    io_uring_sqe* sqe();
    /// Submits queued entries and waits until at least one completion is
    /// ready; then calls on_completion(user_data, res) for every ready one.
    template <class F>
    void submit_and_reap(F&& on_completion) {
        io_uring_cqe* cqe = nullptr;
        int r;
        do {
            r = io_uring_submit_and_wait(&ring_, 1);
        } while (r == -EINTR);
        while (io_uring_peek_cqe(&ring_, &cqe) == 0) {
            const u64 data = io_uring_cqe_get_data64(cqe);
            const int res = cqe->res;
            io_uring_cqe_seen(&ring_, cqe);
            on_completion(data, res);
        }
    }

private:
    IoRing() = default;
    io_uring ring_{};
};
}  // namespace disco::dev
