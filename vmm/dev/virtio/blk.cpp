#include "vmm/dev/virtio/blk.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "vmm/mem/endian.hpp"

namespace disco::dev {
using namespace blk;

namespace {
// Feature bits (virtio 1.1 §5.2.3).
constexpr u64 kFeatureSegMax = 1ull << 2, kFeatureRo = 1ull << 5, kFeatureBlkSize = 1ull << 6,
              kFeatureFlush = 1ull << 9;
constexpr u64 kKickTag = 0;  // user_data of the eventfd read; requests use their (non-null) address
// Room for every request the queue can hold plus the eventfd read.
constexpr unsigned kRingEntries = 2 * VirtioBlk::kQueueSize;

std::string errno_text(int e) { return std::strerror(e); }
}  // namespace

/// A request whose I/O is in the ring; iov advances as short transfers complete.
struct VirtioBlk::InFlight {
    BlkRequest req;
    usize iov_first = 0;  // first iovec not wholly transferred
    u64 done = 0;         // bytes transferred so far
};

Result<std::unique_ptr<VirtioBlk>, Error> VirtioBlk::open(const std::string& path, bool read_only, std::string serial) {
    const int fd = ::open(path.c_str(), (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
    if (fd < 0) return fail(Error{fmt::format("disk image {}: {}", path, errno_text(errno))});
    auto close_fail = [&](std::string msg) {
        ::close(fd);
        return fail(Error{std::move(msg)});
    };
    struct stat st {};
    if (fstat(fd, &st) != 0) return close_fail(fmt::format("disk image {}: {}", path, errno_text(errno)));
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
        return close_fail(fmt::format("disk image {}: not a regular file or block device", path));
    const off_t size = lseek(fd, 0, SEEK_END);  // also right for block devices, where st_size is 0
    if (size < 0) return close_fail(fmt::format("disk image {}: {}", path, errno_text(errno)));
    if (size % kSectorSize)
        std::fputs(fmt::format("disco: disk image {}: size {} is not a multiple of {}; the last {} bytes are not "
                               "visible to the guest\n",
                               path, size, kSectorSize, size % kSectorSize)
                       .c_str(),
                   stderr);
    auto ring = IoRing::create(kRingEntries);
    if (!ring) return close_fail(fmt::format("disk image {}: {}", path, ring.error().message));
    const int kick = eventfd(0, EFD_CLOEXEC);
    if (kick < 0) return close_fail(fmt::format("disk image {}: eventfd: {}", path, errno_text(errno)));
    if (serial.empty()) {
        const auto slash = path.find_last_of('/');
        serial = slash == std::string::npos ? path : path.substr(slash + 1);
    }
    serial.resize(std::min(serial.size(), kIdBytes));
    const BlkDisk disk{static_cast<u64>(size) / kSectorSize, read_only};
    return std::unique_ptr<VirtioBlk>(new VirtioBlk(path, fd, kick, std::move(*ring), disk, std::move(serial)));
}

VirtioBlk::VirtioBlk(std::string path, int fd, int kick_fd, std::unique_ptr<IoRing> ring, BlkDisk disk,
                     std::string serial)
    : path_(std::move(path)),
      fd_(fd),
      kick_fd_(kick_fd),
      ring_(std::move(ring)),
      disk_(disk),
      serial_(std::move(serial)) {
    // Configuration layout (§5.2.4): le64 capacity, le32 size_max, le32
    // seg_max, geometry (4 bytes), le32 blk_size. Fixed for the device's life.
    store_guest<ByteOrder::Little, u64>(config_.data(), disk_.capacity_sectors);
    store_guest<ByteOrder::Little, u32>(config_.data() + 12, kSegMax);
    store_guest<ByteOrder::Little, u32>(config_.data() + 20, kSectorSize);
}

VirtioBlk::~VirtioBlk() {
    reset();
    ::close(kick_fd_);
    ::close(fd_);
}

u64 VirtioBlk::device_features() const {
    return kFeatureSegMax | kFeatureBlkSize | kFeatureFlush | (disk_.read_only ? kFeatureRo : 0);
}

void VirtioBlk::read_config(u64 offset, std::span<u8> out) const {
    for (usize i = 0; i < out.size(); ++i) out[i] = offset + i < config_.size() ? config_[offset + i] : 0;
}

void VirtioBlk::activate(const VirtioActivation& act) {
    if (act.queues.empty() || act.queues[0].size == 0) return;  // the driver enabled no queue: nothing to serve
    ram_ = &act.ram;
    host_ = &act.host;
    queue_.emplace(act.ram, act.queues[0], act.features);
    stopping_ = false;
    try {
        thread_ = std::thread(&VirtioBlk::run, this);
    } catch (const std::system_error& e) {
        queue_.reset();
        act.host.device_error(fmt::format("cannot start the I/O thread: {}", e.what()));
    }
}

void VirtioBlk::notify(unsigned) {
    const u64 one = 1;
    // Only wakes the I/O thread; a wake while none runs is harmless (the next
    // one finds an empty queue or real work).
    [[maybe_unused]] const ssize_t n = ::write(kick_fd_, &one, sizeof one);
}

void VirtioBlk::reset() {
    if (thread_.joinable()) {
        stopping_.store(true, std::memory_order_release);
        notify(0);  // completes the thread's eventfd read, so it sees stopping_
        thread_.join();
    }
    queue_.reset();
    ram_ = nullptr;
    host_ = nullptr;
    stopping_ = false;
}

// ---- the I/O thread ----

void VirtioBlk::run() {
    arm_kick();
    for (;;) {
        bool kicked = false;
        ring_->submit_and_reap([&](u64 data, int res) {
            if (data == kKickTag) {
                kick_armed_ = false;
                kicked = true;
            } else {
                on_completion(data, res);
            }
        });
        if (stopping_.load(std::memory_order_acquire)) {
            // Leave only when nothing of ours is in the ring: in-flight I/O
            // still writes guest RAM until it completes.
            if (in_flight_ == 0 && !kick_armed_) return;
            continue;
        }
        if (kicked) {
            arm_kick();
            take_requests();
        }
        if (queue_->needs_interrupt()) host_->signal_used(0);
    }
}

void VirtioBlk::arm_kick() {
    io_uring_sqe* s = ring_->sqe();
    if (!s) return;
    io_uring_prep_read(s, kick_fd_, &kick_value_, sizeof kick_value_, 0);
    io_uring_sqe_set_data64(s, kKickTag);
    kick_armed_ = true;
}

void VirtioBlk::take_requests() {
    do {
        for (;;) {
            auto chain = queue_->pop();
            if (!chain) {
                host_->device_error(fmt::format("queue 0: {}", chain.error()));
                return;
            }
            if (!*chain) break;
            auto request = decode_blk_request(*ram_, std::move(**chain), disk_);
            if (!request) {
                queue_->mark_broken();
                host_->device_error(fmt::format("queue 0: {}", request.error()));
                return;
            }
            start(std::move(*request));
        }
    } while (queue_->arm_notification());
}

void VirtioBlk::start(BlkRequest r) {
    // The request's buffers stay pinned until finish(): io_uring moves data
    // to and from them while page operations could otherwise move the pages.
    pin_chain(*ram_, r.chain);
    // Decoding took the data's host addresses before the pins: take them again
    // now that the pages cannot move (guest_ram.hpp).
    if ((r.op == BlkRequest::Op::Read || r.op == BlkRequest::Op::Write) && !data_iovecs(*ram_, r.chain, r)) {
        finish(r.chain, kStatusIoErr, 0);
        return;
    }
    switch (r.op) {
        case BlkRequest::Op::Answer:
            finish(r.chain, r.answer, 0);
            return;
        case BlkRequest::Op::GetId: {
            // NUL-padded, without a terminator when 20 bytes long (§5.2.6).
            std::array<u8, kIdBytes> id{};
            std::memcpy(id.data(), serial_.data(), serial_.size());
            const usize n = std::min<u64>(r.length, kIdBytes);
            scatter(*ram_, r.chain.writable, 0, std::span<const u8>(id.data(), n));
            finish(r.chain, kStatusOk, static_cast<u32>(n));
            return;
        }
        case BlkRequest::Op::Flush:
            if (disk_.read_only) {
                finish(r.chain, kStatusOk, 0);  // nothing can be dirty
                return;
            }
            break;
        case BlkRequest::Op::Read:
        case BlkRequest::Op::Write:
            if (r.length == 0) {
                finish(r.chain, kStatusOk, 0);
                return;
            }
            break;
    }
    submit(std::make_unique<InFlight>(InFlight{std::move(r)}));
}

void VirtioBlk::submit(std::unique_ptr<InFlight> f) {
    io_uring_sqe* s = ring_->sqe();
    if (!s || f->req.iov.size() - f->iov_first > IOV_MAX) {
        log_host_error("cannot queue I/O", EBUSY);
        finish(f->req.chain, kStatusIoErr, 0);
        return;
    }
    const BlkRequest& r = f->req;
    const iovec* iov = r.iov.data() + f->iov_first;
    const unsigned n = static_cast<unsigned>(r.iov.size() - f->iov_first);
    switch (r.op) {
        case BlkRequest::Op::Read:
            io_uring_prep_readv(s, fd_, iov, n, r.offset + f->done);
            break;
        case BlkRequest::Op::Write:
            io_uring_prep_writev(s, fd_, iov, n, r.offset + f->done);
            break;
        default:  // Flush
            io_uring_prep_fsync(s, fd_, IORING_FSYNC_DATASYNC);
            break;
    }
    io_uring_sqe_set_data64(s, reinterpret_cast<u64>(f.release()));
    ++in_flight_;
}

void VirtioBlk::on_completion(u64 user_data, int res) {
    std::unique_ptr<InFlight> f(reinterpret_cast<InFlight*>(user_data));
    --in_flight_;
    if (stopping_.load(std::memory_order_acquire)) return;  // the driver reset the device: nobody waits for it
    if (res == -EINTR || res == -EAGAIN) {
        submit(std::move(f));
        return;
    }
    BlkRequest& r = f->req;
    if (res < 0) {
        log_host_error(r.op == BlkRequest::Op::Flush  ? "fdatasync"
                       : r.op == BlkRequest::Op::Read ? "read"
                                                      : "write",
                       -res);
        finish(r.chain, kStatusIoErr, 0);
        return;
    }
    if (r.op == BlkRequest::Op::Flush) {
        finish(r.chain, kStatusOk, 0);
        return;
    }
    if (res == 0) {  // no progress: the image shrank under us
        log_host_error(r.op == BlkRequest::Op::Read ? "read (end of file)" : "write (no progress)", EIO);
        finish(r.chain, kStatusIoErr, 0);
        return;
    }
    // A short transfer goes on from where it stopped.
    f->done += static_cast<u64>(res);
    advance_iov(r.iov, f->iov_first, static_cast<u64>(res));
    if (f->done < r.length) {
        submit(std::move(f));
        return;
    }
    // The data reached guest RAM behind the vCPUs' backs: drop any code
    // decoded from those pages before the guest learns the read is done.
    if (r.op == BlkRequest::Op::Read) note_written(*ram_, r.chain.writable, 0, r.length);
    finish(r.chain, kStatusOk, r.op == BlkRequest::Op::Read ? static_cast<u32>(r.length) : 0);
}

void VirtioBlk::finish(const DescChain& chain, u8 status, u32 data_written) {
    // The status is the last device-writable byte (§5.2.6); the used length
    // counts everything written, status included.
    const u8 s[1] = {status};
    const bool status_ok = scatter(*ram_, chain.writable, chain.writable_bytes - 1, s);
    unpin_chain(*ram_, chain);
    if (!status_ok) {
        queue_->mark_broken();
        host_->device_error(fmt::format("queue 0: request {}: status byte is not in guest RAM", chain.head));
        return;
    }
    if (auto r = queue_->push(chain.head, data_written + 1); !r)
        host_->device_error(fmt::format("queue 0: {}", r.error()));
}

void VirtioBlk::log_host_error(const char* what, int err) {
    // Host I/O errors reach the guest as IOERR; the operator hears of the first.
    if (host_error_logged_) return;
    host_error_logged_ = true;
    std::fputs(
        fmt::format("disco: virtio-blk {}: {}: {} (further errors not logged)\n", path_, what, errno_text(err)).c_str(),
        stderr);
}
}  // namespace disco::dev
