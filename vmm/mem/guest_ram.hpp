// Guest RAM: host memory backing a VM's guest-physical RAM ranges. Devices
// and the CPU slow path use the bounds-checked accessors; the CPU's fast path
// caches host pointers from host_span() in its soft TLB (vmm/cpu/soft_tlb.hpp).
#pragma once
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "vmm/mem/address.hpp"
#include "vmm/util/result.hpp"

namespace disco {

/// Errors of the memory module.
struct MemError {
    enum class Kind { OutOfRange, HostAllocation, Overlap } kind;
    u64 address = 0;
    u64 length = 0;
    std::string message() const;
};

/// One contiguous RAM range [base, base + size) backed by an anonymous mapping.
class RamRegion {
public:
    static Result<std::unique_ptr<RamRegion>, MemError> create(GuestPhysAddr base, u64 size);
    ~RamRegion();
    RamRegion(const RamRegion&) = delete;
    RamRegion& operator=(const RamRegion&) = delete;

    GuestPhysAddr base() const { return base_; }
    u64 size() const { return size_; }
    u8* host() const { return host_; }
    bool contains(GuestPhysAddr a, u64 len) const {
        return a.value >= base_.value && len <= size_ && a.value - base_.value <= size_ - len;
    }

private:
    RamRegion(GuestPhysAddr b, u64 s, u8* h) : base_(b), size_(s), host_(h) {}
    GuestPhysAddr base_;
    u64 size_;
    u8* host_;
};

/// All RAM of one VM: a short list of regions (RAM0 below the MMIO hole and
/// RAM1 above it). Lookups are bounds- and overflow-checked.
class GuestRam {
public:
    Result<void, MemError> add_region(GuestPhysAddr base, u64 size);
    /// Host bytes for [a, a+len) when they lie wholly inside one region.
    std::optional<std::span<u8>> host_span(GuestPhysAddr a, u64 len) const;
    /// Host pointer to the 4 KiB page holding a, or nullptr when a is not RAM.
    u8* host_page(GuestPhysAddr a) const;
    Result<void, MemError> read(GuestPhysAddr a, std::span<u8> out) const;
    Result<void, MemError> write(GuestPhysAddr a, std::span<const u8> in);
    u64 total_size() const;

    /// Devices write guest RAM behind the CPU's back (DMA through host
    /// pointers from host_span, or write()): each such write is reported here
    /// page by page, so that code a vCPU decoded from those pages is dropped
    /// before the guest is told the data is there (DESIGN.md, "Code pages").
    void set_dma_observer(std::function<void(u64 ppage)> observer) { dma_observer_ = std::move(observer); }
    void note_dma_write(GuestPhysAddr a, u64 len) const;
    const std::vector<std::unique_ptr<RamRegion>>& regions() const { return regions_; }

private:
    std::vector<std::unique_ptr<RamRegion>> regions_;
    std::function<void(u64)> dma_observer_;
};
}  // namespace disco
