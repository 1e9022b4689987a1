// Crash consistency of disk overlays (configs/disk-overlay-format.md): many
// cycles of a writer process driving an OverlayDisk (random writes, whole and
// partial clusters, new and rewritten, with flushes among them) killed with
// SIGKILL at a random moment, then the overlay reopened and read whole. Each
// time it must open, hold every write acknowledged before a flush that was
// acknowledged, and hold nothing else but the base or writes issued since.
//
//   overlay_crash [--cycles N] [--seed S] [--max-delay-ms M] [--keep DIR]
//   overlay_crash --writer BASE OVERLAY FIRST_SEQ SEED      (the child)
//   overlay_crash --dump BASE OVERLAY OUT
//
// --dump opens OVERLAY on BASE read-only, as a crash left it, writes the whole
// disk it holds to OUT and prints "generation G clusters N size S" (exit 0), or
// one line saying why it does not open (exit 1): the checker of
// tests/linux/test_crash.py, whose writer is a Linux guest.
//
// The writer logs on stdout, one write(2) per line, each line before the
// thing it announces can have happened:
//   O                  the overlay is open
//   W seq sector n     write seq of n sectors is about to be issued
//   A seq              write seq completed (X seq err: failed)
//   F id / D id        flush id issued / completed (every A before F id is covered)
// Every sector a write puts down names its write and sector and is otherwise
// filled from them, so the checker knows which version each sector holds.
//
// Exit status 0 passed, 1 failed (with the seed to run it again).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "vmm/dev/virtio/overlay_disk.hpp"
#include "vmm/mem/endian.hpp"
#include "vmm/util/crc32c.hpp"

using namespace disco;
using dev::OverlayDisk;

namespace {
constexpr u64 kSector = 512;
constexpr u64 kCluster = dev::overlay::kClusterSize;
// 2500 clusters and two sectors: three table blocks and a partial last cluster.
constexpr u64 kDiskBytes = 2500 * kCluster + 2 * kSector;
constexpr u64 kSectors = kDiskBytes / kSector;
constexpr u64 kHotSectors = 64 * kCluster / kSector;  // half the writes land here: rewrites in place
constexpr unsigned kDepth = 8;                        // writes in flight

u64 mix(u64 x) {  // splitmix64
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}
u8 base_byte(u64 at) { return static_cast<u8>(mix(at / 8) >> (8 * (at % 8))); }

/// What write seq puts in sector s.
void fill_sector(u8* out, u64 seq, u64 s) {
    store_guest<ByteOrder::Little, u64>(out, seq);
    store_guest<ByteOrder::Little, u64>(out + 8, s);
    for (u64 i = 16; i < kSector; i += 8)
        store_guest<ByteOrder::Little, u64>(out + i, mix(seq * 0x100000001ull + s * 977 + i));
}

void say(const std::string& line) {
    const std::string l = line + "\n";
    [[maybe_unused]] const ssize_t n = ::write(1, l.data(), l.size());
}

/// Opens the overlay on base read-only and reads the whole disk into `disk`;
/// the reason if it does not open or read.
std::string read_overlay(const std::string& base, const std::string& ovl, std::vector<u8>& disk,
                         u64* generation = nullptr, u64* clusters = nullptr) {
    auto ring = dev::IoRing::create(64);
    if (!ring) return ring.error().message;
    auto d = OverlayDisk::open(base, ovl, true, **ring);
    if (!d) return "the overlay does not open: " + d.error().message;
    disk.assign((*d)->size(), 0);
    int result = 1;
    const iovec iov{disk.data(), disk.size()};
    (*d)->read(0, std::span<const iovec>(&iov, 1), [&](int r) { result = r; });
    (*ring)->run_until([&] { return result != 1; });
    if (result != 0) return "reading the disk failed: " + std::string(std::strerror(-result));
    if (generation) *generation = (*d)->generation();
    if (clusters) *clusters = (*d)->clusters_in_overlay();
    return {};
}

int dump(const std::string& base, const std::string& ovl, const std::string& out) {
    std::vector<u8> disk;
    u64 generation = 0, clusters = 0;
    if (auto why = read_overlay(base, ovl, disk, &generation, &clusters); !why.empty()) {
        std::printf("overlay_crash: %s\n", why.c_str());
        return 1;
    }
    const int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || ::write(fd, disk.data(), disk.size()) != static_cast<ssize_t>(disk.size())) {
        std::printf("overlay_crash: cannot write %s: %s\n", out.c_str(), std::strerror(errno));
        return 1;
    }
    ::close(fd);
    std::printf("generation %lu clusters %lu size %zu\n", generation, clusters, disk.size());
    return 0;
}

