// The software CPU behind the accel interface.
#include "vmm/accel/engine.hpp"

namespace disco::accel {
namespace {
class Interpreter final : public VcpuEngine {
public:
    Interpreter(cpu::CpuBus bus, ByteOrder order, unsigned index, const ResetState& reset)
        : cpu_(std::move(bus), order, index) {
        for (unsigned i = 1; i < 32; ++i) cpu_.r[i] = reset.gpr[i];
        cpu_.pc = reset.pc;
        cpu_.cp0.ebase = reset.ebase;
        cpu_.cp0.cmgcr_base = reset.cmgcr_base;
        cpu_.write_cp0(cpu::cp0::Status, reset.status);
        if (!reset.powered) cpu_.hold_in_reset();
    }
    cpu::RunExit run(u64 max_insns) override { return cpu_.run(max_insns); }
    void set_irq_line(unsigned ip, bool level) override { cpu_.set_irq_line(ip, level); }
    void kick() override { cpu_.kick(); }
    void start(u64 pc) override { cpu_.request_start(pc); }
    void power_down() override { cpu_.request_power_down(); }
    u64 retired() const override { return cpu_.retired_published(); }
    std::string describe() const override { return cpu_.where(); }
    void request_report() override { cpu_.request_report(); }
    std::pair<u64, std::string> last_report() const override { return cpu_.last_report(); }
    void set_home_node(unsigned node) override { cpu_.request_home(node); }
    bool parked() const override { return cpu_.parked(); }

private:
    cpu::Cpu cpu_;
};
}  // namespace

std::unique_ptr<VcpuEngine> make_interpreter(cpu::CpuBus bus, ByteOrder order, unsigned index,
                                             const ResetState& reset) {
    return std::make_unique<Interpreter>(std::move(bus), order, index, reset);
}
}  // namespace disco::accel
