// The disco-virt device tree: parsed back with libfdt, it must hold what
// Debian's kernel looks for (guest-board.md §5.4) and what the binding in
// guest-kernel/disco-virt.md promises.
#include <libfdt.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <string>

#include "vmm/board/disco_virt_map.hpp"
#include "vmm/board/fdt_writer.hpp"
#include "vmm/board/initrd.hpp"
#include "vmm/board/virt_fdt.hpp"

using namespace disco;
using namespace disco::board;

namespace {
std::string prop_string(const void* fdt, int node, const char* name) {
    int len = 0;
    const auto* p = static_cast<const char*>(fdt_getprop(fdt, node, name, &len));
    return p && len > 0 ? std::string(p, static_cast<usize>(len - 1)) : std::string("<missing>");
}

u32 cell(const void* fdt, int node, const char* name, int index) {
    int len = 0;
    const auto* p = static_cast<const fdt32_t*>(fdt_getprop(fdt, node, name, &len));
    REQUIRE(p != nullptr);
    REQUIRE(len >= (index + 1) * 4);
    return fdt32_to_cpu(p[index]);
}

std::vector<u8> make(unsigned ncpus, u64 memory, u64 initrd_start = 0, u64 initrd_end = 0) {
    VirtFdtSpec s;
    s.ncpus = ncpus;
    s.memory_bytes = memory;
    s.bootargs = "console=ttyS0 earlycon";
    s.initrd_start = initrd_start;
    s.initrd_end = initrd_end;
    s.rng_seed.assign(64, 0xAB);
    s.virtio_slots = virt::kVirtioSlots;
    auto blob = build_virt_fdt(s);
    REQUIRE(blob.has_value());
    REQUIRE(fdt_check_header(blob->data()) == 0);
    return *blob;
}
}  // namespace

TEST_CASE("virt fdt: chosen, cpus with clocks, and the GIC as default parent", "[fdt]") {
    const auto blob = make(4, 256ull << 20, 0x0F000000, 0x0F123456);
    const void* fdt = blob.data();
    const int chosen = fdt_path_offset(fdt, "/chosen");
    REQUIRE(chosen >= 0);
    CHECK(prop_string(fdt, chosen, "bootargs") == "console=ttyS0 earlycon");
    CHECK(prop_string(fdt, chosen, "stdout-path") == "serial0:115200n8");
    CHECK(cell(fdt, chosen, "linux,initrd-start", 1) == 0x0F000000u);
    CHECK(cell(fdt, chosen, "linux,initrd-end", 1) == 0x0F123456u);
    int len = 0;
    CHECK(fdt_getprop(fdt, chosen, "rng-seed", &len) != nullptr);
    CHECK(len == 64);

    const int clk = fdt_path_offset(fdt, "/cpu-clock");
    REQUIRE(clk >= 0);
    const u32 clk_phandle = fdt_get_phandle(fdt, clk);
    CHECK(cell(fdt, clk, "clock-frequency", 0) == virt::kCpuClockHz);
    for (int i = 0; i < 4; ++i) {
        const int cpu = fdt_path_offset(fdt, ("/cpus/cpu@" + std::to_string(i)).c_str());
        REQUIRE(cpu >= 0);
        CHECK(cell(fdt, cpu, "reg", 0) == static_cast<u32>(i));
        CHECK(cell(fdt, cpu, "clocks", 0) == clk_phandle);
    }
    CHECK(fdt_path_offset(fdt, "/cpus/cpu@4") < 0);

    const int gic = fdt_node_offset_by_compatible(fdt, -1, "mti,gic");
    REQUIRE(gic >= 0);
    CHECK(cell(fdt, 0, "interrupt-parent", 0) == fdt_get_phandle(fdt, gic));
    CHECK(cell(fdt, gic, "#interrupt-cells", 0) == 3u);
    CHECK(fdt_node_offset_by_compatible(fdt, gic, "mti,gic-timer") >= 0);
}

