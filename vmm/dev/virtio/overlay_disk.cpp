#include "vmm/dev/virtio/overlay_disk.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <thread>

#include "vmm/util/crc32c.hpp"

namespace disco::dev {
using namespace overlay;

namespace {
std::string errno_text(int e) { return std::strerror(e); }

/// A descriptor closed on scope exit unless released.
struct Fd {
    int fd = -1;
    explicit Fd(int f) : fd(f) {}
    Fd(const Fd&) = delete;
    ~Fd() {
        if (fd >= 0) ::close(fd);
    }
    int release() { return std::exchange(fd, -1); }
};

/// A cluster-aligned buffer (ready for O_DIRECT, and what the page cache holds).
struct AlignedBuf {
    std::unique_ptr<u8, decltype(&std::free)> p{nullptr, &std::free};
    usize n = 0;
    explicit AlignedBuf(usize bytes)
        : p(static_cast<u8*>(std::aligned_alloc(kClusterSize, whole(bytes))), &std::free), n(bytes) {
        if (p) std::memset(p.get(), 0, n);
    }
    u8* data() const { return p.get(); }
    std::span<u8> span() const { return {p.get(), n}; }
    // aligned_alloc takes only whole multiples of the alignment.
    static usize whole(usize bytes) { return bytes ? (bytes + kClusterMask) & ~kClusterMask : kClusterSize; }
};

std::string when(i64 sec, u32 nsec) {
    const time_t t = static_cast<time_t>(sec);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char text[32];
    std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S", &tm);
    return fmt::format("{}.{:09} UTC", text, nsec);
}

/// Calls done once when every part made with part() ended: 0, or the first error.
class Join {
public:
    explicit Join(IoDone done) : done_(std::move(done)) {}
    IoDone part() {
        ++left_;
        return [this](int r) { end(r); };
    }
    /// The maker's own share: after the last part() was made.
    void seal() { end(0); }

private:
    void end(int r) {
        if (r < 0 && err_ == 0) err_ = r;
        if (--left_ > 0) return;
        IoDone done = std::move(done_);
        const int err = err_;
        delete this;
        done(err);
    }
    unsigned left_ = 1;
    int err_ = 0;
    IoDone done_;
};

Result<BaseIdentity, std::string> identify_base(IoRing& ring, int fd, const struct stat& st, u64 size) {
    BaseIdentity id{size, st.st_mtim.tv_sec, static_cast<u32>(st.st_mtim.tv_nsec), 0};
    AlignedBuf head(std::min(size, kBaseHeadBytes));
    if (!head.data()) return fail(std::string("out of memory"));
    if (const int r = sync_read(ring, fd, head.data(), head.n, 0); r < 0)
        return fail(fmt::format("cannot read it: {}", errno_text(-r)));
    id.head_crc = crc32c(head.span());
    return id;
}

/// Why the base no longer is the one the overlay was made from, or empty.
std::string base_changed(const Header& h, const BaseIdentity& now) {
    if (h.base.size != now.size) return fmt::format("size is {} bytes, was {}", now.size, h.base.size);
    if (h.base.mtime_sec != now.mtime_sec || h.base.mtime_nsec != now.mtime_nsec)
        return fmt::format("modified {}, was {}", when(now.mtime_sec, now.mtime_nsec),
                           when(h.base.mtime_sec, h.base.mtime_nsec));
    if (h.base.head_crc != now.head_crc)
        return fmt::format("its first MiB has checksum {:08x}, was {:08x}", now.head_crc, h.base.head_crc);
    return {};
}

/// Makes a fresh overlay for base at path: written whole under a temporary
/// name, synced, then renamed into place, so that path either does not exist
/// or is a complete overlay. Someone else's overlay that appeared meanwhile is kept.
Result<void, std::string> create_overlay(IoRing& ring, const std::string& path, const std::string& base_name,
                                         const BaseIdentity& id, u64 disk_size) {
    const std::string tmp = fmt::format("{}.tmp.{}", path, ::getpid());
    Fd fd(::open(tmp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    if (fd.fd < 0) return fail(fmt::format("cannot create it: {}", errno_text(errno)));
    auto undo = [&](std::string why) {
        ::unlink(tmp.c_str());
        return fail(std::move(why));
    };
    const Geometry g = Geometry::of(disk_size);
    const u64 meta_bytes = g.data_cluster << kClusterBits;
    if (::ftruncate(fd.fd, static_cast<off_t>(meta_bytes)) != 0)
        return undo(fmt::format("cannot size it: {}", errno_text(errno)));
    // Reserve the table's space now, so that a commit never meets a full disk.
    if (const int r = sync_fallocate(ring, fd.fd, 0, meta_bytes); r < 0 && r != -EOPNOTSUPP && r != -EINVAL)
        return undo(fmt::format("cannot reserve {} bytes for its table: {}", meta_bytes, errno_text(-r)));
    AlignedBuf rec(kRecordBytes);
    Header h;
    h.disk_size = disk_size;
    h.base = id;
    h.created = static_cast<u64>(::time(nullptr));
    h.base_name = base_name;
    encode_header(h, rec.span());
    if (const int r = sync_write(ring, fd.fd, rec.data(), kRecordBytes, 0); r < 0)
        return undo(fmt::format("cannot write it: {}", errno_text(-r)));
    const std::vector<u32> empty(g.table_blocks, 0);
    encode_commit({0, g.data_cluster, g.table_blocks, table_digest(empty)}, rec.span());
    if (const int r = sync_write(ring, fd.fd, rec.data(), kRecordBytes, kCommitOffset[0]); r < 0)
        return undo(fmt::format("cannot write it: {}", errno_text(-r)));
    if (const int r = sync_fdatasync(ring, fd.fd); r < 0) return undo(fmt::format("fdatasync: {}", errno_text(-r)));
    if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, path.c_str(), RENAME_NOREPLACE) != 0) {
        const int e = errno;
        ::unlink(tmp.c_str());
        if (e == EEXIST) return {};
        return fail(fmt::format("cannot rename {} to it: {}", tmp, errno_text(e)));
    }
    // The new name must survive a crash too: sync the folder that holds it.
    const auto slash = path.find_last_of('/');
    const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
    Fd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dfd.fd >= 0) (void)ring.run_one([&](io_uring_sqe* s) { io_uring_prep_fsync(s, dfd.fd, 0); });
    return {};
}
}  // namespace

