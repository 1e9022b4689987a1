// The 16550A UART's registers as a guest driver sees them (PC16550D).
#include <catch2/catch.hpp>
#include <string>
#include <thread>
#include <vector>

#include "vmm/dev/uart16550.hpp"

using namespace disco;

namespace {
enum Reg : u64 {
    RBR = 0,
    THR = 0,
    DLL = 0,
    IER = 1,
    DLM = 1,
    IIR = 2,
    FCR = 2,
    LCR = 3,
    MCR = 4,
    LSR = 5,
    MSR = 6,
    SCR = 7
};

/// A UART with its output and interrupt edges recorded.
struct Rig {
    std::string out;
    std::vector<bool> edges;
    dev::Uart16550 uart{[this](std::span<const u8> b) { out.append(b.begin(), b.end()); },
                        [this](bool level) { edges.push_back(level); }};

    u8 rd(u64 reg) { return static_cast<u8>(uart.mmio_read(reg, 1)); }
    void wr(u64 reg, u8 v) { uart.mmio_write(reg, 1, v); }
    void push(const std::string& s) { uart.push_input(std::span(reinterpret_cast<const u8*>(s.data()), s.size())); }
    bool irq() const { return !edges.empty() && edges.back(); }
};
}  // namespace

TEST_CASE("uart16550: transmit goes to the sink at once and THR is always empty", "[dev]") {
    Rig r;
    CHECK((r.rd(LSR) & 0x60) == 0x60);  // THRE | TEMT from reset
    r.wr(THR, 'o');
    r.wr(THR, 'k');
    CHECK(r.out == "ok");
    CHECK((r.rd(LSR) & 0x60) == 0x60);
    r.uart.mmio_write(THR, 4, 0x12345621);  // a wider store uses its low byte
    CHECK(r.out == "ok!");
    CHECK(r.edges.empty());  // no interrupt enabled, no edge
}

TEST_CASE("uart16550: DLAB switches offsets 0 and 1 to the divisor latch", "[dev]") {
    Rig r;
    r.wr(IER, 0x05);
    r.wr(LCR, 0x83);  // DLAB, 8N1
    r.wr(DLL, 0x01);
    r.wr(DLM, 0x02);
    CHECK(r.rd(DLL) == 0x01);
    CHECK(r.rd(DLM) == 0x02);
    CHECK(r.rd(LCR) == 0x83);
    CHECK(r.out.empty());  // divisor writes are not output
    r.wr(LCR, 0x03);
    CHECK(r.rd(IER) == 0x05);  // IER kept its value
    r.wr(LCR, 0x80);
    CHECK(r.rd(DLL) == 0x01);  // the divisor kept its value
}

TEST_CASE("uart16550: register masks, scratch and the rest of the window", "[dev]") {
    Rig r;
    r.wr(IER, 0xFF);
    CHECK(r.rd(IER) == 0x0F);
    r.wr(MCR, 0xFF);
    CHECK(r.rd(MCR) == 0x1F);
    r.wr(MCR, 0);
    r.wr(SCR, 0x5A);
    CHECK(r.rd(SCR) == 0x5A);
    CHECK(r.uart.mmio_read(SCR, 4) == 0x5A);  // wider loads are zero-extended bytes
    r.wr(0x10, 0x77);
    CHECK(r.rd(0x10) == 0);
    CHECK(r.uart.mmio_read(0xFF, 1) == 0);
    r.wr(LSR, 0);  // read-only
    CHECK((r.rd(LSR) & 0x60) == 0x60);
    CHECK(r.out.empty());
}

TEST_CASE("uart16550: LSR.DR and RBR with the FIFOs off (one holding register)", "[dev]") {
    Rig r;
    CHECK((r.rd(LSR) & 1) == 0);
    CHECK(r.rd(RBR) == 0);  // reading an empty receiver gives 0
    r.push("abc");
    CHECK(r.uart.input_pending() == 3);
    std::string got;
    while (r.rd(LSR) & 1) got += static_cast<char>(r.rd(RBR));
    CHECK(got == "abc");
    CHECK(r.uart.input_pending() == 0);
    CHECK((r.rd(IIR) & 0xC0) == 0);  // FIFOs off
}