TEST_CASE("virt fdt: memory splits around the MMIO window", "[fdt]") {
    SECTION("small RAM: one range") {
        const auto blob = make(1, 128ull << 20);
        const int mem = fdt_path_offset(blob.data(), "/memory@0");
        int len = 0;
        fdt_getprop(blob.data(), mem, "reg", &len);
        CHECK(len == 16);
        CHECK(cell(blob.data(), mem, "reg", 3) == (128u << 20));
    }
    SECTION("large RAM: low part plus the rest above 512 MiB, 64-bit sizes") {
        const auto blob = make(1, 6ull << 30);
        const int mem = fdt_path_offset(blob.data(), "/memory@0");
        int len = 0;
        fdt_getprop(blob.data(), mem, "reg", &len);
        REQUIRE(len == 32);
        CHECK(cell(blob.data(), mem, "reg", 3) == virt::kRam0Limit);
        CHECK(cell(blob.data(), mem, "reg", 5) == virt::kRam1Base);
        const u64 high = (u64{cell(blob.data(), mem, "reg", 6)} << 32) | cell(blob.data(), mem, "reg", 7);
        CHECK(high == (6ull << 30) - virt::kRam0Limit);
    }
}

TEST_CASE("virt fdt: devices with their interrupts", "[fdt]") {
    const auto blob = make(2, 256ull << 20);
    const void* fdt = blob.data();
    const int uart = fdt_node_offset_by_compatible(fdt, -1, "ns16550a");
    REQUIRE(uart >= 0);
    CHECK(cell(fdt, uart, "clock-frequency", 0) == virt::kUartClockHz);
    CHECK(cell(fdt, uart, "interrupts", 1) == virt::kUartIrq);
    const int alias = fdt_path_offset(fdt, "/aliases");
    CHECK(fdt_path_offset(fdt, prop_string(fdt, alias, "serial0").c_str()) == uart);
    const int rtc = fdt_node_offset_by_compatible(fdt, -1, "google,goldfish-rtc");
    REQUIRE(rtc >= 0);
    CHECK(cell(fdt, rtc, "interrupts", 1) == virt::kRtcIrq);
    int slots = 0;
    for (int n = fdt_node_offset_by_compatible(fdt, -1, "virtio,mmio"); n >= 0;
         n = fdt_node_offset_by_compatible(fdt, n, "virtio,mmio")) {
        CHECK(cell(fdt, n, "interrupts", 1) == virt::kVirtioIrqBase + static_cast<u32>(slots));
        CHECK(fdt_getprop(fdt, n, "dma-coherent", nullptr) != nullptr);
        ++slots;
    }
    CHECK(slots == static_cast<int>(virt::kVirtioSlots));
    const int reboot = fdt_node_offset_by_compatible(fdt, -1, "syscon-reboot");
    const int syscon = fdt_node_offset_by_compatible(fdt, -1, "syscon");
    REQUIRE(reboot >= 0);
    CHECK(cell(fdt, reboot, "regmap", 0) == fdt_get_phandle(fdt, syscon));
    CHECK(fdt_node_offset_by_compatible(fdt, -1, "mti,mips-cpc") >= 0);
}

TEST_CASE("fdt writer reports libfdt errors instead of producing a blob", "[fdt]") {
    FdtWriter w(256);  // far too small for what follows
    for (int i = 0; i < 64; ++i) w.prop_string("p" + std::to_string(i), std::string(32, 'x'));
    auto r = w.finish();
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().message.find("device tree") != std::string::npos);
}

TEST_CASE("initrd formats Linux can unpack are recognised, others are not", "[fdt]") {
    auto fmt_of = [](std::string_view bytes) {
        return initrd_format(std::span(reinterpret_cast<const u8*>(bytes.data()), bytes.size()));
    };
    CHECK(std::strcmp(fmt_of("070701000000"), "cpio (newc)") == 0);
    CHECK(std::strcmp(fmt_of("\x1f\x8b\x08\x00"), "gzip") == 0);
    CHECK(std::strcmp(fmt_of("\xfd" "7zXZ\x00"), "xz") == 0);
    CHECK(std::strcmp(fmt_of("\x28\xb5\x2f\xfd"), "zstd") == 0);
    CHECK(fmt_of("\x7f" "ELF") == nullptr);
    CHECK(fmt_of("07070") == nullptr);  // truncated magic
    CHECK(fmt_of("") == nullptr);
    CHECK_FALSE(read_initrd("/nonexistent/initrd").has_value());
}
