// A small owner of one io_uring instance (liburing) for a device I/O thread:
// creation with a clear error, SQE allocation that never hands out null, and
// completion reaping. Used by one thread at a time.
//
// Completions go to IoOp objects: an SQE's user_data is the IoOp* that
// handles its completion (the disk backends' operations, disk_io.hpp), except
// where the owner reserves a tag of its own (virtio-blk's kick, 0).
#pragma once
#include <liburing.h>

#include <functional>
#include <memory>

#include "vmm/util/result.hpp"
#include "vmm/util/types.hpp"

namespace disco::dev {

/// Something waiting for one completion; complete() may queue further SQEs.
class IoOp {
public:
    virtual void complete(int res) = 0;

protected:
    virtual ~IoOp() = default;  // operations delete themselves through a base pointer
};

class IoRing {
public:
    static Result<std::unique_ptr<IoRing>, Error> create(unsigned entries);
    ~IoRing();
    IoRing(const IoRing&) = delete;
    IoRing& operator=(const IoRing&) = delete;

    /// A free submission entry, first submitting queued ones if the ring is
    /// full; null only if the kernel takes none of them either. Every entry
    /// handed out counts as in flight until its completion is reaped.
    io_uring_sqe* sqe();
    /// Entries handed out whose completion was not reaped yet.
    unsigned pending() const { return pending_; }

    static void set_op(io_uring_sqe* s, IoOp* op) { io_uring_sqe_set_data64(s, reinterpret_cast<u64>(op)); }
    /// Hands a completion to the IoOp whose address is its user_data.
    static void dispatch(u64 user_data, int res) { reinterpret_cast<IoOp*>(user_data)->complete(res); }

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
            --pending_;
            on_completion(data, res);
        }
    }
    /// Reaps, dispatching every completion to its IoOp, until done() holds
    /// or nothing is in flight (for a ring whose every entry is an IoOp's).
    template <class Pred>
    void run_until(Pred&& done) {
        while (!done() && pending_ > 0) submit_and_reap(&IoRing::dispatch);
    }
    /// One operation, prepared by prep, submitted and waited for; its result
    /// (negative errno on failure). Only while nothing else is in flight.
    int run_one(const std::function<void(io_uring_sqe*)>& prep);

private:
    IoRing() = default;
    io_uring ring_{};
    unsigned pending_ = 0;
};
}  // namespace disco::dev
