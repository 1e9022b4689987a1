// The guest-physical MMIO bus of one VM: offset-only device callbacks in
// non-overlapping ranges (after Firecracker's bus). A guest-physical address is
// either RAM (GuestRam) or a device here, never both.
#pragma once
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "vmm/mem/address.hpp"
#include "vmm/util/result.hpp"

namespace disco {

/// A device register window. Offsets are relative to the window's base; size is
/// the access width in bytes (1, 2, 4 or 8). Values are as the CPU sees them
/// (the device decides its own register byte order).
class MmioDevice {
public:
    virtual ~MmioDevice() = default;
    virtual u64 mmio_read(u64 offset, unsigned size) = 0;
    virtual void mmio_write(u64 offset, unsigned size, u64 value) = 0;
    virtual std::string name() const = 0;
    /// One line of internal state for diagnostics (a hung guest); "" when there is nothing to say.
    virtual std::string describe_state() const { return {}; }
};

/// The vCPU whose access is being served. Per-CPU register blocks (the GIC's
/// VP-local section, the CM's core-local block) answer differently to each
/// vCPU, as on hardware where the bus carries the requester's id. The vCPU
/// thread sets it once at start (set_current_vcpu); other threads (device
/// I/O threads, tests) read 0 unless they set it themselves.
unsigned current_vcpu();
void set_current_vcpu(unsigned index);

class MmioBus {
public:
    /// Registers dev at [base, base + len); rejects empty, overflowing or overlapping ranges.
    Result<void, Error> add(GuestPhysAddr base, u64 len, std::shared_ptr<MmioDevice> dev);
    struct Hit {
        MmioDevice* device;
        u64 offset;
    };
    /// The device and offset for [a, a + size), or nullopt when nothing is mapped there.
    std::optional<Hit> find(GuestPhysAddr a, unsigned size) const;

private:
    struct Range {
        u64 len;
        std::shared_ptr<MmioDevice> dev;
    };
    std::map<u64, Range> ranges_;
};
}  // namespace disco
