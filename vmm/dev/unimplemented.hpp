// Logs a guest's access to a device register the model does not implement:
// once per device and offset, with its address, so that a guest probing a
// register we lack is visible to the operator without flooding the log. The
// access itself then behaves as read-as-zero / write-ignored, which is what
// the architecture allows for reserved registers (guest-board.md §1.4).
#pragma once
#include <mutex>
#include <set>
#include <string>

#include "vmm/util/types.hpp"

namespace disco::dev {

class UnimplementedRegisterLog {
public:
    /// device: the device's name; base: its guest-physical base (for the message).
    UnimplementedRegisterLog(std::string device, u64 base) : device_(std::move(device)), base_(base) {}
    /// Records an access; prints one line to stderr the first time this offset is seen.
    void note(u64 offset, unsigned size, bool write);
    /// Offsets seen so far (tests).
    usize distinct() const;

private:
    std::string device_;
    u64 base_;
    mutable std::mutex mutex_;
    std::set<u64> seen_;
};
}  // namespace disco::dev
