// virtio-blk (virtio 1.1 §5.2) over a disk backend (disk_backend.hpp): a raw
// image file or block device, or a read-only base image with a copy-on-write
// overlay.
//
// One request queue. Requests run on the device's own I/O thread through
// io_uring: a QueueNotify only wakes that thread (an eventfd read it keeps
// queued in the ring), which takes every available chain, hands its I/O to
// the backend with the data going straight between the files and guest RAM,
// and on each completion writes the status byte and the used ring, then
// interrupts. A request is acknowledged only after its I/O completed (FLUSH:
// after the backend made earlier writes durable).
//
// With a disk page cache (disk_page_cache.hpp, cached_reads.hpp), the parts
// of a read that are whole 4 KiB guest pages of unmodified base blocks are
// served by mapping the cache's frame, shared copy-on-write; the first read
// of a block loads it into a fresh frame (io_uring, from the base file) and
// caches it. The rest of the read goes to the backend as before.
//
// Offered: VIRTIO_BLK_F_SEG_MAX, _BLK_SIZE, _FLUSH, and _RO for a read-only
// disk. Requests: IN, OUT, FLUSH, GET_ID; others are answered UNSUPP.
//
// Threads: the transport's calls (vCPU threads) only wake, start or stop the
// I/O thread; the queue belongs to that thread while it runs. reset() and the
// destructor stop it after its in-flight I/O completed and join it.
#pragma once
#include <array>
#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "vmm/dev/virtio/blk_request.hpp"
#include "vmm/dev/virtio/cached_reads.hpp"
#include "vmm/dev/virtio/device.hpp"
#include "vmm/dev/virtio/disk_backend.hpp"
#include "vmm/dev/virtio/io_ring.hpp"
#include "vmm/dev/virtio/virtqueue.hpp"

namespace disco::dev {

class VirtioBlk final : public VirtioDevice {
public:
    static constexpr u16 kQueueSize = 256;
    /// Data segments per request: the queue size less header and status, so
    /// that no chain Linux builds (2 + seg_max descriptors) exceeds the queue.
    static constexpr u32 kSegMax = kQueueSize - 2;

    /// Opens the image (read-write unless read_only); with overlay non-empty,
    /// path is the read-only base of that copy-on-write overlay (created if
    /// absent). A size that is not a multiple of 512 bytes leaves the partial
    /// last sector out, with a warning. serial is what GET_ID answers (at most
    /// 20 bytes); empty: the name of the file the guest writes to. cache
    /// (optional, outlives the device): the disk page cache reads may share
    /// frames from, when the disk has a shareable base.
    static Result<std::unique_ptr<VirtioBlk>, Error> open(const std::string& path, bool read_only,
                                                          std::string serial = {}, const std::string& overlay = {},
                                                          DiskPageCache* cache = nullptr);
    ~VirtioBlk() override;

    std::string name() const override { return "virtio-blk " + path_; }
    u32 device_id() const override { return 2; }
    u64 device_features() const override;
    unsigned queue_count() const override { return 1; }
    u16 queue_max_size() const override { return kQueueSize; }
    void read_config(u64 offset, std::span<u8> out) const override;
    void activate(const VirtioActivation& activation) override;
    void notify(unsigned queue) override;
    void reset() override;

    u64 capacity_sectors() const { return disk_.capacity_sectors; }
    bool read_only() const { return disk_.read_only; }

private:
    struct InFlight;
    struct CachedRead;

    VirtioBlk(int kick_fd, std::unique_ptr<IoRing> ring, std::unique_ptr<DiskBackend> backend, std::string serial);
    void run();
    void arm_kick();
    void take_requests();
    void start(BlkRequest request);
    void submit(std::unique_ptr<InFlight> f);
    void on_done(std::unique_ptr<InFlight> f, int res);
    /// pins: what start() pinned when not the whole chain (a cached read).
    void finish(const DescChain& chain, u8 status, u32 data_written, const DescChain* pins = nullptr);
    // A read served in part from the disk page cache: find or load its
    // cached pieces, map them, then read the rest.
    void start_cached(BlkRequest r, std::vector<CachedPiece> pieces);
    void piece_loaded(CachedRead* c, CachedPiece& piece, int res);
    void cached_part_done(CachedRead* c, int res);
    void map_pieces_and_read_rest(CachedRead* c);
    void log_host_error(const char* what, int err);

    const int kick_fd_;
    const std::unique_ptr<IoRing> ring_;
    std::unique_ptr<DiskBackend> backend_;  // uses ring_; closed before it
    const std::string path_;                // the disk in messages
    const BlkDisk disk_;
    const std::string serial_;
    std::array<u8, 24> config_{};        // §5.2.4 up to blk_size
    std::optional<CachedReads> cached_;  // with a cache and a shareable base

    std::thread thread_;
    std::atomic<bool> stopping_{false};
    // Owned by the I/O thread while it runs; set by activate() before it starts.
    GuestRam* ram_ = nullptr;
    VirtioHost* host_ = nullptr;
    std::optional<VirtQueue> queue_;
    bool kick_armed_ = false;
    u64 kick_value_ = 0;
    bool host_error_logged_ = false;
};
}  // namespace disco::dev
