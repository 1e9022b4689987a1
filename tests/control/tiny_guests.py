"""Bare-metal guests of a few instructions for the control tests: built here as ELF files, no
cross compiler needed (the bare-metal board, guest-kernel/README.md)."""
import struct

SPIN = [0x1000FFFF, 0]  # 1: b 1b; nop (the vCPU never sleeps)
IDLE = [0x42000020, 0x1000FFFE, 0]  # 1: wait; b 1b; nop (the vCPU sleeps; no interrupt comes)


def elf(words):
    """A MIPS64 little-endian ELF running `words` at kseg0 + 64 KiB (ELF-64 object file format:
    one ELF header, one PT_LOAD program header, the code)."""
    entry = 0xFFFFFFFF80010000
    code = struct.pack(f"<{len(words)}I", *words)
    ident = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9)
    ehdr = struct.pack("<16sHHIQQQIHHHHHH", ident, 2, 8, 1, entry, 64, 0, 0, 64, 56, 1, 0, 0, 0)
    phdr = struct.pack("<IIQQQQQQ", 1, 7, 120, entry, 0, len(code), len(code), 4096)
    return ehdr + phdr + code


# The virt board's toucher: stores to guest-physical 0x100000 and loads from 0x101000 every 0.1 s,
# sleeping on WAIT for the CP0 timer in between (IM7 only, IE off: WAIT returns without an
# exception, MD00087 WAIT). Its soft-TLB fills are what the access counters count (the same guest
# as tests/unit/control/control_fixture.hpp's toucher_kernel()).
TOUCHER = [
    0x40086000,  # mfc0 t0, Status
    0x35088000,  # ori t0, t0, 0x8000 (IM7)
    0x40886000,  # mtc0 t0, Status
    0x3C098010,  # lui t1, 0x8010
    0xAD200000,  # 1: sw zero, 0(t1)
    0x8D2A1000,  # lw t2, 0x1000(t1)
    0x400B4800,  # mfc0 t3, Count
    0x3C0C0098,  # lui t4, 0x98 (~10 M ticks: 0.1 s at 100 MHz)
    0x016C5821,  # addu t3, t3, t4
    0x408B5800,  # mtc0 t3, Compare (clears the timer interrupt)
    0x42000020,  # wait
    0x1000FFF8,  # b 1b
    0,           # nop
]
TOUCHED_STORE, TOUCHED_LOAD = 0x100000, 0x101000
