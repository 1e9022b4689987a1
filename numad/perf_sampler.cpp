#include "numad/perf_sampler.hpp"

#include <errno.h>
#include <fmt/format.h>
#include <linux/perf_event.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <utility>

namespace disco::numad {

namespace {

constexpr std::size_t ring_pages = 16;  // data pages (a power of two, perf_event_open(2))

std::string open_failure(int err) {
    switch (err) {
        case ENOENT:
        case EOPNOTSUPP:
        case ENODEV:
            return "the host PMU offers no cache-miss sampling event (hardware events not supported here)";
        case EACCES:
        case EPERM:
            return "not allowed to sample the monitor (needs CAP_PERFMON or a lower kernel.perf_event_paranoid)";
        default:
            return fmt::format("perf_event_open: {}", strerror(err));
    }
}

}  // namespace

Result<PerfSampler, PerfError> PerfSampler::open(pid_t pid, std::uint64_t period) {
    perf_event_attr attr{};
    attr.size = sizeof(attr);
    attr.type = PERF_TYPE_HARDWARE;
    attr.config = PERF_COUNT_HW_CACHE_MISSES;
    attr.sample_period = period;
    attr.sample_type = PERF_SAMPLE_TID | PERF_SAMPLE_ADDR;
    attr.exclude_kernel = 1;
    attr.exclude_hv = 1;
    attr.inherit = 1;  // the monitor's vCPU threads, including those started later
    attr.disabled = 0;
    const long fd = syscall(SYS_perf_event_open, &attr, pid, -1, -1, PERF_FLAG_FD_CLOEXEC);
    if (fd < 0) return fail(PerfError{open_failure(errno)});
    const std::size_t bytes = static_cast<std::size_t>(sysconf(_SC_PAGESIZE)) * (ring_pages + 1);
    void* ring = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, static_cast<int>(fd), 0);
    if (ring == MAP_FAILED) {
        const int err = errno;
        close(static_cast<int>(fd));
        return fail(PerfError{fmt::format("mapping the perf ring: {}", strerror(err))});
    }
    return PerfSampler(static_cast<int>(fd), ring, bytes);
}

PerfSampler::PerfSampler(PerfSampler&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      ring_(std::exchange(other.ring_, nullptr)),
      ring_bytes_(other.ring_bytes_),
      samples_(other.samples_) {}

PerfSampler::~PerfSampler() {
    if (ring_) munmap(ring_, ring_bytes_);
    if (fd_ >= 0) close(fd_);
}

RingParse parse_perf_ring(std::span<const unsigned char> data, std::uint64_t tail, std::uint64_t head,
                          std::vector<PerfSample>& out) {
    RingParse r{tail, 0, 0};
    const std::uint64_t size = data.size();
    if (size == 0 || (size & (size - 1)) != 0 || head < tail || head - tail > size) {
        r.tail = head;  // not a ring, or a head that is not one: nothing in it can be trusted
        if (head != tail) ++r.malformed;
        return r;
    }
    const auto copy = [&](std::uint64_t at, void* to, std::size_t n) {
        auto* bytes = static_cast<unsigned char*>(to);
        for (std::size_t i = 0; i < n; ++i) bytes[i] = data[(at + i) & (size - 1)];
    };
    while (r.tail < head) {
        const std::uint64_t left = head - r.tail;
        perf_event_header header{};
        if (left < sizeof(header) || (copy(r.tail, &header, sizeof(header)), header.size < sizeof(header)) ||
            header.size % 8 != 0 || header.size > left) {
            ++r.malformed;
            r.tail = head;
            break;
        }
        ++r.records;
        if (header.type == PERF_RECORD_SAMPLE) {
            struct {
                std::uint32_t pid, tid;
                std::uint64_t addr;
            } body{};
            static_assert(sizeof(body) == 16);
            if (header.size < sizeof(header) + sizeof(body)) {
                ++r.malformed;  // too short for what was asked: skip it, the size still holds
            } else {
                copy(r.tail + sizeof(header), &body, sizeof(body));
                if (body.addr != 0) out.push_back(PerfSample{body.addr, body.tid});
            }
        }
        r.tail += header.size;
    }
    return r;
}

std::vector<PerfSample> PerfSampler::drain() {
    std::vector<PerfSample> out;
    if (!ring_) return out;
    auto* meta = static_cast<perf_event_mmap_page*>(ring_);
    // Kernels before 4.1 leave data_offset/data_size 0: the data then follow the first page.
    const std::uint64_t page = static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE));
    const std::uint64_t offset = meta->data_offset ? meta->data_offset : page;
    const std::uint64_t size = meta->data_size ? meta->data_size : ring_bytes_ - page;
    if (offset > ring_bytes_ || size > ring_bytes_ - offset) return out;
    const auto* data = static_cast<const unsigned char*>(ring_) + offset;
    const std::uint64_t head = __atomic_load_n(&meta->data_head, __ATOMIC_ACQUIRE);
    const RingParse r = parse_perf_ring({data, static_cast<std::size_t>(size)}, meta->data_tail, head, out);
    __atomic_store_n(&meta->data_tail, r.tail, __ATOMIC_RELEASE);
    samples_ += out.size();
    malformed_ += r.malformed;
    return out;
}

}  // namespace disco::numad