/// One commit in flight: the table blocks it writes and what it makes current.
struct OverlayDisk::CommitJob {
    u64 generation = 0;
    std::vector<u32> blocks;  // block numbers
    std::vector<u32> crcs;    // their new copies' checksums
    AlignedBuf buf{0};        // their new copies, one cluster each
    AlignedBuf record{kRecordBytes};
    std::vector<IoDone> waiters;
};

OverlayDisk::OverlayDisk(std::string base_path, std::string overlay_path, int base_fd, int overlay_fd, bool read_only,
                         IoRing& ring, const Geometry& g)
    : base_path_(std::move(base_path)),
      overlay_path_(std::move(overlay_path)),
      base_fd_(base_fd),
      overlay_fd_(overlay_fd),
      read_only_(read_only),
      ring_(ring),
      geometry_(g),
      table_(u64{g.table_blocks} * kEntriesPerBlock, 0),
      blocks_(g.table_blocks) {}

Result<std::unique_ptr<OverlayDisk>, Error> OverlayDisk::open(const std::string& base, const std::string& overlay,
                                                              bool read_only, IoRing& ring) {
    auto base_fail = [&](const std::string& why) { return fail(Error{fmt::format("disk base {}: {}", base, why)}); };
    auto ovl_fail = [&](const std::string& why) {
        return fail(Error{fmt::format("disk overlay {}: {}", overlay, why)});
    };
    // The base: read-only, always.
    Fd bfd(::open(base.c_str(), O_RDONLY | O_CLOEXEC));
    if (bfd.fd < 0) return base_fail(errno_text(errno));
    struct stat bst {};
    if (fstat(bfd.fd, &bst) != 0) return base_fail(errno_text(errno));
    if (!S_ISREG(bst.st_mode) && !S_ISBLK(bst.st_mode)) return base_fail("not a regular file or block device");
    const off_t bsize = lseek(bfd.fd, 0, SEEK_END);  // also right for block devices
    if (bsize < 0) return base_fail(errno_text(errno));
    const u64 disk_size = visible_disk_size(base, static_cast<u64>(bsize));
    if (disk_size > kMaxDiskBytes)
        return base_fail(
            fmt::format("{} bytes is more than an overlay can cover ({} TiB)", disk_size, kMaxDiskBytes >> 40));
    auto id = identify_base(ring, bfd.fd, bst, static_cast<u64>(bsize));
    if (!id) return base_fail(id.error());

    // The overlay: made if absent.
    const int mode = read_only ? O_RDONLY : O_RDWR;
    Fd ofd(::open(overlay.c_str(), mode | O_CLOEXEC));
    if (ofd.fd < 0 && errno == ENOENT && !read_only) {
        if (auto made = create_overlay(ring, overlay, base, *id, disk_size); !made) return ovl_fail(made.error());
        ofd.fd = ::open(overlay.c_str(), mode | O_CLOEXEC);
    }
    if (ofd.fd < 0) {
        const int e = errno;
        return ovl_fail(errno_text(e) + (e == ENOENT ? " (a read-only disk does not create its overlay)" : ""));
    }
    // One writer at a time: two disks on one overlay would corrupt it. A
    // monitor killed with I/O in flight keeps the lock a little after it has
    // exited: the kernel drops its io_uring's file references (and so the
    // flock) in a worker after the process is gone. So a busy lock is retried
    // for up to two seconds before it counts as another live holder.
    const auto lock_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (::flock(ofd.fd, (read_only ? LOCK_SH : LOCK_EX) | LOCK_NB) != 0) {
        if (errno != EWOULDBLOCK) return ovl_fail(errno_text(errno));
        if (std::chrono::steady_clock::now() >= lock_deadline)
            return ovl_fail("in use by another disk (another VM or disco process has it open)");
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    struct stat ost {};
    if (fstat(ofd.fd, &ost) != 0) return ovl_fail(errno_text(errno));
    if (!S_ISREG(ost.st_mode)) return ovl_fail("not a regular file");
    const u64 file_size = static_cast<u64>(ost.st_size);
    if (file_size < kTableOffset)
        return ovl_fail(fmt::format("{} bytes is too short for an overlay (not one, or truncated)", file_size));

    AlignedBuf rec(kRecordBytes);
    if (const int r = sync_read(ring, ofd.fd, rec.data(), kRecordBytes, 0); r < 0)
        return ovl_fail(fmt::format("cannot read its header: {}", errno_text(-r)));
    auto header = decode_header(rec.span());
    if (!header) return ovl_fail(header.error());
    if (const std::string why = base_changed(*header, *id); !why.empty())
        return ovl_fail(
            fmt::format("its base {} changed since the overlay was made from it: {} (an overlay is "
                        "only valid on that exact base; delete the overlay to start afresh)",
                        base, why));
    const Geometry g = Geometry::of(header->disk_size);

    std::unique_ptr<OverlayDisk> d(new OverlayDisk(base, overlay, bfd.fd, ofd.fd, read_only, ring, g));
    bfd.release();
    ofd.release();
    if (auto base_id = image_identity(d->base_fd_)) d->base_ = ShareableBase{d->base_fd_, base, *base_id};
    d->base_id_ = *id;
    if (auto loaded = load(*d, file_size); !loaded) {
        d->failed_ = true;  // nothing to commit on the way out
        return ovl_fail(loaded.error());
    }
    return d;
}

/// Reads and checks the commit records and the table (format doc, "Opening").
Result<void, std::string> OverlayDisk::load(OverlayDisk& d, u64 file_size) {
    const Geometry& g = d.geometry_;
    if (file_size < g.data_cluster << kClusterBits)
        return fail(
            fmt::format("truncated: {} bytes, its table alone needs {}", file_size, g.data_cluster << kClusterBits));

    // The commit records: the newer valid one is current.
    DecodedCommit rec[2];
    AlignedBuf buf(kRecordBytes);
    for (unsigned s = 0; s < 2; ++s) {
        if (const int r = sync_read(d.ring_, d.overlay_fd_, buf.data(), kRecordBytes, kCommitOffset[s]); r < 0)
            return fail(fmt::format("cannot read commit record {}: {}", s, errno_text(-r)));
        rec[s] = decode_commit(buf.span());
    }
    const bool v0 = rec[0].state == RecordState::Valid, v1 = rec[1].state == RecordState::Valid;
    if (!v0 && !v1) {
        auto what = [&](unsigned s) { return rec[s].state == RecordState::Empty ? std::string("empty") : rec[s].why; };
        return fail(fmt::format("no valid commit record (record 0: {}; record 1: {})", what(0), what(1)));
    }
    const unsigned cur = v0 && v1 ? (rec[1].commit.generation > rec[0].commit.generation ? 1 : 0) : (v0 ? 0 : 1);
    const Commit& c = rec[cur].commit;
    const DecodedCommit& other = rec[1 - cur];
    if (c.generation % 2 != cur)
        return fail(fmt::format("commit record {} holds generation {}, which belongs in record {}", cur, c.generation,
                                c.generation % 2));
    if (other.state == RecordState::Valid && other.commit.generation + 1 != c.generation)
        return fail(
            fmt::format("the commit records disagree (generations {} and {})", c.generation, other.commit.generation));
    if (other.state == RecordState::Empty && c.generation > 0)
        return fail(fmt::format("commit record {} is empty, but generation {} follows one", 1 - cur, c.generation));
    if (other.state == RecordState::Damaged)
        // Only the record of the commit after the current one can be half
        // written (an interrupted commit, on storage that tears a sector);
        // that commit did not happen. Said, not hidden.
        std::fputs(fmt::format("disco: disk overlay {}: commit record {} is incomplete ({}): an interrupted commit; "
                               "opening at generation {}\n",
                               d.overlay_path_, 1 - cur, other.why, c.generation)
                       .c_str(),
                   stderr);
    if (c.table_blocks != g.table_blocks)
        return fail(fmt::format("commit {} is for {} table blocks, the header says {}", c.generation, c.table_blocks,
                                g.table_blocks));
    // data_end is one past the highest mapped cluster, written before the commit.
    if (c.data_end < g.data_cluster || c.data_end > file_size >> kClusterBits)
        return fail(
            fmt::format("commit {} says data ends at cluster {}, outside the file's data area [{}, {}] "
                        "(truncated?)",
                        c.generation, c.data_end, g.data_cluster, file_size >> kClusterBits));

    // The table: per block the newest valid copy the commit covers.
    constexpr u32 kChunkBlocks = 128;  // blocks read at a time (1 MiB)
    AlignedBuf chunk(2 * kChunkBlocks * kClusterSize);
    std::vector<u32> crcs(g.table_blocks, 0), entries(kEntriesPerBlock);
    std::string first_damage;  // names a damaged copy, should the digest disagree
    for (u32 b0 = 0; b0 < g.table_blocks; b0 += kChunkBlocks) {
        const u32 n = std::min(kChunkBlocks, g.table_blocks - b0);
        if (const int r =
                sync_read(d.ring_, d.overlay_fd_, chunk.data(), 2 * u64{n} * kClusterSize, g.slot_offset(b0, 0));
            r < 0)
            return fail(fmt::format("cannot read its table: {}", errno_text(-r)));
        for (u32 i = 0; i < n; ++i) {
            const u32 b = b0 + i;
            DecodedBlock copy[2];
            std::vector<u32> got[2] = {std::vector<u32>(kEntriesPerBlock, 0), std::vector<u32>(kEntriesPerBlock, 0)};
            int pick = -1;
            for (unsigned s = 0; s < 2; ++s) {
                copy[s] =
                    decode_table_block(chunk.span().subspan((2 * u64{i} + s) * kClusterSize, kClusterSize), b, got[s]);
                const bool usable = copy[s].state == RecordState::Empty ||
                                    (copy[s].state == RecordState::Valid && copy[s].generation <= c.generation);
                if (!usable) {
                    if (first_damage.empty())
                        first_damage =
                            fmt::format("table block {} copy {}: {}", b, s,
                                        copy[s].state == RecordState::Damaged
                                            ? copy[s].why
                                            : fmt::format("generation {}, after the commit", copy[s].generation));
                    continue;
                }
                if (pick < 0 || copy[s].generation > copy[pick].generation) {
                    pick = static_cast<int>(s);
                } else if (copy[s].generation == copy[pick].generation && copy[s].state == RecordState::Valid) {
                    return fail(fmt::format("table block {}: both copies have generation {}", b, copy[s].generation));
                }
            }
            if (pick < 0)
                return fail(fmt::format("table block {}: no copy is usable at generation {} (copy 0: {}; copy 1: {})",
                                        b, c.generation, copy[0].why.empty() ? "after the commit" : copy[0].why,
                                        copy[1].why.empty() ? "after the commit" : copy[1].why));
            BlockState& st = d.blocks_[b];
            st.active = static_cast<u8>(pick);
            st.crc = copy[pick].crc;
            crcs[b] = st.crc;
            std::copy(got[pick].begin(), got[pick].end(), d.table_.begin() + u64{b} * kEntriesPerBlock);
            // The other copy is left from a commit that did not complete: the
            // next commit writes over it (before it could ever be taken for
            // a committed one), so this block goes in that commit.
            const DecodedBlock& spare = copy[1 - pick];
            if (spare.state == RecordState::Damaged ||
                (spare.state == RecordState::Valid && spare.generation > c.generation))
                d.mark_dirty(b);
        }
    }
    if (table_digest(crcs) != c.table_digest)
        return fail(fmt::format("the table does not match commit {} (a table block is damaged or out of date{})",
                                c.generation, first_damage.empty() ? "" : ": " + first_damage));

    // Every mapping inside the data area and the file, no cluster mapped twice.
    std::vector<bool> used(c.data_end - g.data_cluster, false);
    for (u64 v = 0; v < d.table_.size(); ++v) {
        const u32 p = d.table_[v];
        if (!p) continue;
        if (v >= g.clusters)
            return fail(
                fmt::format("the table maps disk cluster {}, past the disk's end ({} clusters)", v, g.clusters));
        if (p < g.data_cluster || p >= c.data_end)
            return fail(fmt::format("the table maps disk cluster {} to cluster {}, outside the data area [{}, {})", v,
                                    p, g.data_cluster, c.data_end));
        if ((u64{p} + 1) << kClusterBits > file_size)
            return fail(fmt::format("the table maps disk cluster {} to cluster {}, past the file's end ({} bytes)", v,
                                    p, file_size));
        if (used[p - g.data_cluster]) {
            u64 u = 0;
            while (d.table_[u] != p) ++u;
            return fail(fmt::format("the table maps disk clusters {} and {} both to cluster {}", u, v, p));
        }
        used[p - g.data_cluster] = true;
        ++d.mapped_;
        d.max_mapped_ = std::max<u64>(d.max_mapped_, p);
    }
    d.committed_ = c.generation;
    // Clusters from data_end on may hold data of first writes no commit
    // took: nothing refers to them, so they are handed out again.
    d.next_free_ = c.data_end;
    return {};
}

OverlayDisk::~OverlayDisk() {
    if (!read_only_ && !failed_ && !dirty_.empty()) {
        // What the guest wrote since its last flush reaches the table now.
        int result = 1;
        flush([&](int r) { result = r; });
        ring_.run_until([&] { return result != 1; });
        if (result < 0)
            std::fputs(fmt::format("disco: disk overlay {}: the last commit failed: {}; the overlay keeps what the "
                                   "last completed flush had\n",
                                   overlay_path_, errno_text(result == 1 ? EIO : -result))
                           .c_str(),
                       stderr);
    }
    ::close(overlay_fd_);  // also drops the lock
    ::close(base_fd_);
}

std::string OverlayDisk::name() const { return fmt::format("{} (overlay on {})", overlay_path_, base_path_); }

std::string OverlayDisk::serial() const {
    const auto slash = overlay_path_.find_last_of('/');
    return slash == std::string::npos ? overlay_path_ : overlay_path_.substr(slash + 1);
}

bool OverlayDisk::in_overlay(u64 offset) const {
    return offset < geometry_.disk_size && table_[offset >> kClusterBits] != 0;
}

bool OverlayDisk::reads_base(u64 offset) const {
    static_assert(kClusterSize == kPageSize, "a cached block is one cluster");
    const u64 cluster = offset >> kClusterBits;
    return offset < size() && size() - offset >= kClusterSize && table_[cluster] == 0 && !busy_.contains(cluster);
}

bool OverlayDisk::answered_at_once(u64 offset, u64 length, IoDone& done) {
    // Past the end: refused; empty: done. Either way there is no I/O to do.
    if (offset > size() || length > size() - offset) {
        done(-EINVAL);
        return true;
    }
    if (length == 0) {
        done(0);
        return true;
    }
    return false;
}

bool OverlayDisk::defer_if_busy(u64 offset, u64 length, std::function<void()> retry) {
    if (busy_.empty()) return false;
    for (u64 v = offset >> kClusterBits; v <= (offset + length - 1) >> kClusterBits; ++v)
        if (busy_.contains(v)) {
            deferred_.push_back(std::move(retry));
            return true;
        }
    return false;
}

void OverlayDisk::run_deferred() {
    // Each tries again: it runs, or waits again for a cluster still busy.
    std::deque<std::function<void()>> waiting;
    waiting.swap(deferred_);
    for (auto& retry : waiting) retry();
}

void OverlayDisk::read(u64 offset, std::span<const iovec> iov, IoDone done) {
    const u64 length = iov_bytes(iov);
    if (answered_at_once(offset, length, done) ||
        defer_if_busy(offset, length, [this, offset, iov, done] { read(offset, iov, done); }))
        return;
    // Runs of clusters that lie contiguously in one file go as one read.
    Join* join = new Join(std::move(done));
    struct Run {
        int fd = -1;
        u64 at = 0, from = 0, len = 0;
    } run;
    auto issue = [&] {
        if (run.len == 0) return;
        std::vector<iovec> part;
        slice_iov(iov, run.from, run.len, part);
        submit_rw(ring_, run.fd, false, run.at, std::move(part), join->part());
    };
    for (u64 pos = offset; pos < offset + length;) {
        const u64 v = pos >> kClusterBits;
        const u64 end = std::min((v + 1) << kClusterBits, offset + length);
        const u32 p = table_[v];
        const int fd = p ? overlay_fd_ : base_fd_;
        const u64 at = p ? (u64{p} << kClusterBits) + (pos & kClusterMask) : pos;
        if (run.len && run.fd == fd && run.at + run.len == at) {
            run.len += end - pos;
        } else {
            issue();
            run = {fd, at, pos - offset, end - pos};
        }
        pos = end;
    }
    issue();
    join->seal();
}

u32 OverlayDisk::allocate() {
    if (!free_.empty()) {
        const u32 p = free_.back();
        free_.pop_back();
        return p;
    }
    if (next_free_ >= (u64{1} << 32)) return 0;
    return static_cast<u32>(next_free_++);
}

void OverlayDisk::write(u64 offset, std::span<const iovec> iov, IoDone done) {
    if (read_only_) return done(-EROFS);
    if (failed_) return done(-EIO);
    const u64 length = iov_bytes(iov);
    if (answered_at_once(offset, length, done) ||
        defer_if_busy(offset, length, [this, offset, iov, done] { write(offset, iov, done); }))
        return;
    Join* join = new Join(std::move(done));
    // Clusters already mapped are written where they are; whole first
    // writes go straight from guest memory to fresh clusters; partial first
    // writes are merged with the base first (copy_up). Adjacent clusters of
    // one kind that are adjacent in the overlay too go as one write.
    struct Run {
        bool fresh = false;
        u64 first = 0;  // fresh: the first disk cluster
        u64 at = 0, from = 0, len = 0;
    } run;
    auto issue = [&] {
        if (run.len == 0) return;
        std::vector<iovec> part;
        slice_iov(iov, run.from, run.len, part);
        IoDone part_done = join->part();
        if (run.fresh) {
            const u64 first = run.first, count = run.len >> kClusterBits;
            const u32 slot = static_cast<u32>(run.at >> kClusterBits);
            part_done = [this, first, slot, count, part_done](int r) {
                first_write_done(first, slot, count, r);
                part_done(r);
            };
        }
        submit_rw(ring_, overlay_fd_, true, run.at, std::move(part), std::move(part_done));
        run.len = 0;
    };
    for (u64 pos = offset; pos < offset + length;) {
        const u64 v = pos >> kClusterBits;
        const u64 start = v << kClusterBits, end = std::min(start + kClusterSize, offset + length);
        const u32 p = table_[v];
        u64 at;
        bool fresh = false;
        if (p) {
            at = (u64{p} << kClusterBits) + (pos & kClusterMask);
        } else {
            const u32 q = allocate();
            if (q == 0) {
                issue();
                join->part()(-ENOSPC);  // the overlay's cluster numbers ran out
                break;
            }
            busy_.insert(v);
            if (pos != start || end != start + kClusterSize) {
                issue();
                std::vector<iovec> part;
                slice_iov(iov, pos - offset, end - pos, part);
                copy_up(v, q, pos - start, std::move(part), join->part());
                pos = end;
                continue;
            }
            at = u64{q} << kClusterBits;
            fresh = true;
        }
        if (run.len && run.fresh == fresh && run.at + run.len == at) {
            run.len += end - pos;
        } else {
            issue();
            run = {fresh, v, at, pos - offset, end - pos};
        }
        pos = end;
    }
    issue();
    join->seal();
}

void OverlayDisk::copy_up(u64 cluster, u32 slot, u64 within, std::vector<iovec> data, IoDone done) {
    // The base's bytes of the cluster, the guest's over them, then the whole
    // cluster to its fresh place. The last cluster of a disk whose size is
    // not a whole number of clusters is padded with zeros.
    struct State {
        AlignedBuf buf{kClusterSize};
        std::vector<iovec> data;
        IoDone done;
    };
    auto st = std::make_shared<State>();
    st->data = std::move(data);
    st->done = [this, cluster, slot, done = std::move(done)](int r) {
        first_write_done(cluster, slot, 1, r);
        done(r);
    };
    if (!st->buf.data()) return st->done(-ENOMEM);
    const u64 start = cluster << kClusterBits;
    const u64 from_base = std::min(kClusterSize, size() - start);
    auto merge_and_write = [this, st, slot, within](int r) {
        if (r < 0) return st->done(r);
        u64 at = within;
        for (const iovec& v : st->data) {
            std::memcpy(st->buf.data() + at, v.iov_base, v.iov_len);
            at += v.iov_len;
        }
        submit_rw(ring_, overlay_fd_, true, u64{slot} << kClusterBits, {iovec{st->buf.data(), kClusterSize}},
                  [st](int r2) { st->done(r2); });
    };
    submit_rw(ring_, base_fd_, false, start, {iovec{st->buf.data(), from_base}}, merge_and_write);
}

void OverlayDisk::first_write_done(u64 first_cluster, u32 first_slot, u64 count, int res) {
    for (u64 i = 0; i < count; ++i) {
        const u64 v = first_cluster + i;
        busy_.erase(v);
        if (res < 0) {
            // Not mapped: the cluster reads from the base still, its slot goes back.
            free_.push_back(static_cast<u32>(first_slot + i));
            continue;
        }
        table_[v] = static_cast<u32>(first_slot + i);
        ++mapped_;
        max_mapped_ = std::max<u64>(max_mapped_, first_slot + i);
        mark_dirty(static_cast<u32>(v / kEntriesPerBlock));
    }
    run_deferred();
}

void OverlayDisk::mark_dirty(u32 block) {
    if (blocks_[block].dirty) return;
    blocks_[block].dirty = true;
    dirty_.push_back(block);
}

void OverlayDisk::flush(IoDone done) {
    if (read_only_) return done(0);
    if (failed_) return done(-EIO);
    flush_waiters_.push_back(std::move(done));
    // One commit at a time; flushes that come during one share the next.
    if (!committing_) commit();
}

void OverlayDisk::commit() {
    committing_ = true;
    auto c = std::make_shared<CommitJob>();
    c->waiters.swap(flush_waiters_);
    if (dirty_.empty()) {
        // No new mapping: only the data in place needs to be durable.
        submit_fdatasync(ring_, overlay_fd_, [this, c](int r) {
            if (r < 0) fail_writes("fdatasync", -r);
            end_commit(c->waiters, r);
        });
        return;
    }
    // The changed blocks as they are now, each into its spare copy.
    c->generation = committed_ + 1;
    c->blocks.swap(dirty_);
    c->buf = AlignedBuf(c->blocks.size() * kClusterSize);
    if (!c->buf.data()) {
        for (u32 b : c->blocks) mark_dirty(b);
        return end_commit(c->waiters, -ENOMEM);
    }
    std::vector<u32> crcs(blocks_.size());
    for (usize i = 0; i < blocks_.size(); ++i) crcs[i] = blocks_[i].crc;
    for (usize i = 0; i < c->blocks.size(); ++i) {
        const u32 b = c->blocks[i];
        blocks_[b].dirty = false;
        const std::span<const u32> entries(table_.data() + u64{b} * kEntriesPerBlock, kEntriesPerBlock);
        const u32 crc =
            encode_table_block(b, c->generation, entries, c->buf.span().subspan(i * kClusterSize, kClusterSize));
        c->crcs.push_back(crc);
        crcs[b] = crc;
    }
    // Reopened, the disk hands out clusters from one past the highest mapped
    // one (first writes in flight now are in no table that commit knows).
    const u64 data_end = mapped_ ? max_mapped_ + 1 : geometry_.data_cluster;
    encode_commit({c->generation, data_end, geometry_.table_blocks, table_digest(crcs)}, c->record.span());

    // 1. the table copies; 2. fdatasync: they and every completed data write
    // are durable; 3. the commit record; 4. fdatasync: the commit is.
    auto after_record_sync = [this, c](int r) {
        if (r < 0) {
            fail_writes("fdatasync", -r);
            return end_commit(c->waiters, r);
        }
        for (usize i = 0; i < c->blocks.size(); ++i) {
            BlockState& st = blocks_[c->blocks[i]];
            st.active ^= 1;
            st.crc = c->crcs[i];
        }
        committed_ = c->generation;
        end_commit(c->waiters, 0);
    };
    auto after_record = [this, c, after_record_sync](int r) {
        if (r < 0) {
            // The record may be half there: which commit the file holds is
            // unknown until it is opened again.
            fail_writes("writing the commit record", -r);
            return end_commit(c->waiters, r);
        }
        submit_fdatasync(ring_, overlay_fd_, after_record_sync);
    };
    auto after_table_sync = [this, c, after_record](int r) {
        if (r < 0) {
            fail_writes("fdatasync", -r);
            return end_commit(c->waiters, r);
        }
        submit_rw(ring_, overlay_fd_, true, kCommitOffset[c->generation % 2], {iovec{c->record.data(), kRecordBytes}},
                  after_record);
    };
    auto after_table = [this, c, after_table_sync](int r) {
        if (r < 0) {
            // Only spare copies were written: the commit can be made again.
            for (u32 b : c->blocks) mark_dirty(b);
            return end_commit(c->waiters, r);
        }
        submit_fdatasync(ring_, overlay_fd_, after_table_sync);
    };
    Join* join = new Join(after_table);
    for (usize i = 0; i < c->blocks.size(); ++i) {
        const u32 b = c->blocks[i];
        submit_rw(ring_, overlay_fd_, true, geometry_.slot_offset(b, blocks_[b].active ^ 1),
                  {iovec{c->buf.data() + i * kClusterSize, kClusterSize}}, join->part());
    }
    join->seal();
}

void OverlayDisk::end_commit(std::vector<IoDone>& waiters, int res) {
    committing_ = false;
    for (IoDone& w : waiters) w(res);
    waiters.clear();
    if (flush_waiters_.empty()) return;
    if (failed_) {
        std::vector<IoDone> rest;
        rest.swap(flush_waiters_);
        for (IoDone& w : rest) w(-EIO);
        return;
    }
    if (!committing_) commit();
}

void OverlayDisk::fail_writes(const char* what, int err) {
    // After a failed fdatasync the kernel may have dropped the data it did
    // not write; a later one succeeding proves nothing. Stop here, as
    // databases do, rather than commit a table over lost data.
    if (!failed_)
        std::fputs(fmt::format("disco: disk overlay {}: {}: {}; the disk takes no more writes (what the last "
                               "completed flush had is safe)\n",
                               overlay_path_, what, errno_text(err))
                       .c_str(),
                   stderr);
    failed_ = true;
}
}  // namespace disco::dev
