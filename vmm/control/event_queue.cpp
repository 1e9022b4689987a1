#include "vmm/control/event_queue.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>

namespace disco::control {

nlohmann::json make_event(const std::string& name, nlohmann::json data) {
    timespec now{};
    nlohmann::json timestamp;
    if (clock_gettime(CLOCK_REALTIME, &now) == 0)
        timestamp = {{"seconds", now.tv_sec}, {"microseconds", now.tv_nsec / 1000}};
    else
        timestamp = {{"seconds", -1}, {"microseconds", -1}};  // QMP's "unknown"
    nlohmann::json event = {{"event", name}};
    if (!data.is_null()) event["data"] = std::move(data);
    event["timestamp"] = std::move(timestamp);
    return event;
}

Result<std::unique_ptr<EventQueue>, Error> EventQueue::create(usize capacity) {
    const int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0) return fail(Error{std::string("control: eventfd: ") + std::strerror(errno)});
    return std::unique_ptr<EventQueue>(new EventQueue(fd, capacity ? capacity : 1));
}

EventQueue::~EventQueue() { ::close(fd_); }

void EventQueue::push(nlohmann::json event) {
    {
        std::lock_guard lock(mutex_);
        if (events_.size() >= capacity_) {
            events_.pop_front();
            ++dropped_;
        }
        events_.push_back(std::move(event));
    }
    const u64 one = 1;
    [[maybe_unused]] const ssize_t n = ::write(fd_, &one, sizeof one);  // EAGAIN: already readable
}

std::vector<nlohmann::json> EventQueue::take() {
    u64 count = 0;
    [[maybe_unused]] const ssize_t n = ::read(fd_, &count, sizeof count);
    std::lock_guard lock(mutex_);
    std::vector<nlohmann::json> out(std::make_move_iterator(events_.begin()), std::make_move_iterator(events_.end()));
    events_.clear();
    return out;
}

u64 EventQueue::dropped() const {
    std::lock_guard lock(mutex_);
    return dropped_;
}
}  // namespace disco::control