// ---- the writer (child) ----

int writer(const std::string& base, const std::string& ovl, u64 seq, u64 seed) {
    auto ring = dev::IoRing::create(256);
    if (!ring) return say("E " + ring.error().message), 3;
    auto disk = OverlayDisk::open(base, ovl, false, **ring);
    if (!disk) return say("E " + disk.error().message), 3;
    say("O");
    std::mt19937_64 rng(seed);
    struct Req {
        u64 first, count;
        std::vector<u8> data;
        iovec iov;
    };
    std::map<u64, Req> in_flight;
    unsigned flushes = 0;
    u64 flush_id = 0;
    auto overlaps = [&](u64 first, u64 count) {
        for (const auto& [s, r] : in_flight)
            if (first < r.first + r.count && r.first < first + count) return true;
        return false;
    };
    const auto stop = std::chrono::steady_clock::now() + std::chrono::seconds(20);  // if nobody kills it
    while (std::chrono::steady_clock::now() < stop) {
        while (in_flight.size() < kDepth) {
            u64 first, count;
            const u64 kind = rng() % 4;
            const u64 span = rng() % 2 ? kHotSectors : kSectors;
            if (kind == 0) {  // whole clusters
                count = (1 + rng() % 4) * (kCluster / kSector);
                first = (rng() % (span / (kCluster / kSector))) * (kCluster / kSector);
            } else {  // anything: partial clusters, straddling ones
                count = 1 + rng() % 20;
                first = rng() % span;
            }
            count = std::min(count, kSectors - first);
            if (overlaps(first, count)) break;
            Req& r = in_flight[seq];
            r.first = first;
            r.count = count;
            r.data.resize(count * kSector);
            for (u64 i = 0; i < count; ++i) fill_sector(r.data.data() + i * kSector, seq, first + i);
            r.iov = {r.data.data(), r.data.size()};
            say("W " + std::to_string(seq) + " " + std::to_string(first) + " " + std::to_string(count));
            (*disk)->write(first * kSector, std::span<const iovec>(&r.iov, 1), [&, seq](int res) {
                say((res == 0 ? "A " : "X ") + std::to_string(seq));
                in_flight.erase(seq);
            });
            ++seq;
            if (rng() % 6 == 0 && flushes < 2) {
                const u64 id = ++flush_id;
                say("F " + std::to_string(id));
                ++flushes;
                (*disk)->flush([&, id](int res) {
                    say((res == 0 ? "D " : "Y ") + std::to_string(id));
                    --flushes;
                });
            }
        }
        (*ring)->submit_and_reap(&dev::IoRing::dispatch);
    }
    return 0;
}

// ---- the checker (parent) ----

struct Cycle {
    bool opened = false;
    std::string error;                          // the writer's E line
    std::map<u64, std::pair<u64, u64>> writes;  // seq -> first sector, count
    std::set<u64> durable;                      // writes a completed flush covered
    unsigned flushes_done = 0;
};

