#!/bin/sh
# Runs the Malta build of the ISA suite on QEMU's Malta board with QEMU's
# MIPS64R2-generic CPU: the independent reference the suite's expected
# values are checked against (a developer check; Debian's qemu-system-mips
# package provides qemu-system-mips64el and qemu-system-mips64).
#
#   tests/guest/run-on-qemu.sh [KERNEL.elf ...]
#
# Without arguments: build/guest-kernel/isa-malta-{el,eb}.elf (BUILD_DIR
# overrides build/). The byte order of each ELF picks the QEMU binary. The
# kernel resets the Malta at the end (-no-reboot makes QEMU exit); its last
# lines are `RESULT: PASS|FAIL ...` and `exit status N`.
# Exit status: 0 if every kernel printed RESULT: PASS, 1 if any failed,
# 77 (meson's "skipped") if QEMU is not installed.
set -u
here=$(cd "$(dirname "$0")" && pwd)
build=${BUILD_DIR:-$here/../../build}
timeout_s=${QEMU_TIMEOUT:-120}
[ $# -gt 0 ] || set -- "$build/guest-kernel/isa-malta-el.elf" "$build/guest-kernel/isa-malta-eb.elf"
status=0
for kernel in "$@"; do
    if [ ! -r "$kernel" ]; then
        echo "run-on-qemu: $kernel: not found (build it with meson first)" >&2
        status=1
        continue
    fi
    # EI_DATA (byte 5): 1 little-endian, 2 big-endian
    case $(od -An -tu1 -j5 -N1 "$kernel" | tr -d ' ') in
        1) qemu=qemu-system-mips64el ;;
        2) qemu=qemu-system-mips64 ;;
        *) echo "run-on-qemu: $kernel: not an ELF file" >&2; status=1; continue ;;
    esac
    if ! command -v "$qemu" >/dev/null 2>&1; then
        echo "run-on-qemu: $qemu not installed (apt-get install qemu-system-mips): skipped" >&2
        [ $status -eq 0 ] && status=77
        continue
    fi
    echo "== $qemu -M malta -cpu MIPS64R2-generic -kernel $kernel"
    log=$(mktemp)
    timeout "$timeout_s" "$qemu" -M malta -cpu MIPS64R2-generic -m 128M -nographic -no-reboot -net none -vga none \
        -monitor none -serial stdio -kernel "$kernel" </dev/null >"$log" 2>&1
    rc=$?
    tr -d '\r' <"$log"
    if [ $rc -eq 124 ]; then
        echo "run-on-qemu: $kernel: timed out after ${timeout_s}s" >&2
        status=1
    elif ! tr -d '\r' <"$log" | grep -q '^RESULT: PASS'; then
        echo "run-on-qemu: $kernel: no RESULT: PASS line" >&2
        status=1
    fi
    rm -f "$log"
done
[ $status -eq 77 ] || [ $status -eq 0 ] || exit 1
exit $status
