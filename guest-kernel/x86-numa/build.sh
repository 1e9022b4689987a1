#!/bin/sh
# Builds the images of the real-NUMA test (tests/numa-host): a QEMU x86_64 guest with two NUMA
# nodes in which this host's `disco` binary runs a small MIPS guest on real nodes. No root needed.
#
#   guest-kernel/x86-numa/build.sh --cache DIR --disco PATH [--force]
#
# (tools/build-images --x86-numa calls it.) Into DIR:
#   vmlinuz-amd64                  Debian bookworm's amd64 kernel (the one linux-image-amd64
#                                  depends on), as its package ships it
#   x86-numa-initramfs.cpio.gz     busybox (busybox-static), disco with the shared libraries ldd
#                                  names and the loader, the MIPS toucher guest, /init (init here)
#   x86-numa-initramfs.contents    what the initramfs holds
#   x86-numa-build-key             what it was made from; the test reads the disco line
# A second run with the same inputs (the two package versions, this folder's files, the disco
# binary and its libraries, the toucher's source and the cpio writer) does nothing.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CACHE="" DISCO="" FORCE=0
while [ $# -gt 0 ]; do
    case "$1" in
        --cache) CACHE=$2; shift 2 ;;
        --disco) DISCO=$2; shift 2 ;;
        --force) FORCE=1; shift ;;
        *) echo "x86-numa: unknown option '$1' (--cache DIR --disco PATH [--force])" >&2; exit 2 ;;
    esac
done
die() { echo "x86-numa: error: $*" >&2; exit 1; }
log() { echo "x86-numa: $*"; }
[ -n "$CACHE" ] || die "--cache DIR is required"
[ -n "$DISCO" ] || die "--disco PATH is required"
[ -x "$DISCO" ] || die "$DISCO is not an executable (build it first: ninja -C build vmm/disco)"
for tool in apt-cache apt-get dpkg-deb ldd sha256sum python3; do
    command -v "$tool" >/dev/null || die "'$tool' is not installed (tools/setup installs what this needs)"
done
mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)
DISCO=$(cd "$(dirname "$DISCO")" && pwd)/$(basename "$DISCO")
ARCH=amd64

candidate() {  # apt's candidate version of package $1:amd64, or nothing
    apt-cache policy "$1:$ARCH" 2>/dev/null | sed -n 's/^ *Candidate: //p' | grep -v '^(none)$' || true
}

# The kernel the flavour's metapackage depends on now (as tools/build-images finds the MIPS one).
KERNEL_PKG=$(apt-cache depends "linux-image-$ARCH:$ARCH" 2>/dev/null |
    sed -n 's/^ *Depends: \(linux-image-[0-9][^:]*\).*/\1/p' | head -n 1)
[ -n "$KERNEL_PKG" ] || die "apt knows no linux-image-$ARCH:$ARCH (run 'apt-get update')"
KERNEL_VER=$(candidate "$KERNEL_PKG")
BUSYBOX_VER=$(candidate busybox-static)
[ -n "$KERNEL_VER" ] || die "apt has no candidate for $KERNEL_PKG:$ARCH (run 'apt-get update')"
[ -n "$BUSYBOX_VER" ] || die "apt has no candidate for busybox-static:$ARCH (run 'apt-get update')"

# The loader and the libraries the dynamic linker would load for disco, as this host resolves them
# ("name => /path (addr)" and the loader's own "/path (addr)" line; not the vDSO).
LIBS=$(ldd "$DISCO" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u)
[ -n "$LIBS" ] || die "ldd names no libraries for $DISCO (a static disco needs none: not supported here)"
for lib in $LIBS; do [ -r "$lib" ] || die "ldd names $lib, which cannot be read"; done

# Everything the images are made of; the same key means the same images.
key() {
    echo "kernel $KERNEL_PKG $KERNEL_VER"
    echo "busybox busybox-static $BUSYBOX_VER"
    echo "disco $(sha256sum < "$DISCO" | cut -d' ' -f1)"
    for f in "$HERE/build.sh" "$HERE/init" "$HERE/t.json" "$ROOT/tests/control/test_qmp.py" "$ROOT/tools/build-images"; do
        echo "input ${f#"$ROOT"/} $(sha256sum < "$f" | cut -d' ' -f1)"
    done
    for lib in $LIBS; do echo "lib $lib $(sha256sum < "$lib" | cut -d' ' -f1)"; done
}
STAMP="$CACHE/x86-numa-build-key"
KERNEL_OUT="$CACHE/vmlinuz-amd64"
INITRD_OUT="$CACHE/x86-numa-initramfs.cpio.gz"
NEW_KEY=$(key)
if [ "$FORCE" = 0 ] && [ -f "$STAMP" ] && [ -f "$KERNEL_OUT" ] && [ -f "$INITRD_OUT" ] &&
    [ "$(cat "$STAMP")" = "$NEW_KEY" ]; then
    log "$CACHE is up to date for $DISCO: nothing to do"
    exit 0
fi
rm -f "$STAMP"  # a build that stops half-way never looks current

