#include "vmm/dev/virtio/disk_backend.hpp"

#include <fmt/format.h>

#include <cstdio>

#include "vmm/dev/virtio/overlay_disk.hpp"
#include "vmm/dev/virtio/raw_disk.hpp"

namespace disco::dev {

u64 visible_disk_size(const std::string& path, u64 file_size) {
    constexpr u64 kSector = 512;
    if (file_size % kSector)
        std::fputs(fmt::format("disco: disk image {}: size {} is not a multiple of {}; the last {} bytes are not "
                               "visible to the guest\n",
                               path, file_size, kSector, file_size % kSector)
                       .c_str(),
                   stderr);
    return file_size - file_size % kSector;
}

Result<std::unique_ptr<DiskBackend>, Error> open_disk_backend(const std::string& path, const std::string& overlay,
                                                              bool read_only, IoRing& ring) {
    if (overlay.empty()) return DISCO_TRY(RawDisk::open(path, read_only, ring));
    return DISCO_TRY(OverlayDisk::open(path, overlay, read_only, ring));
}
}  // namespace disco::dev