TEST_CASE("uart16550: the receive FIFO, trigger level, reset and backlog", "[dev]") {
    Rig r;
    r.wr(FCR, 0x81);  // FIFOs on, trigger at 8
    r.wr(IER, 0x01);
    CHECK(r.rd(IIR) == 0xC1);  // FIFOs reported, nothing pending
    r.push("12345");
    CHECK(r.irq());
    CHECK(r.rd(IIR) == 0xCC);  // below the trigger: character timeout
    r.push("678");
    CHECK(r.rd(IIR) == 0xC4);  // trigger level reached
    // 20 more bytes: the FIFO holds 16, the rest wait in the backlog.
    r.push("abcdefghijklmnopqrst");
    CHECK(r.uart.input_pending() == 28);
    // Resetting the receiver FIFO drops what had arrived; the backlog moves in.
    r.wr(FCR, 0x83);
    CHECK(r.uart.input_pending() == 12);
    std::string got;
    while (r.rd(LSR) & 1) got += static_cast<char>(r.rd(RBR));
    CHECK(got == "ijklmnopqrst");
    CHECK_FALSE(r.irq());
    // Turning the FIFOs off reports no FIFO bits and clears the FIFO too.
    r.push("xy");
    r.wr(FCR, 0x00);
    CHECK((r.rd(IIR) & 0xC0) == 0);
    CHECK(r.uart.input_pending() == 0);
}

TEST_CASE("uart16550: IIR reports the highest-priority source", "[dev]") {
    Rig r;
    r.wr(MCR, 0x10);  // loopback: MSR inputs drop, which sets the delta bits
    r.wr(IER, 0x0F);  // every source
    r.wr(THR, 'a');   // loops into the 1-byte receiver
    r.wr(THR, 'b');   // no room: overrun
    CHECK(r.out.empty());
    CHECK(r.rd(IIR) == 0x06);           // 1: receiver line status
    CHECK((r.rd(LSR) & 0x03) == 0x03);  // OE | DR; reading LSR clears OE
    CHECK((r.rd(LSR) & 0x02) == 0);
    CHECK(r.rd(IIR) == 0x04);  // 2: received data
    CHECK(r.rd(RBR) == 'a');
    CHECK(r.rd(IIR) == 0x02);  // 3: THR empty, cleared by this read
    CHECK(r.rd(IIR) == 0x00);  // 4: modem status
    CHECK((r.rd(MSR) & 0x0F) != 0);
    CHECK(r.rd(IIR) == 0x01);  // nothing
    CHECK_FALSE(r.irq());
}

TEST_CASE("uart16550: THRE interrupt on enable and after each write", "[dev]") {
    Rig r;
    r.wr(IER, 0x02);
    CHECK(r.edges == std::vector<bool>{true});
    CHECK(r.rd(IIR) == 0x02);
    CHECK(r.edges == std::vector<bool>{true, false});  // reading IIR cleared it
    r.wr(THR, 'x');                                    // THR empties again at once: raised again
    CHECK(r.edges == std::vector<bool>{true, false, true});
    r.wr(IER, 0x00);
    CHECK(r.edges == std::vector<bool>{true, false, true, false});
}

TEST_CASE("uart16550: the interrupt callback sees edges only", "[dev]") {
    Rig r;
    r.push("q");  // not enabled yet: no edge
    CHECK(r.edges.empty());
    r.wr(IER, 0x01);
    CHECK(r.edges == std::vector<bool>{true});
    r.push("rs");  // already high: no new edge
    CHECK(r.edges == std::vector<bool>{true});
    CHECK(r.rd(RBR) == 'q');
    CHECK(r.rd(RBR) == 'r');
    CHECK(r.edges == std::vector<bool>{true});
    CHECK(r.rd(RBR) == 's');
    CHECK(r.edges == std::vector<bool>{true, false});
}

TEST_CASE("uart16550: loopback wires MCR to MSR and disconnects the line", "[dev]") {
    Rig r;
    CHECK((r.rd(MSR) & 0xF0) == 0xB0);  // a ready modem: CTS, DSR, DCD
    r.wr(MCR, 0x10 | 0x0A);             // RTS and OUT2 → CTS and DCD (how Linux probes a 16550)
    CHECK((r.rd(MSR) & 0xF0) == 0x90);
    r.wr(MCR, 0x10 | 0x01);             // DTR → DSR
    CHECK(r.rd(MSR) == (0x20 | 0x0B));  // DSR now; CTS, DSR and DCD changed
    r.wr(MCR, 0x10 | 0x04);             // OUT1 → RI
    CHECK((r.rd(MSR) & 0xF0) == 0x40);
    r.wr(MCR, 0x10);  // RI falls: trailing-edge detector
    CHECK((r.rd(MSR) & 0x04) == 0x04);
    CHECK((r.rd(MSR) & 0x0F) == 0);  // deltas clear on read
    // Typed input waits while the line is looped back, then arrives.
    r.push("k");
    CHECK((r.rd(LSR) & 1) == 0);
    r.wr(THR, 'L');
    CHECK(r.rd(RBR) == 'L');
    r.wr(MCR, 0x00);
    CHECK(r.rd(RBR) == 'k');
    CHECK(r.out.empty());
}

