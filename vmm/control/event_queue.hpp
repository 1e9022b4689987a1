// QMP events on their way from the threads that cause them (a VM's
// supervisor, a command) to the control socket's thread, which sends each to
// every connection that has finished negotiation.
//
// Threads: push() from any thread (the Fleet calls it under its lock: it only
// takes the queue's own mutex and writes an eventfd); take() and fd() from the
// server thread. Bounded: beyond `capacity` events not yet taken the oldest
// are dropped and counted (a server that is not running, or is stuck, never
// makes a VM wait or the monitor grow).
#pragma once
#include <deque>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "vmm/util/result.hpp"
#include "vmm/util/types.hpp"

namespace disco::control {

/// {"event": NAME, "data": DATA, "timestamp": {"seconds", "microseconds"}} at
/// the host's wall-clock time now (QMP's timestamp; data omitted if null).
nlohmann::json make_event(const std::string& name, nlohmann::json data);

class EventQueue {
public:
    static Result<std::unique_ptr<EventQueue>, Error> create(usize capacity = 1024);
    ~EventQueue();
    EventQueue(const EventQueue&) = delete;
    EventQueue& operator=(const EventQueue&) = delete;

    void push(nlohmann::json event);
    /// Every event waiting, oldest first; clears the eventfd.
    std::vector<nlohmann::json> take();
    /// Readable while events wait (an eventfd).
    int fd() const { return fd_; }
    /// Events dropped because nobody took them in time.
    u64 dropped() const;

private:
    EventQueue(int fd, usize capacity) : fd_(fd), capacity_(capacity) {}

    int fd_;
    usize capacity_;
    mutable std::mutex mutex_;
    std::deque<nlohmann::json> events_;
    u64 dropped_ = 0;
};
}  // namespace disco::control
