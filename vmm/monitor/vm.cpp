#include "vmm/monitor/vm.hpp"

#include <fmt/format.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include "vmm/board/baremetal.hpp"
#include "vmm/dev/uart16550.hpp"
#include "vmm/dev/virtio/console.hpp"
#include "vmm/monitor/page_churn.hpp"

namespace disco::monitor {
namespace {
void write_stdout(std::span<const u8> bytes) {
    // write(2) so that output interleaves correctly with the guest's exit and
    // nothing sits in a stdio buffer.
    usize done = 0;
    while (done < bytes.size()) {
        const ssize_t n = ::write(STDOUT_FILENO, bytes.data() + done, bytes.size() - done);
        if (n <= 0) return;
        done += static_cast<usize>(n);
    }
}
}  // namespace

Result<accel::ResetState, Error> Vm::build_baremetal(const VmConfig& config) {
    if (config.smp < 1 || config.smp > 64)
        return fail(Error{fmt::format("--smp {} is out of range (1 to 64)", config.smp)});
    board::BoardHooks hooks{
        config.console_out,
        [this](int status) {
            request_exit({VmExit::Kind::GuestStatus, status});
        },
        [this](bool level) {
            if (!vcpus_.empty()) vcpus_[0]->set_irq_line(board::kUartIrq, level);
        },
    };
    auto boot =
        DISCO_TRY(board::build_baremetal_board(ram_, mmio_, config.memory_bytes, config.kernel, std::move(hooks)));
    byte_order_ = boot.byte_order;
    return boot.reset;
}

Result<accel::ResetState, Error> Vm::build_virt(const VmConfig& config) {
    // Guest RAM lives in machine memory on the host's NUMA nodes (or simulated
    // ones), so that pages can move between nodes (DESIGN.md "NUMA"). Each
    // node's pool can hold the whole VM: capacity is only reserved, never
    // committed until used.
    machine_memory_ = config.machine_memory;
    if (!machine_memory_) {
        MachineMemoryConfig mc;
        mc.numa_sim = config.numa_sim;
        mc.bytes_per_node = config.memory_bytes + (16ull << 20);
        // Room for the disk page cache's frames too (address space until used).
        if (config.disk_cache && !config.disk_page_cache) mc.bytes_per_node += kDiskCacheDefaultFrames << kPageShift;
        auto mm = MachineMemory::create(mc);
        if (!mm) return fail(Error{fmt::format("machine memory: {}", mm.error().message)});
        machine_memory_ = std::move(*mm);
    }
    disk_cache_ = config.disk_cache ? config.disk_page_cache : nullptr;
    if (config.disk_cache && !disk_cache_ && !config.disks.empty())
        disk_cache_ = std::make_shared<DiskPageCache>(*machine_memory_, kDiskCacheDefaultFrames);
    shootdown_ = std::make_unique<Shootdown>(config.smp);
    ram_.use_machine_memory(machine_memory_.get(), 0, config.vm_id, config.ram_placement);
    ram_.set_shootdown(shootdown_.get());
    board::VirtConfig vc;
    vc.memory_bytes = config.memory_bytes;
    vc.ncpus = config.smp;
    vc.kernel = config.kernel;
    vc.initrd = config.initrd;
    vc.cmdline = config.cmdline;
    vc.disks = config.disks;
    vc.disk_cache = disk_cache_.get();
    board::VirtHooks hooks;
    hooks.cpu_irq = [this](unsigned vcpu, bool level) {
        if (vcpu < vcpus_.size()) vcpus_[vcpu]->set_irq_line(2, level);  // GIC pin 0 drives Cause.IP2
    };
    hooks.start_core = [this](unsigned core, u64 pc) {
        if (core < vcpus_.size()) vcpus_[core]->start(pc);
    };
    hooks.stop_core = [this](unsigned core) {
        if (core < vcpus_.size()) vcpus_[core]->power_down();
    };
    hooks.serial_out = config.console_out;
    hooks.virtio_console_out = config.console_out;
    hooks.reboot = [this] { request_exit({VmExit::Kind::Reboot, 0}); };
    hooks.poweroff = [this] { request_exit({VmExit::Kind::PowerOff, 0}); };
    virt_ = DISCO_TRY(board::build_virt_board(ram_, mmio_, vc, std::move(hooks)));
    byte_order_ = virt_.byte_order;
    auto uart = virt_.uart;
    console_in_ = [uart](std::span<const u8> bytes) { uart->push_input(bytes); };
    return virt_.reset;
}

Result<std::unique_ptr<Vm>, Error> Vm::create(const VmConfig& config) {
    std::unique_ptr<Vm> vm(new Vm());
    VmConfig cfg = config;
    if (!cfg.console_out) cfg.console_out = write_stdout;
    vm->max_insns_ = cfg.max_insns;
    vm->page_churn_ = cfg.page_churn;
    vm->machine_ = cfg.machine;
    const accel::ResetState reset =
        DISCO_TRY(cfg.machine == Machine::Virt ? vm->build_virt(cfg) : vm->build_baremetal(cfg));
    u64 limit = 0;
    for (const auto& r : vm->ram_.regions()) limit = std::max(limit, r->base().value + r->size());
    vm->code_ = std::make_unique<CodeWatch>(limit);
    vm->ram_.set_dma_observer([code = vm->code_.get()](u64 ppage) { code->note_write(ppage); });
    Vm* self = vm.get();
    vm->homes_ = std::make_unique<std::atomic<unsigned>[]>(cfg.smp);
    vm->tids_ = std::make_unique<std::atomic<int>[]>(cfg.smp);
    for (unsigned i = 0; i < cfg.smp; ++i)
        vm->homes_[i].store(vm->machine_memory_ ? i % vm->machine_memory_->node_count() : 0);
    for (unsigned i = 0; i < cfg.smp; ++i) {
        cpu::CpuBus bus{
            &vm->ram_, &vm->mmio_, vm->code_.get(), &vm->stop_, [self](const std::string& m) { self->abort_with(m); },
            nullptr};
        bus.shootdown = vm->shootdown_.get();
        bus.pause = &vm->pause_;
        bus.view = vm->homes_[i].load(std::memory_order_relaxed);
        if (cfg.access_counters && vm->machine_memory_) bus.access_counters = &vm->machine_memory_->access_counters();
        bus.rehomed = [self, i](unsigned) { self->bind_to_home_node(i); };
        accel::ResetState r = reset;
        if (cfg.machine == Machine::Virt) {
            // CPS: only core 0 runs from reset; Linux starts the others through the CPC.
            bus.halted = [self](unsigned vcpu) { self->on_halted(vcpu); };
            r.powered = i == 0;
        }
        vm->vcpus_.push_back(accel::make_interpreter(std::move(bus), vm->byte_order_, i, r));
    }
    return vm;
}

Vm::~Vm() {
    end_powerdown();  // it types on the UART
    // Devices (and their threads) go before the vCPUs they call into.
    virt_ = {};
    mmio_ = {};
}

unsigned Vm::home_node(unsigned vcpu) const {
    return vcpu < vcpus_.size() ? homes_[vcpu].load(std::memory_order_relaxed) : 0;
}

Result<void, Error> Vm::pin_vcpu(unsigned vcpu, unsigned node) {
    if (vcpu >= vcpus_.size()) return fail(Error{fmt::format("no vCPU {} (the VM has {})", vcpu, vcpus_.size())});
    if (!machine_memory_) return fail(Error{"the VM's RAM is not in machine memory (one node only)"});
    if (node >= machine_memory_->node_count())
        return fail(Error{fmt::format("no node {} (the machine has {})", node, machine_memory_->node_count())});
    homes_[vcpu].store(node, std::memory_order_relaxed);
    vcpus_[vcpu]->set_home_node(node);
    return {};
}

void Vm::on_halted(unsigned vcpu) {
    // The boot CPU waiting with every interrupt masked is Linux's power-off
    // path on this kernel build (machine_hang; guest-board.md §6.6).
    if (vcpu == 0) request_exit({VmExit::Kind::PowerOff, 0});
}

void Vm::request_exit(VmExit exit) {
    bool expected = false;
    if (exit_set_.compare_exchange_strong(expected, true)) exit_ = exit;
    stop_.store(true, std::memory_order_release);
    for (auto& v : vcpus_) v->kick();
}

void Vm::abort_with(const std::string& message) {
    std::fprintf(stderr, "disco: %s\n", message.c_str());
    request_exit({VmExit::Kind::Error, 1});
}

void Vm::console_input(std::span<const u8> bytes) {
    if (console_in_) console_in_(bytes);
}

void Vm::pause() {
    pause_.store(true, std::memory_order_seq_cst);
    for (auto& v : vcpus_) v->kick();
    { std::lock_guard lock(powerdown_mutex_); }
    powerdown_cv_.notify_all();
}

void Vm::resume() {
    pause_.store(false, std::memory_order_seq_cst);
    for (auto& v : vcpus_) v->kick();
    { std::lock_guard lock(powerdown_mutex_); }
    powerdown_cv_.notify_all();
}

bool Vm::parked() const {
    if (stop_.load(std::memory_order_acquire)) return true;
    for (const auto& v : vcpus_)
        if (!v->parked()) return false;
    return true;
}

Result<void, Error> Vm::request_powerdown() {
    if (machine_ != Machine::Virt || !virt_.uart)
        return fail(Error{"system_powerdown is not supported on a bare-metal VM (no guest OS to ask)"});
    std::lock_guard lock(powerdown_mutex_);
    if (powerdown_end_) return fail(Error{"the VM is ending"});
    if (!powerdown_.joinable()) powerdown_ = std::thread([this] { powerdown_sequence(); });
    return {};
}

void Vm::powerdown_sequence() {
    // Magic SysRq on the serial console (Linux's Documentation/admin-guide/sysrq.rst):
    // the 8250 driver takes a break on its console port as the prefix and the
    // next character as the command (uart_handle_break). Debian's kernel has
    // CONFIG_MAGIC_SYSRQ_SERIAL=y and CONFIG_MAGIC_SYSRQ_DEFAULT_ENABLE=0x01b6,
    // which allows sync (0x10), remount read-only (0x20) and power off (0x80).
    // Each command is queued work in the guest: the spacing lets one finish
    // before the next, so that the file systems are synced and read-only
    // before the power goes. Only time the guest runs counts.
    constexpr char kKeys[] = {'s', 'u', 'o'};
    constexpr auto kSpacing = std::chrono::seconds(1);
    std::unique_lock lock(powerdown_mutex_);
    const auto ended = [this] { return powerdown_end_ || stop_.load(std::memory_order_acquire); };
    for (usize i = 0; i < std::size(kKeys); ++i) {
        std::chrono::steady_clock::duration left = i ? kSpacing : std::chrono::steady_clock::duration::zero();
        for (;;) {
            if (ended()) return;
            if (paused()) {
                powerdown_cv_.wait(lock, [&] { return ended() || !paused(); });
                continue;
            }
            if (left <= left.zero()) break;
            const auto from = std::chrono::steady_clock::now();
            powerdown_cv_.wait_for(lock, left, [&] { return ended() || paused(); });
            left -= std::chrono::steady_clock::now() - from;
        }
        const u8 key = static_cast<u8>(kKeys[i]);
        virt_.uart->push_break();
        virt_.uart->push_input(std::span<const u8>(&key, 1));
    }
}

void Vm::end_powerdown() {
    {
        std::lock_guard lock(powerdown_mutex_);
        powerdown_end_ = true;
    }
    powerdown_cv_.notify_all();
    if (powerdown_.joinable()) powerdown_.join();
}

VmExit Vm::run() {
    const auto start = std::chrono::steady_clock::now();
    std::vector<std::thread> threads;
    threads.reserve(vcpus_.size());
    for (unsigned i = 0; i < vcpus_.size(); ++i) {
        threads.emplace_back([this, i, engine = vcpus_[i].get()] {
            tids_[i].store(static_cast<int>(gettid()), std::memory_order_relaxed);
            set_current_vcpu(i);
            bind_to_home_node(i);
            const u64 budget = max_insns_ ? max_insns_ : ~0ull;
            while (!stop_.load(std::memory_order_acquire)) {
                if (engine->run(budget) == cpu::RunExit::BudgetSpent && max_insns_) {
                    abort_with(fmt::format("instruction limit {} reached at {}", max_insns_, engine->describe()));
                    break;
                }
            }
        });
    }
    std::unique_ptr<PageChurn> churn;
    if (page_churn_ > 0 && machine_memory_)
        churn = std::make_unique<PageChurn>(ram_, machine_memory_->node_count(), page_churn_,
                                            static_cast<u64>(start.time_since_epoch().count()));
    for (auto& t : threads) t.join();
    end_powerdown();
    if (churn) {
        churn->stop();
        churn_summary_ = churn->summary();
    }
    run_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return exit_;
}

int Vm::vcpu_thread_id(unsigned vcpu) const {
    return vcpu < vcpus_.size() ? tids_[vcpu].load(std::memory_order_relaxed) : 0;
}

void Vm::bind_to_home_node(unsigned vcpu) {
    // On a host with real NUMA nodes a vCPU runs on its home node's CPUs, so
    // that its "local" memory is local to the host CPU too.
    if (!machine_memory_ || machine_memory_->node_count() < 2) return;
    const NumaNode& node = machine_memory_->node_info(home_node(vcpu));
    if (node.simulated || node.cpus.empty()) return;
    cpu_set_t set;
    CPU_ZERO(&set);
    for (unsigned c : node.cpus) CPU_SET(c, &set);
    pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

std::string Vm::describe_state(const std::string& prefix) const {
    std::vector<u64> before;
    for (const auto& v : vcpus_) {
        before.push_back(v->last_report().first);
        v->request_report();
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    std::string text;
    for (unsigned i = 0; i < vcpus_.size(); ++i) {
        auto [seq, report] = vcpus_[i]->last_report();
        while (seq == before[i] && std::chrono::steady_clock::now() < deadline) {
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
            std::tie(seq, report) = vcpus_[i]->last_report();
        }
        text += prefix +
                (seq != before[i] ? report : fmt::format("vCPU {}: no answer within 1 s (stuck in the monitor)", i)) +
                "\n";
    }
    for (const auto& device : virt_.devices)
        if (const std::string state = device->describe_state(); !state.empty())
            text += fmt::format("{}{}: {}\n", prefix, device->name(), state);
    return text;
}

u64 Vm::retired_instructions() const {
    u64 n = 0;
    for (const auto& v : vcpus_) n += v->retired();
    return n;
}
}  // namespace disco::monitor
