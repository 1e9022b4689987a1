#include "vmm/monitor/fleet_console.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <pty.h>
#include <sys/eventfd.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

namespace disco::monitor {
namespace {
constexpr usize kMaxPendingLine = 4096;

/// write(2) until done; a console that cannot be written drops the bytes
/// (guest output must never stop the VM).
void write_all(int fd, const u8* data, usize size) {
    while (size > 0) {
        const ssize_t n = ::write(fd, data, size);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;
        data += n;
        size -= static_cast<usize>(n);
    }
}

/// Output written a line at a time, as its newline arrives, so that a person
/// tailing the log (or several VMs sharing stdout) sees whole lines.
class LineConsole final : public FleetConsole {
public:
    LineConsole(int fd, bool owned, std::string where) : fd_(fd), owned_(owned), where_(std::move(where)) {}
    ~LineConsole() override {
        flush();
        if (owned_) ::close(fd_);
    }

    void write(std::span<const u8> bytes) override {
        std::lock_guard lock(mutex_);
        pending_.insert(pending_.end(), bytes.begin(), bytes.end());
        usize end = pending_.size();
        while (end > 0 && pending_[end - 1] != '\n') --end;
        if (end == 0 && pending_.size() >= kMaxPendingLine) end = pending_.size();
        if (end == 0) return;
        write_all(fd_, pending_.data(), end);
        pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(end));
    }

    void flush() override {
        std::lock_guard lock(mutex_);
        write_all(fd_, pending_.data(), pending_.size());
        pending_.clear();
    }

    std::string where() const override { return where_; }

private:
    int fd_;
    bool owned_;
    std::string where_;
    std::mutex mutex_;
    std::vector<u8> pending_;
};

/// A pseudo-terminal: guest output goes to the master, what a person types on
/// the slave (/dev/pts/N) comes back as console input. The monitor keeps the
/// slave open itself so that the pty survives people attaching and leaving.
class PtyConsole final : public FleetConsole {
public:
    static Result<std::unique_ptr<FleetConsole>, Error> open() {
        int master = -1, slave = -1;
        char name[256] = {};
        if (::openpty(&master, &slave, name, nullptr, nullptr) != 0)
            return fail(Error{fmt::format("cannot open a pty: {}", std::strerror(errno))});
        std::unique_ptr<PtyConsole> pty(new PtyConsole(master, slave, name));
        // Raw on the slave: the guest's own tty echoes and edits lines; a
        // cooked slave would echo guest output back as input and hold typed
        // bytes until a newline.
        termios tio{};
        if (::tcgetattr(slave, &tio) == 0) {
            ::cfmakeraw(&tio);
            ::tcsetattr(slave, TCSANOW, &tio);
        }
        // Never block a vCPU on a pty nobody reads (see write()).
        ::fcntl(master, F_SETFL, ::fcntl(master, F_GETFL) | O_NONBLOCK);
        ::fcntl(master, F_SETFD, FD_CLOEXEC);
        ::fcntl(slave, F_SETFD, FD_CLOEXEC);
        pty->stop_fd_ = ::eventfd(0, EFD_CLOEXEC);
        if (pty->stop_fd_ < 0) return fail(Error{fmt::format("cannot create an eventfd: {}", std::strerror(errno))});
        return std::unique_ptr<FleetConsole>(std::move(pty));
    }

    ~PtyConsole() override {
        stop_input();
        ::close(master_);
        ::close(slave_);
        if (stop_fd_ >= 0) ::close(stop_fd_);
    }

    void write(std::span<const u8> bytes) override {
        std::lock_guard lock(mutex_);
        const u8* data = bytes.data();
        usize size = bytes.size();
        bool flushed = false;
        while (size > 0) {
            const ssize_t n = ::write(master_, data, size);
            if (n > 0) {
                data += n;
                size -= static_cast<usize>(n);
            } else if (n < 0 && errno == EINTR) {
                continue;
            } else if (n < 0 && errno == EAGAIN && !flushed) {
                // Nobody reads the slave and its queue is full: drop what is
                // queued so that whoever attaches next sees recent output.
                ::tcflush(slave_, TCIFLUSH);
                flushed = true;
            } else {
                return;
            }
        }
    }

    std::string where() const override { return name_; }

    Result<void, Error> start_input(InputSink sink) override {
        if (reader_.joinable()) return {};
        sink_ = std::move(sink);
        reader_ = std::thread([this] { read_loop(); });
        return {};
    }

    void stop_input() override {
        if (!reader_.joinable()) return;
        const u64 one = 1;
        [[maybe_unused]] const ssize_t n = ::write(stop_fd_, &one, sizeof one);
        reader_.join();
    }

private:
    PtyConsole(int master, int slave, std::string name) : master_(master), slave_(slave), name_(std::move(name)) {}

    void read_loop() {
        u8 buf[512];
        for (;;) {
            pollfd fds[2] = {{master_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
            if (::poll(fds, 2, -1) < 0) {
                if (errno == EINTR) continue;
                return;
            }
            if (fds[1].revents) return;
            if (!(fds[0].revents & POLLIN)) {
                // POLLHUP/POLLERR without data: nothing to read now; wait on
                // the stop fd alone rather than spin.
                if (fds[0].revents) {
                    pollfd stop = {stop_fd_, POLLIN, 0};
                    ::poll(&stop, 1, 100);
                    if (stop.revents) return;
                }
                continue;
            }
            const ssize_t n = ::read(master_, buf, sizeof buf);
            if (n > 0) sink_(std::span<const u8>(buf, static_cast<usize>(n)));
        }
    }

    int master_, slave_;
    std::string name_;
    int stop_fd_ = -1;
    std::mutex mutex_;
    InputSink sink_;
    std::thread reader_;
};
}  // namespace

Result<std::unique_ptr<FleetConsole>, Error> FleetConsole::open(const ConsoleSpec& spec) {
    switch (spec.kind) {
        case ConsoleSpec::Kind::Stdio:
            return std::unique_ptr<FleetConsole>(new LineConsole(STDOUT_FILENO, false, ""));
        case ConsoleSpec::Kind::Log: {
            const int fd = ::open(spec.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
            if (fd < 0) return fail(Error{fmt::format("console log {}: {}", spec.log_path, std::strerror(errno))});
            return std::unique_ptr<FleetConsole>(new LineConsole(fd, true, spec.log_path));
        }
        case ConsoleSpec::Kind::Pty:
            return PtyConsole::open();
    }
    return fail(Error{"unknown console kind"});
}
}  // namespace disco::monitor
