#include "vmm/dev/virtio/disk_backend.hpp"

#include <fmt/format.h>
#include <sys/stat.h>

#include <cstdio>

#include "vmm/dev/virtio/overlay_disk.hpp"
#include "vmm/dev/virtio/raw_disk.hpp"

namespace disco::dev {

std::optional<DiskImageId> image_identity(int fd) {
    struct stat st {};
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
    return DiskImageId{static_cast<u64>(st.st_dev), static_cast<u64>(st.st_ino), static_cast<u64>(st.st_size),
                       static_cast<i64>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec};
}

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
