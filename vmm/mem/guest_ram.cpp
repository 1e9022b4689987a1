#include "vmm/mem/guest_ram.hpp"

#include <fmt/format.h>
#include <sys/mman.h>

#include <cstring>

namespace disco {

std::string MemError::message() const {
    switch (kind) {
        case Kind::OutOfRange:
            return fmt::format("guest-physical range {:#x}+{:#x} is not RAM", address, length);
        case Kind::HostAllocation:
            return fmt::format("cannot reserve {} MiB of host memory for guest RAM", length >> 20);
        case Kind::Overlap:
            return fmt::format("RAM region at {:#x} overlaps another", address);
    }
    return "memory error";
}

Result<std::unique_ptr<RamRegion>, MemError> RamRegion::create(GuestPhysAddr base, u64 size) {
    if (size == 0 || (size & (kPageSize - 1)) || (base.value & (kPageSize - 1)) || base.value + size < base.value)
        return fail(MemError{MemError::Kind::OutOfRange, base.value, size});
    // MAP_NORESERVE: guest RAM is touched lazily, like physical RAM a guest never uses.
    void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) return fail(MemError{MemError::Kind::HostAllocation, base.value, size});
    return std::unique_ptr<RamRegion>(new RamRegion(base, size, static_cast<u8*>(p)));
}

RamRegion::~RamRegion() { munmap(host_, size_); }

Result<void, MemError> GuestRam::add_region(GuestPhysAddr base, u64 size) {
    for (const auto& r : regions_) {
        if (base.value < r->base().value + r->size() && r->base().value < base.value + size)
            return fail(MemError{MemError::Kind::Overlap, base.value, size});
    }
    auto region = DISCO_TRY(RamRegion::create(base, size));
    regions_.push_back(std::move(region));
    return {};
}

std::optional<std::span<u8>> GuestRam::host_span(GuestPhysAddr a, u64 len) const {
    for (const auto& r : regions_) {
        if (r->contains(a, len)) return std::span<u8>(r->host() + (a.value - r->base().value), len);
    }
    return std::nullopt;
}

u8* GuestRam::host_page(GuestPhysAddr a) const {
    const GuestPhysAddr page(a.value & ~(kPageSize - 1));
    for (const auto& r : regions_) {
        if (r->contains(page, kPageSize)) return r->host() + (page.value - r->base().value);
    }
    return nullptr;
}

Result<void, MemError> GuestRam::read(GuestPhysAddr a, std::span<u8> out) const {
    auto s = host_span(a, out.size());
    if (!s) return fail(MemError{MemError::Kind::OutOfRange, a.value, out.size()});
    std::memcpy(out.data(), s->data(), out.size());
    return {};
}

Result<void, MemError> GuestRam::write(GuestPhysAddr a, std::span<const u8> in) {
    auto s = host_span(a, in.size());
    if (!s) return fail(MemError{MemError::Kind::OutOfRange, a.value, in.size()});
    std::memcpy(s->data(), in.data(), in.size());
    note_dma_write(a, in.size());
    return {};
}

void GuestRam::note_dma_write(GuestPhysAddr a, u64 len) const {
    if (!dma_observer_ || len == 0) return;
    for (u64 page = a.page(); page <= (a.value + len - 1) >> kPageShift; ++page) dma_observer_(page);
}

u64 GuestRam::total_size() const {
    u64 t = 0;
    for (const auto& r : regions_) t += r->size();
    return t;
}
}  // namespace disco
