#include "vmm/mem/frame_rmap.hpp"

#include <fmt/format.h>

namespace disco {
namespace {
MemoryError user_error(MemoryError::Kind kind, u32 frame, FrameUser u, const char* what) {
    return MemoryError{kind, fmt::format("VM {} page {:#x} {} machine frame {:#x}", u.vm, u.gppage, what, frame)};
}
}  // namespace

Result<std::unique_ptr<FrameRmap>, MemoryError> FrameRmap::create(u32 frames) {
    auto slots = DISCO_TRY(HostMapping::reserve(u64(frames) * sizeof(Slot)));
    return std::unique_ptr<FrameRmap>(new FrameRmap(std::move(slots)));
}

Result<void, MemoryError> FrameRmap::add(u32 frame, FrameUser user) {
    if (user.gppage > kMaxGuestPage)
        return fail(user_error(MemoryError::Kind::InvalidUser, frame, user, "is no page number; cannot map"));
    Stripe& s = stripe(frame);
    std::lock_guard g(s.lock);
    Slot& sl = slot(frame);
    if (sl.word & kShared) {
        if (!s.shared[frame].insert(user).second)
            return fail(user_error(MemoryError::Kind::DuplicateUser, frame, user, "already maps"));
        return {};
    }
    if (sl.word & kInline) {
        const FrameUser first{sl.vm, sl.word & kMaxGuestPage};
        if (first == user) return fail(user_error(MemoryError::Kind::DuplicateUser, frame, user, "already maps"));
        s.shared[frame] = UserSet{first, user};
        sl = Slot{kShared, 0, 0};
        return {};
    }
    sl = Slot{kInline | user.gppage, user.vm, 0};
    return {};
}

Result<void, MemoryError> FrameRmap::remove(u32 frame, FrameUser user) {
    Stripe& s = stripe(frame);
    std::lock_guard g(s.lock);
    Slot& sl = slot(frame);
    if (sl.word & kShared) {
        auto it = s.shared.find(frame);
        if (it == s.shared.end() || it->second.erase(user) == 0)
            return fail(user_error(MemoryError::Kind::UnknownUser, frame, user, "does not map"));
        if (it->second.size() == 1) {  // back to the compact form
            const FrameUser last = *it->second.begin();
            sl = Slot{kInline | last.gppage, last.vm, 0};
            s.shared.erase(it);
        }
        return {};
    }
    if ((sl.word & kInline) && FrameUser{sl.vm, sl.word & kMaxGuestPage} == user) {
        sl = Slot{};
        return {};
    }
    return fail(user_error(MemoryError::Kind::UnknownUser, frame, user, "does not map"));
}

std::vector<FrameUser> FrameRmap::users(u32 frame) const {
    Stripe& s = stripe(frame);
    std::lock_guard g(s.lock);
    const Slot& sl = slot(frame);
    if (sl.word & kShared) {
        auto it = s.shared.find(frame);
        return it == s.shared.end() ? std::vector<FrameUser>{}
                                    : std::vector<FrameUser>(it->second.begin(), it->second.end());
    }
    if (sl.word & kInline) return {FrameUser{sl.vm, sl.word & kMaxGuestPage}};
    return {};
}

usize FrameRmap::count(u32 frame) const {
    Stripe& s = stripe(frame);
    std::lock_guard g(s.lock);
    const Slot& sl = slot(frame);
    if (sl.word & kShared) {
        auto it = s.shared.find(frame);
        return it == s.shared.end() ? 0 : it->second.size();
    }
    return (sl.word & kInline) ? 1 : 0;
}

void FrameRmap::clear(u32 frame) {
    Stripe& s = stripe(frame);
    std::lock_guard g(s.lock);
    Slot& sl = slot(frame);
    if (sl.word & kShared) s.shared.erase(frame);
    sl = Slot{};
}
}  // namespace disco