Cycle parse(const std::string& log) {
    Cycle c;
    std::vector<u64> acked;             // since the start, in order
    std::map<u64, usize> flush_covers;  // flush id -> how many of acked it covers
    usize pos = 0;
    while (pos < log.size()) {
        const usize nl = log.find('\n', pos);
        if (nl == std::string::npos) break;  // a partial last line: not said
        const std::string line = log.substr(pos, nl - pos);
        pos = nl + 1;
        if (line.empty()) continue;
        u64 a = 0, b = 0, n = 0;
        switch (line[0]) {
            case 'O':
                c.opened = true;
                break;
            case 'E':
                c.error = line.substr(2);
                break;
            case 'X':
            case 'Y':
                c.error = "an overlay request failed: " + line;
                break;
            case 'W':
                std::sscanf(line.c_str(), "W %lu %lu %lu", &a, &b, &n);
                c.writes[a] = {b, n};
                break;
            case 'A':
                std::sscanf(line.c_str(), "A %lu", &a);
                acked.push_back(a);
                break;
            case 'F':
                std::sscanf(line.c_str(), "F %lu", &a);
                flush_covers[a] = acked.size();
                break;
            case 'D': {
                std::sscanf(line.c_str(), "D %lu", &a);
                const usize upto = flush_covers[a];
                for (usize i = 0; i < upto; ++i) c.durable.insert(acked[i]);
                ++c.flushes_done;
                break;
            }
            default:
                break;
        }
    }
    return c;
}

struct Options {
    unsigned cycles = 120;
    u64 seed = 0;
    unsigned max_delay_ms = 120;
    std::string keep;
};

class Checker {
public:
    Checker(const Options& o, std::string dir) : opt_(o), dir_(std::move(dir)), rng_(o.seed) {
        base_ = dir_ + "/base.img";
        ovl_ = dir_ + "/vm.ovl";
        std::vector<u8> b(kDiskBytes);
        for (u64 i = 0; i < b.size(); ++i) b[i] = base_byte(i);
        const int fd = ::open(base_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || ::write(fd, b.data(), b.size()) != static_cast<ssize_t>(b.size())) die("cannot write the base");
        ::close(fd);
        base_crc_ = crc32c(b);
        floor_.assign(kSectors, 0);
    }

    bool run() {
        u64 seq = 1;
        for (unsigned cycle = 1; cycle <= opt_.cycles; ++cycle) {
            // Now and then a fresh overlay, killed perhaps while it is being made.
            const bool fresh = cycle % 20 == 1;
            if (fresh) {
                std::filesystem::remove(ovl_);
                floor_.assign(kSectors, 0);
            }
            // When to kill: a quarter of the kills very early (while opening or
            // making the overlay), a third at any time, the rest a little after
            // the writer's k-th completed flush, in the commits that follow it
            // (however slow the host's fdatasync is).
            const u64 how = rng_() % 12;
            Kill kill;
            if (how < 3) {
                kill.delay_us = static_cast<unsigned>(rng_() % 5000);
            } else if (how < 7) {
                kill.delay_us = static_cast<unsigned>(rng_() % (opt_.max_delay_ms * 1000));
            } else {
                kill.after_flushes = 1 + static_cast<unsigned>(rng_() % 3);
                kill.delay_us = static_cast<unsigned>(rng_() % 10000);
            }
            const auto [log, status] = run_writer(seq, rng_(), kill);
            seq += 10'000'000;  // each cycle's writes get numbers above every earlier one
            const Cycle c = parse(log);
            if (!c.error.empty()) return failed(cycle, "the writer failed: " + c.error);
            if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
                return failed(cycle, "the writer ended on its own (status " + std::to_string(status) + ")");
            if (auto why = check(c); !why.empty()) return failed(cycle, why);
            ++kills_;
            flushes_ += c.flushes_done;
            durable_ += c.durable.size();
            writes_ += c.writes.size();
            if (c.flushes_done) ++cycles_with_flush_;
        }
        std::printf(
            "overlay crash test: %u kills, %lu writes issued, %lu flushes completed, %lu writes covered by "
            "a completed flush, all present; %u cycles had a completed flush; base unchanged\n",
            kills_, writes_, flushes_, durable_, cycles_with_flush_);
        // The test must have tested something: most cycles should reach a flush.
        if (cycles_with_flush_ < opt_.cycles / 3) {
            std::printf("FAILED: too few cycles reached a completed flush (%u of %u)\n", cycles_with_flush_,
                        opt_.cycles);
            return false;
        }
        return true;
    }

private:
    [[noreturn]] void die(const std::string& why) {
        std::fprintf(stderr, "overlay crash test: %s\n", why.c_str());
        std::exit(1);
    }
    bool failed(unsigned cycle, const std::string& why) {
        std::printf("FAILED in cycle %u (seed %lu): %s\n", cycle, opt_.seed, why.c_str());
        return false;
    }

