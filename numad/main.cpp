// disco-numad: Disco's NUMA daemon (DESIGN.md "NUMA", numad/README.md). It talks to the monitor
// only through its control socket.
#include <fmt/format.h>

#include <chrono>
#include <cstdio>

#include "numad/daemon.hpp"
#include "numad/options.hpp"
#include "numad/status_file.hpp"

namespace {

int show_status(const disco::numad::Invocation& inv) {
    using namespace disco::numad;
    const std::string path = inv.options.status_file.empty() ? default_status_path() : inv.options.status_file;
    std::string raw;
    auto s = read_status(path, &raw);
    if (!s) {
        fmt::print(stderr, "disco-numad: {}\n", s.error().message);
        return 1;
    }
    if (inv.json) {
        fmt::print("{}", raw);
        return 0;
    }
    const auto now =
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch());
    fmt::print("{}", format_status(*s, now.count()));
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    auto inv = disco::numad::parse_command_line(argc, argv);
    if (!inv) {
        fmt::print(stderr, "disco-numad: {}\n", inv.error().message);
        return 2;
    }
    switch (inv->mode) {
        case disco::numad::Mode::help:
            fmt::print("{}", inv->help_text);
            return 0;
        case disco::numad::Mode::status:
            return show_status(*inv);
        case disco::numad::Mode::run:
            break;
    }
    return disco::numad::run_daemon(inv->options);
}
