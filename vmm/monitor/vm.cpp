#include "vmm/monitor/vm.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include "vmm/board/baremetal.hpp"

namespace disco::monitor {
namespace {
void write_console(std::span<const u8> bytes) {
    // The console is the process's stdout; write(2) so that output interleaves
    // correctly with the guest's exit and nothing sits in a stdio buffer.
    usize done = 0;
    while (done < bytes.size()) {
        const ssize_t n = ::write(STDOUT_FILENO, bytes.data() + done, bytes.size() - done);
        if (n <= 0) return;
        done += static_cast<usize>(n);
    }
}
}  // namespace

Result<std::unique_ptr<Vm>, Error> Vm::create(const VmConfig& config) {
    if (config.smp < 1 || config.smp > 64)
        return fail(Error{fmt::format("--smp {} is out of range (1 to 64)", config.smp)});
    std::unique_ptr<Vm> vm(new Vm());
    vm->max_insns_ = config.max_insns;
    Vm* self = vm.get();
    board::BoardHooks hooks{
        write_console,
        [self](int status) { self->request_exit(status); },
        [self](bool level) {
            if (!self->vcpus_.empty()) self->vcpus_[0]->set_irq_line(board::kUartIrq, level);
        },
    };
    auto boot = DISCO_TRY(
        board::build_baremetal_board(vm->ram_, vm->mmio_, config.memory_bytes, config.kernel, std::move(hooks)));
    u64 limit = 0;
    for (const auto& r : vm->ram_.regions()) limit = std::max(limit, r->base().value + r->size());
    vm->code_ = std::make_unique<CodeWatch>(limit);
    for (unsigned i = 0; i < config.smp; ++i) {
        cpu::CpuBus bus{&vm->ram_, &vm->mmio_, vm->code_.get(), &vm->stop_,
                        [self](const std::string& m) { self->abort_with(m); }};
        vm->vcpus_.push_back(accel::make_interpreter(std::move(bus), boot.byte_order, i, boot.reset));
    }
    return vm;
}

Vm::~Vm() = default;

void Vm::request_exit(int status) {
    bool expected = false;
    if (stop_.compare_exchange_strong(expected, true)) exit_status_.store(status);
    for (auto& v : vcpus_) v->kick();
}

void Vm::abort_with(const std::string& message) {
    std::fprintf(stderr, "disco: %s\n", message.c_str());
    request_exit(1);
}

int Vm::run() {
    const auto start = std::chrono::steady_clock::now();
    std::vector<std::thread> threads;
    threads.reserve(vcpus_.size());
    for (auto& v : vcpus_) {
        threads.emplace_back([this, engine = v.get()] {
            const u64 budget = max_insns_ ? max_insns_ : ~0ull;
            while (!stop_.load(std::memory_order_acquire)) {
                if (engine->run(budget) == cpu::RunExit::BudgetSpent && max_insns_) {
                    abort_with(fmt::format("instruction limit {} reached at {}", max_insns_, engine->describe()));
                    break;
                }
            }
        });
    }
    for (auto& t : threads) t.join();
    run_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return exit_status_.load();
}

u64 Vm::retired_instructions() const {
    u64 n = 0;
    for (const auto& v : vcpus_) n += v->retired();
    return n;
}
}  // namespace disco::monitor