# The packages, in a folder of their own (tools/build-images drops what its debs/ does not list).
DEBS="$CACHE/x86-numa-debs"
mkdir -p "$DEBS"
deb_name() { echo "${1}_$(echo "$2" | sed 's/:/%3a/')_$ARCH.deb"; }
KERNEL_DEB="$DEBS/$(deb_name "$KERNEL_PKG" "$KERNEL_VER")"
BUSYBOX_DEB="$DEBS/$(deb_name busybox-static "$BUSYBOX_VER")"
for deb in "$DEBS"/*; do
    [ -e "$deb" ] || continue
    [ "$deb" = "$KERNEL_DEB" ] || [ "$deb" = "$BUSYBOX_DEB" ] || rm -f "$deb"  # older versions
done
download() {  # apt's messages only when it fails (as root it warns that it runs unsandboxed)
    log "downloading $1"
    (cd "$DEBS" && apt-get download -qq "$1" > "$DEBS/apt.log" 2>&1) || { cat "$DEBS/apt.log" >&2; die "apt-get download $1 failed"; }
    rm -f "$DEBS/apt.log"
}
[ -f "$KERNEL_DEB" ] || download "$KERNEL_PKG:$ARCH=$KERNEL_VER"
[ -f "$BUSYBOX_DEB" ] || download "busybox-static:$ARCH=$BUSYBOX_VER"
[ -f "$KERNEL_DEB" ] && [ -f "$BUSYBOX_DEB" ] || die "apt-get download left no $KERNEL_DEB or $BUSYBOX_DEB"

WORK="$CACHE/x86-numa-work"
rm -rf "$WORK"
mkdir -p "$WORK/kernel" "$WORK/busybox"
dpkg-deb -x "$KERNEL_DEB" "$WORK/kernel"  # dpkg-deb -x only writes files: no root
dpkg-deb -x "$BUSYBOX_DEB" "$WORK/busybox"
VMLINUZ=$(ls "$WORK"/kernel/boot/vmlinuz-* 2>/dev/null | head -n 1)
[ -n "$VMLINUZ" ] || die "$KERNEL_DEB holds no boot/vmlinuz-*"
BUSYBOX="$WORK/busybox/bin/busybox"
[ -x "$BUSYBOX" ] || die "$BUSYBOX_DEB holds no bin/busybox"
"$BUSYBOX" sh -n "$HERE/init" || die "$HERE/init: busybox sh finds a syntax error"
"$BUSYBOX" --list-full > "$WORK/applets"

# The initramfs, written in Python with tools/build-images' cpio writer (every entry root-owned,
# /dev/console included, without root) and test_qmp.py's toucher guest.
python3 - "$ROOT" "$HERE" "$WORK" "$DISCO" "$BUSYBOX" "$INITRD_OUT" $LIBS <<'EOF'
import gzip
import importlib.machinery
import importlib.util
import os
import sys

root, here, work, disco, busybox, out, libs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], \
    sys.argv[6], sys.argv[7:]
loader = importlib.machinery.SourceFileLoader("build_images", os.path.join(root, "tools", "build-images"))
bi = importlib.util.module_from_spec(importlib.util.spec_from_loader("build_images", loader))
loader.exec_module(bi)
sys.path.insert(0, os.path.join(root, "tests", "control"))
from test_qmp import toucher_elf  # noqa: E402

entries = {}


def add(path, entry):
    parent = os.path.dirname(path)
    while parent != "/" and parent not in entries:
        entries[parent] = bi.Entry("dir", 0o755)
        parent = os.path.dirname(parent)
    entries[path] = entry


def file(path, source, mode=0o755):
    with open(source, "rb") as f:
        add(path, bi.Entry("file", mode, data=f.read()))


for d, mode in (("/dev", 0o755), ("/proc", 0o555), ("/sys", 0o555), ("/run", 0o755), ("/tmp", 0o1777)):
    add(d, bi.Entry("dir", mode))
# The kernel opens /dev/console for init before /init can mount devtmpfs.
add("/dev/console", bi.Entry("chr", 0o600, rdev=(5, 1)))
file("/init", os.path.join(here, "init"))
file("/bin/busybox", busybox)
for applet in open(os.path.join(work, "applets")).read().split():
    if applet != "bin/busybox":
        add("/" + applet, bi.Entry("link", 0o777, target="/bin/busybox"))
file("/bin/disco", disco)
for lib in libs:  # at the paths ldd names, as plain files (the host's symbolic links followed)
    file(lib, os.path.realpath(lib))
file("/vm/t.json", os.path.join(here, "t.json"), 0o644)
add("/vm/toucher.elf", bi.Entry("file", 0o644, data=toucher_elf()))

tmp = out + ".tmp"
with open(tmp, "wb") as f:
    f.write(gzip.compress(bi.cpio_newc(entries), compresslevel=9, mtime=bi.EPOCH))
os.replace(tmp, out)
with open(out.removesuffix(".cpio.gz") + ".contents", "w") as f:
    f.write(bi.describe(entries))
EOF
cp "$VMLINUZ" "$KERNEL_OUT.tmp"
mv "$KERNEL_OUT.tmp" "$KERNEL_OUT"
rm -rf "$WORK"
echo "$NEW_KEY" > "$STAMP.tmp"
mv "$STAMP.tmp" "$STAMP"
log "built $KERNEL_OUT ($(basename "$VMLINUZ")) and $INITRD_OUT ($(($(wc -c < "$INITRD_OUT") / 1024)) KiB)"