    struct Kill {
        unsigned after_flushes = 0;  // count delay_us from the writer's this-many-th "D" line (0: from its start)
        unsigned delay_us = 0;
    };

    /// Runs the writer and kills it as `kill` says; its log and wait status.
    std::pair<std::string, int> run_writer(u64 seq, u64 seed, Kill kill) {
        int p[2];
        if (pipe2(p, O_CLOEXEC) != 0) die("pipe");
        const pid_t pid = fork();
        if (pid < 0) die("fork");
        if (pid == 0) {
            dup2(p[1], 1);
            const std::string s = std::to_string(seq), r = std::to_string(seed);
            execl("/proc/self/exe", "overlay_crash", "--writer", base_.c_str(), ovl_.c_str(), s.c_str(), r.c_str(),
                  static_cast<char*>(nullptr));
            _exit(127);
        }
        ::close(p[1]);
        std::string log;
        char buf[65536];
        // Read while it runs (its log must never block it), kill it at the deadline.
        using Clock = std::chrono::steady_clock;
        const auto start = Clock::now();
        std::optional<Clock::time_point> deadline;
        if (kill.after_flushes == 0) deadline = start + std::chrono::microseconds(kill.delay_us);
        const auto give_up = start + std::chrono::seconds(10);  // a writer that never flushes
        bool killed = false;
        for (;;) {
            const auto now = Clock::now();
            if (!deadline && (now >= give_up || count_done(log) >= kill.after_flushes))
                deadline = now + std::chrono::microseconds(kill.delay_us);
            if (!killed && deadline && now >= *deadline) {
                ::kill(pid, SIGKILL);
                killed = true;
            }
            // Until the deadline is known, look at the log every millisecond.
            int wait_ms = killed ? 1000 : 1;
            if (!killed && deadline)
                wait_ms = 1 + static_cast<int>(
                                  std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - now).count());
            pollfd pfd{p[0], POLLIN, 0};
            if (::poll(&pfd, 1, wait_ms) > 0) {
                const ssize_t n = ::read(p[0], buf, sizeof buf);
                if (n <= 0) break;  // the writer is gone
                log.append(buf, static_cast<usize>(n));
            }
        }
        ::close(p[0]);
        if (!killed) ::kill(pid, SIGKILL);
        int status = 0;
        ::waitpid(pid, &status, 0);
        return {log, status};
    }

    static unsigned count_done(const std::string& log) {
        unsigned n = 0;
        for (usize at = log.find("\nD "); at != std::string::npos; at = log.find("\nD ", at + 1)) ++n;
        return n;
    }

    /// Opens the overlay as the crash left it and reads every sector.
    std::string check(const Cycle& c) {
        if (crc32c(read_all(base_)) != base_crc_) return "the base image changed";
        // Durable now: every write a completed flush covered (the highest per sector).
        for (const u64 seq : c.durable) {
            const auto [first, count] = c.writes.at(seq);
            for (u64 s = first; s < first + count; ++s) floor_[s] = std::max(floor_[s], seq);
        }
        std::vector<u8> disk(kDiskBytes);
        if (!std::filesystem::exists(ovl_)) {
            // Killed while making it: then it never opened, and nothing was written.
            if (c.opened) return "the overlay is gone after the writer had opened it";
            for (u64 i = 0; i < kDiskBytes; ++i) disk[i] = base_byte(i);
        } else {
            if (auto why = read_overlay(base_, ovl_, disk); !why.empty()) return why;
            if (disk.size() != kDiskBytes) return "the disk size changed";
        }
        std::vector<u8> want(kSector);
        for (u64 s = 0; s < kSectors; ++s) {
            const u8* got = disk.data() + s * kSector;
            // Which version is it: the base's, or which write's?
            u64 version = 0;
            bool is_base = true;
            for (u64 i = 0; i < kSector && is_base; ++i) is_base = got[i] == base_byte(s * kSector + i);
            if (!is_base) {
                version = load_guest<ByteOrder::Little, u64>(got);
                fill_sector(want.data(), version, s);
                if (version == 0 || std::memcmp(want.data(), got, kSector) != 0)
                    return "sector " + std::to_string(s) + " holds neither the base nor any write's data";
            }
            const u64 floor = floor_[s];
            if (version == floor) continue;
            if (version < floor)
                return "sector " + std::to_string(s) + " lost write " + std::to_string(floor) +
                       " (a completed flush covered it); it holds " +
                       (version ? "the older write " + std::to_string(version) : std::string("the base's data"));
            // Newer than what must be there: a write issued in this cycle, after it.
            const auto w = c.writes.find(version);
            if (w == c.writes.end() || s < w->second.first || s >= w->second.first + w->second.second)
                return "sector " + std::to_string(s) + " holds write " + std::to_string(version) +
                       ", which never wrote it";
        }
        // What the reopened disk holds is what it holds from now on.
        for (u64 s = 0; s < kSectors; ++s) {
            const u8* got = disk.data() + s * kSector;
            bool is_base = true;
            for (u64 i = 0; i < kSector && is_base; ++i) is_base = got[i] == base_byte(s * kSector + i);
            floor_[s] = is_base ? 0 : load_guest<ByteOrder::Little, u64>(got);
        }
        return {};
    }

    static std::vector<u8> read_all(const std::string& path) {
        std::vector<u8> out(std::filesystem::file_size(path));
        const int fd = ::open(path.c_str(), O_RDONLY);
        if (fd < 0 || ::pread(fd, out.data(), out.size(), 0) != static_cast<ssize_t>(out.size())) out.clear();
        if (fd >= 0) ::close(fd);
        return out;
    }

    const Options opt_;
    const std::string dir_;
    std::mt19937_64 rng_;
    std::string base_, ovl_;
    u32 base_crc_ = 0;
    std::vector<u64> floor_;  // per sector: the version that must be there (0: the base)
    unsigned kills_ = 0, cycles_with_flush_ = 0;
    u64 flushes_ = 0, durable_ = 0, writes_ = 0;
};
}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    if (!args.empty() && args[0] == "--writer") {
        if (args.size() != 5) return 2;
        return writer(args[1], args[2], std::stoull(args[3]), std::stoull(args[4]));
    }
    if (!args.empty() && args[0] == "--dump") {
        if (args.size() != 4) {
            std::fprintf(stderr, "usage: overlay_crash --dump BASE OVERLAY OUT\n");
            return 2;
        }
        return dump(args[1], args[2], args[3]);
    }
    Options o;
    o.seed = static_cast<u64>(std::chrono::system_clock::now().time_since_epoch().count());
    for (usize i = 0; i + 1 < args.size(); i += 2) {
        if (args[i] == "--cycles")
            o.cycles = static_cast<unsigned>(std::stoul(args[i + 1]));
        else if (args[i] == "--seed")
            o.seed = std::stoull(args[i + 1]);
        else if (args[i] == "--max-delay-ms")
            o.max_delay_ms = static_cast<unsigned>(std::stoul(args[i + 1]));
        else if (args[i] == "--keep")
            o.keep = args[i + 1];
        else {
            std::fprintf(stderr, "overlay_crash: unknown option %s\n", args[i].c_str());
            return 2;
        }
    }
    std::string dir = o.keep;
    if (dir.empty()) {
        char name[] = "/tmp/disco-overlay-crash-XXXXXX";
        if (!mkdtemp(name)) return 1;
        dir = name;
    } else {
        std::filesystem::create_directories(dir);
    }
    std::printf("overlay crash test: %u cycles, seed %lu, in %s\n", o.cycles, o.seed, dir.c_str());
    std::fflush(stdout);
    const auto t0 = std::chrono::steady_clock::now();
    const bool ok = Checker(o, dir).run();
    std::printf("overlay crash test: %.1f s\n",
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    if (ok && o.keep.empty()) std::filesystem::remove_all(dir);
    if (!ok) std::printf("the files are kept in %s\n", dir.c_str());
    return ok ? 0 : 1;
}
