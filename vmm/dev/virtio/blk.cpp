#include "vmm/dev/virtio/blk.hpp"

#include <fmt/format.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "vmm/mem/endian.hpp"
#include "vmm/mem/machine_memory.hpp"

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

/// A request whose I/O the backend has.
struct VirtioBlk::InFlight {
    BlkRequest req;
};

/// A read served in part from the disk page cache: first its pieces' loads,
/// then the rest's reads; `left` counts what is in flight plus the share of
/// whoever is still issuing.
struct VirtioBlk::CachedRead {
    BlkRequest req;
    std::vector<CachedPiece> pieces;
    DescChain pins;                        // what is pinned: the chain less the pieces served
    std::vector<std::vector<iovec>> runs;  // the rest's host iovecs, alive until its reads end
    unsigned left = 1;
    int err = 0;
    bool loading = true;
};

Result<std::unique_ptr<VirtioBlk>, Error> VirtioBlk::open(const std::string& path, bool read_only, std::string serial,
                                                          const std::string& overlay, DiskPageCache* cache) {
    auto ring = IoRing::create(kRingEntries);
    if (!ring) return fail(Error{fmt::format("disk image {}: {}", path, ring.error().message)});
    auto backend = DISCO_TRY(open_disk_backend(path, overlay, read_only, **ring));
    const int kick = eventfd(0, EFD_CLOEXEC);
    if (kick < 0) return fail(Error{fmt::format("disk image {}: eventfd: {}", path, errno_text(errno))});
    if (serial.empty()) serial = backend->serial();
    serial.resize(std::min(serial.size(), kIdBytes));
    std::unique_ptr<VirtioBlk> blk(new VirtioBlk(kick, std::move(*ring), std::move(backend), std::move(serial)));
    if (cache && blk->backend_->shareable_base()) blk->cached_.emplace(*cache, *blk->backend_);
    return blk;
}

VirtioBlk::VirtioBlk(int kick_fd, std::unique_ptr<IoRing> ring, std::unique_ptr<DiskBackend> backend,
                     std::string serial)
    : kick_fd_(kick_fd),
      ring_(std::move(ring)),
      backend_(std::move(backend)),
      path_(backend_->name()),
      disk_{backend_->size() / kSectorSize, backend_->read_only()},
      serial_(std::move(serial)) {
    // Configuration layout (§5.2.4): le64 capacity, le32 size_max, le32
    // seg_max, geometry (4 bytes), le32 blk_size. Fixed for the device's life.
    store_guest<ByteOrder::Little, u64>(config_.data(), disk_.capacity_sectors);
    store_guest<ByteOrder::Little, u32>(config_.data() + 12, kSegMax);
    store_guest<ByteOrder::Little, u32>(config_.data() + 20, kSectorSize);
}

VirtioBlk::~VirtioBlk() {
    reset();
    backend_.reset();  // an overlay commits through the ring, idle now
    ::close(kick_fd_);
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
                IoRing::dispatch(data, res);  // the backend's I/O
            }
        });
        if (stopping_.load(std::memory_order_acquire)) {
            // Leave only when nothing is in the ring: in-flight I/O still
            // writes guest RAM (and an overlay its metadata) until it completes.
            if (ring_->pending() == 0) return;
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
    if (cached_ && r.op == BlkRequest::Op::Read && r.length) {
        // Before any pin: a pinned page cannot be pointed at a cached frame.
        auto pieces = cached_->plan(*ram_, r);
        if (!pieces.empty()) return start_cached(std::move(r), std::move(pieces));
    }
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
    InFlight* raw = f.release();
    auto done = [this, raw](int res) { on_done(std::unique_ptr<InFlight>(raw), res); };
    const BlkRequest& r = raw->req;
    switch (r.op) {
        case BlkRequest::Op::Read:
            backend_->read(r.offset, r.iov, done);
            break;
        case BlkRequest::Op::Write:
            backend_->write(r.offset, r.iov, done);
            break;
        default:  // Flush
            backend_->flush(done);
            break;
    }
}

void VirtioBlk::on_done(std::unique_ptr<InFlight> f, int res) {
    BlkRequest& r = f->req;
    if (stopping_.load(std::memory_order_acquire)) {  // the driver reset the device: nobody waits for it
        unpin_chain(*ram_, r.chain);
        return;
    }
    if (res < 0) {
        log_host_error(r.op == BlkRequest::Op::Flush ? "flush" : r.op == BlkRequest::Op::Read ? "read" : "write", -res);
        finish(r.chain, kStatusIoErr, 0);
        return;
    }
    // The data reached guest RAM behind the vCPUs' backs: drop any code
    // decoded from those pages before the guest learns the read is done.
    if (r.op == BlkRequest::Op::Read) note_written(*ram_, r.chain.writable, 0, r.length);
    finish(r.chain, kStatusOk, r.op == BlkRequest::Op::Read ? static_cast<u32>(r.length) : 0);
}

