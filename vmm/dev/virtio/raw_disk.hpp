// A disk that is one raw image file or block device, read and written in
// place (disk_backend.hpp).
#pragma once
#include "vmm/dev/virtio/disk_backend.hpp"

namespace disco::dev {

class RawDisk final : public DiskBackend {
public:
    /// Opens path read-write, or read-only; errors name the file.
    static Result<std::unique_ptr<RawDisk>, Error> open(const std::string& path, bool read_only, IoRing& ring);
    ~RawDisk() override;

    u64 size() const override { return size_; }
    bool read_only() const override { return read_only_; }
    std::string name() const override { return path_; }
    std::string serial() const override;
    void read(u64 offset, std::span<const iovec> iov, IoDone done) override;
    void write(u64 offset, std::span<const iovec> iov, IoDone done) override;
    void flush(IoDone done) override;
    /// Only when opened read-only: a read-write image changes under its readers.
    const ShareableBase* shareable_base() const override { return base_ ? &*base_ : nullptr; }
    bool reads_base(u64 offset) const override { return base_ && offset < size_ && size_ - offset >= kPageSize; }

private:
    RawDisk(std::string path, int fd, u64 size, bool read_only, IoRing& ring)
        : path_(std::move(path)), fd_(fd), size_(size), read_only_(read_only), ring_(ring) {}
    const std::string path_;
    const int fd_;
    const u64 size_;
    const bool read_only_;
    IoRing& ring_;
    std::optional<ShareableBase> base_;
};
}  // namespace disco::dev
