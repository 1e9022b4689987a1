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

std::uint64_t PerfSampler::drain() {
    if (!ring_) return 0;
    auto* meta = static_cast<perf_event_mmap_page*>(ring_);
    const auto* data = static_cast<const unsigned char*>(ring_) + meta->data_offset;
    const std::uint64_t size = meta->data_size;
    const std::uint64_t head = __atomic_load_n(&meta->data_head, __ATOMIC_ACQUIRE);
    std::uint64_t tail = meta->data_tail;
    std::uint64_t found = 0;
    while (tail + sizeof(perf_event_header) <= head) {
        perf_event_header header;
        for (std::size_t i = 0; i < sizeof(header); ++i)
            reinterpret_cast<unsigned char*>(&header)[i] = data[(tail + i) % size];
        if (header.size == 0) break;
        if (header.type == PERF_RECORD_SAMPLE) ++found;  // pid/tid, then addr: see the TODO in the header
        tail += header.size;
    }
    __atomic_store_n(&meta->data_tail, tail, __ATOMIC_RELEASE);
    samples_ += found;
    return found;
}

}  // namespace disco::numad