void VirtioBlk::finish(const DescChain& chain, u8 status, u32 data_written, const DescChain* pins) {
    // The status is the last device-writable byte (§5.2.6); the used length
    // counts everything written, status included.
    const u8 s[1] = {status};
    const bool status_ok = scatter(*ram_, chain.writable, chain.writable_bytes - 1, s);
    unpin_chain(*ram_, pins ? *pins : chain);
    if (!status_ok) {
        queue_->mark_broken();
        host_->device_error(fmt::format("queue 0: request {}: status byte is not in guest RAM", chain.head));
        return;
    }
    if (auto r = queue_->push(chain.head, data_written + 1); !r)
        host_->device_error(fmt::format("queue 0: {}", r.error()));
}

void VirtioBlk::start_cached(BlkRequest r, std::vector<CachedPiece> pieces) {
    auto* c = new CachedRead;
    c->req = std::move(r);
    c->pieces = std::move(pieces);
    DiskPageCache& cache = cached_->cache();
    MachineMemory& mm = cache.machine_memory();
    const ShareableBase& base = cached_->base();
    for (CachedPiece& p : c->pieces) {
        if (auto f = cache.find(base.id, p.block)) {
            p.frame = *f;
            p.cached = true;
            continue;
        }
        // A miss: the block goes into a fresh frame straight from the base
        // file (never through the backend, which might serve it from an overlay).
        auto node = ram_->node_of(p.ppage);
        auto fresh = mm.allocate(node ? *node : 0);
        if (!fresh) continue;  // no frame to load into: the piece is read with the rest
        p.frame = *fresh;
        ++c->left;
        submit_rw(*ring_, base.fd, false, p.block << kPageShift, {iovec{mm.host(*fresh), kPageSize}},
                  [this, c, &p](int res) { piece_loaded(c, p, res); });
    }
    cached_part_done(c, 0);
}

void VirtioBlk::piece_loaded(CachedRead* c, CachedPiece& p, int res) {
    DiskPageCache& cache = cached_->cache();
    if (res < 0) {
        // Read with the rest, which reports the error if it persists.
        (void)cache.machine_memory().release(p.frame);
        p.frame = MachineFrame();
    } else if (auto cached = cache.insert(cached_->base().id, p.block, p.frame)) {
        if (*cached != p.frame) (void)cache.machine_memory().release(p.frame);  // another VM's load won
        p.frame = *cached;
        p.cached = true;
    }
    cached_part_done(c, 0);
}

void VirtioBlk::cached_part_done(CachedRead* c, int res) {
    if (res < 0 && c->err == 0) c->err = res;
    if (--c->left > 0) return;
    std::unique_ptr<CachedRead> owned(c);
    BlkRequest& r = c->req;
    if (c->loading) {
        c->loading = false;
        if (stopping_.load(std::memory_order_acquire)) {  // reset: the guest's RAM is no longer ours to write
            for (CachedPiece& p : c->pieces)
                if (!p.frame.is_none()) (void)cached_->cache().machine_memory().release(p.frame);
            return;
        }
        c->left = 1;
        map_pieces_and_read_rest(owned.release());
        return;
    }
    if (stopping_.load(std::memory_order_acquire)) {
        unpin_chain(*ram_, c->pins);
        return;
    }
    if (c->err < 0) {
        log_host_error("read", -c->err);
        finish(r.chain, kStatusIoErr, 0, &c->pins);
        return;
    }
    // Mapped, copied and read pages alike: drop code decoded from them (as on_done).
    note_written(*ram_, r.chain.writable, 0, r.length);
    finish(r.chain, kStatusOk, static_cast<u32>(r.length), &c->pins);
}

void VirtioBlk::map_pieces_and_read_rest(CachedRead* c) {
    BlkRequest& r = c->req;
    DiskPageCache& cache = cached_->cache();
    MachineMemory& mm = cache.machine_memory();
    std::vector<std::pair<u64, u64>> served;  // data ranges done without the backend
    for (CachedPiece& p : c->pieces) {
        if (p.frame.is_none()) continue;
        if (p.cached && ram_->map_shared_frame(p.ppage, p.frame)) {
            cache.note_mapped();
        } else {
            // The page is pinned by other I/O, moving or replicated, or the
            // cache had no room: copy the block, as any read would.
            (void)ram_->write(GuestPhysAddr(p.ppage << kPageShift), std::span<const u8>(mm.host(p.frame), kPageSize));
            cache.note_copied();
        }
        (void)mm.release(p.frame);
        served.emplace_back(p.data_offset, kPageSize);
    }
    // The rest is pinned and read as any request (a pin for writing a page
    // mapped above, in a chain naming it twice, breaks the sharing first).
    c->pins.readable = r.chain.readable;
    c->pins.writable = segments_without(r.chain.writable, served);
    pin_chain(*ram_, c->pins);
    c->runs.reserve(served.size() + 1);
    auto read_run = [&](u64 from, u64 to) {
        if (from >= to) return;
        std::vector<iovec>& iov = c->runs.emplace_back();
        if (!host_iovecs(*ram_, r.chain.writable, from, to - from, iov)) {
            c->err = -EFAULT;
            return;
        }
        ++c->left;
        backend_->read(r.offset + from, iov, [this, c](int res) { cached_part_done(c, res); });
    };
    u64 at = 0;
    for (const auto& [offset, length] : served) {
        read_run(at, offset);
        at = offset + length;
    }
    read_run(at, r.length);
    cached_part_done(c, 0);
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