TEST_CASE("uart16550: input pushed from another thread arrives complete and in order", "[dev]") {
    Rig r;
    r.wr(FCR, 0x01);
    constexpr int kBytes = 20000;
    std::thread feeder([&] {
        for (int i = 0; i < kBytes; i += 100) {
            std::vector<u8> chunk;
            for (int j = i; j < i + 100; ++j) chunk.push_back(static_cast<u8>(j * 7));
            r.uart.push_input(chunk);
        }
    });
    int got = 0;
    bool in_order = true;
    while (got < kBytes) {
        if (!(r.rd(LSR) & 1)) continue;
        in_order = in_order && r.rd(RBR) == static_cast<u8>(got * 7);
        ++got;
    }
    feeder.join();
    CHECK(in_order);
    CHECK(r.uart.input_pending() == 0);
}

TEST_CASE("uart16550: a break is one 0 character with LSR.BI and a line status interrupt", "[dev]") {
    Rig r;
    r.wr(FCR, 0x01);  // FIFOs on, trigger at 1
    r.wr(IER, 0x05);  // received data and line status, as Linux's 8250 driver enables them
    r.push("a");
    r.uart.push_break();
    r.push("s");
    CHECK(r.uart.input_pending() == 3);
    // 'a' is at the top: plain data; the break behind it already shows in LSR bit 7 (FIFO mode).
    CHECK(r.rd(IIR) == 0xC4);
    u8 lsr = r.rd(LSR);
    CHECK((lsr & 0x11) == 0x01);  // DR, not BI
    CHECK((lsr & 0x80) == 0x80);
    CHECK(r.rd(RBR) == 'a');
    // The break's character reaches the top: receiver line status, the highest priority.
    CHECK(r.irq());
    CHECK(r.rd(IIR) == 0xC6);
    lsr = r.rd(LSR);
    CHECK((lsr & 0x11) == 0x11);  // DR | BI
    // The read cleared BI, and with it the line status interrupt; the 0 character is still data.
    CHECK((r.rd(LSR) & 0x10) == 0);
    CHECK(r.rd(IIR) == 0xC4);
    CHECK(r.rd(RBR) == 0);
    lsr = r.rd(LSR);
    CHECK((lsr & 0x91) == 0x01);  // 's': no error left in the FIFO
    CHECK(r.rd(RBR) == 's');
    CHECK(r.rd(IIR) == 0xC1);
    CHECK_FALSE(r.irq());
}

TEST_CASE("uart16550: a break with the FIFOs off, behind the backlog, and without RLS enabled", "[dev]") {
    Rig r;
    r.wr(IER, 0x01);  // received data only: a break is just a 0 byte with BI
    r.push("xy");
    r.uart.push_break();
    CHECK(r.rd(IIR) == 0x04);
    std::string got;
    std::vector<u8> lsrs;
    for (u8 lsr; (lsr = r.rd(LSR)) & 1;) {
        lsrs.push_back(lsr);
        got += static_cast<char>(r.rd(RBR));
    }
    CHECK(got == std::string("xy\0", 3));
    REQUIRE(lsrs.size() == 3);
    CHECK((lsrs[0] & 0x90) == 0);
    CHECK((lsrs[1] & 0x90) == 0);
    CHECK((lsrs[2] & 0x90) == 0x10);  // BI; no FIFO error bit with the FIFOs off
    CHECK(r.uart.input_pending() == 0);

    // A receiver FIFO reset drops a break like any character.
    r.wr(FCR, 0x01);
    r.uart.push_break();
    r.wr(FCR, 0x03);
    CHECK((r.rd(LSR) & 0x91) == 0);
    r.push("k");
    CHECK((r.rd(LSR) & 0x91) == 0x01);
    CHECK(r.rd(RBR) == 'k');
}
