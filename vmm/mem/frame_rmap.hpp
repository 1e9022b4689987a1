// Reverse map of machine memory: frame -> the {VM, guest-physical page} pairs
// that map it, which shootdowns, migration and sharing must find. Most frames
// have one user, kept inline in a 16-byte slot per frame; a frame with two or
// more users keeps them all in a side table instead (a hash set, since a
// shared zero page may have a great many users).
//
// Threads: any thread. Frames are spread over 256 lock stripes by number; a
// stripe's mutex guards its frames' slots and its part of the side table, so
// operations on different frames rarely contend.
#pragma once
#include <array>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "vmm/mem/host_mapping.hpp"
#include "vmm/mem/machine_frame.hpp"

namespace disco {
class FrameRmap {
public:
    /// Covers frames [0, frames). Precondition for every call: frame < frames.
    static Result<std::unique_ptr<FrameRmap>, MemoryError> create(u32 frames);

    /// Errors: InvalidUser (page number beyond 52 bits), DuplicateUser.
    Result<void, MemoryError> add(u32 frame, FrameUser user);
    /// Errors: UnknownUser.
    Result<void, MemoryError> remove(u32 frame, FrameUser user);
    /// The users in no particular order.
    std::vector<FrameUser> users(u32 frame) const;
    usize count(u32 frame) const;
    /// Forgets every user of the frame (it has been freed).
    void clear(u32 frame);

private:
    /// Inline state of one frame. word: bit 63 = `vm`/low 52 bits hold the one
    /// user; bit 62 = the users are in the side table; neither = no user.
    struct Slot {
        u64 word;
        u32 vm;
        u32 reserved;
    };
    static constexpr u64 kInline = 1ull << 63;
    static constexpr u64 kShared = 1ull << 62;

    struct UserHash {
        usize operator()(const FrameUser& u) const noexcept {
            return std::hash<u64>{}((u.gppage * 0x9E3779B97F4A7C15ull) ^ u.vm);
        }
    };
    using UserSet = std::unordered_set<FrameUser, UserHash>;
    struct alignas(64) Stripe {
        mutable std::mutex lock;
        std::unordered_map<u32, UserSet> shared;
    };
    static constexpr u32 kStripes = 256;

    explicit FrameRmap(HostMapping slots) : slots_(std::move(slots)) {}
    Slot& slot(u32 frame) const { return slots_.as<Slot>()[frame]; }
    Stripe& stripe(u32 frame) const { return stripes_[frame % kStripes]; }

    HostMapping slots_;  // Slot[frames], all-zero = no users
    mutable std::array<Stripe, kStripes> stripes_;
};
}  // namespace disco
