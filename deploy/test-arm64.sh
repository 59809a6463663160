#!/usr/bin/env bash
# Prove the station on arm64 without a Pi: install it for real into an emulated Debian Bookworm arm64
# root (debootstrap + qemu-user-static), run the pose engine and the hinge analysis on the first
# frames of two real clips there, do the same on this machine, and compare.
#
#   sudo deploy/test-arm64.sh [--frames N] [--json PATH] [--cpus "cortex-a72 cortex-a76"]
#                             [--cache DIR] [--rebuild]
#
# The root is cached (default ~/.cache/hinge-station/arm64-bookworm) and reused: a second run
# installs over the first exactly as `git pull && sudo deploy/install.sh` does on a Pi. Each CPU in
# --cpus is one qemu CPU model (QEMU_CPU): cortex-a72 is the Pi 4's core (no fp16 arithmetic, no
# dot product), cortex-a76 the Pi 5's (both). Exit status: 0 when every trace is within the
# tolerance (below), 1 when not, 2 when the check could not run.
#
# Tolerance: the host's own noise floor, measured in the same run. The float model moves its
# landmarks by a p99 of 16-18 px when the picture moves by one pixel (these clips' first 30 and 40
# frames; the float model's 6 / 15 deg p95 hip / knee jitter under a 1 px crop shift is the same
# effect). Another CPU's arithmetic and video decoding differ in the last bits of a float or a
# pixel level, and they feed the same tracking loop, so they may move the landmarks as far as a
# one-pixel nudge does and no further (p99, per clip); the person must be found on the same frames
# and the verdicts (analysis events) must be identical. Measured arm64 p99: 13.7 and 15.2 px.
set -euo pipefail
umask 022

SRC_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/hinge-station/arm64-bookworm
CLIPS_DIR=$SRC_DIR/../shared/clips
# A clean conventional deadlift and one from another source, both side views that start standing:
# the first 30 frames hold a standing start and the first lowering, so reps start and framing settles.
CLIPS=(formfit_deadlift_side_good.mp4 bichraix_deadlift_side_good014.mp4)
FRAMES=30
CPUS="cortex-a72 cortex-a76"
JSON=""
REBUILD=0
MIRROR=http://deb.debian.org/debian
IN_ROOT=/root/hinge          # the checkout and ../shared/clips inside the root
MOUNTED=()

say() { printf '%s\n' "$*"; }
step() { printf '\n==> %s\n' "$*"; }
die() { printf 'test-arm64.sh: error: %s\n' "$*" >&2; exit 2; }

usage() {
    sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

while [ $# -gt 0 ]; do
    case "$1" in
        --frames) [ $# -ge 2 ] || die "--frames needs a number"; FRAMES=$2; shift ;;
        --json) [ $# -ge 2 ] || die "--json needs a path"; JSON=$(realpath -m "$2"); shift ;;
        --cpus) [ $# -ge 2 ] || die "--cpus needs qemu CPU names"; CPUS=$2; shift ;;
        --cache) [ $# -ge 2 ] || die "--cache needs a directory"; CACHE=$(realpath -m "$2"); shift ;;
        --rebuild) REBUILD=1 ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown option '$1'" ;;
    esac
    shift
done
[[ "$FRAMES" =~ ^[1-9][0-9]*$ ]] || die "--frames must be a positive number, not '$FRAMES'"
ROOT=$CACHE/root
WORK=""  # this run's traces, made after the checks
HOST_MODELS=""
HOST_STATION=$SRC_DIR/.venv/bin/station

check_tools() {
    [ "$EUID" -eq 0 ] || die "run as root: debootstrap, chroot and mount need it (sudo $0)"
    local missing=()
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    if [ ! -x /usr/bin/qemu-aarch64-static ] && [ ! -x /usr/libexec/qemu-binfmt/aarch64-binfmt-P ]; then missing+=(qemu-user-static); fi
    if [ "${#missing[@]}" -gt 0 ]; then
        die "missing ${missing[*]}: sudo apt-get install -y debootstrap qemu-user-static binfmt-support"
    fi
    grep -qx enabled /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null ||
        die "the kernel does not run aarch64 binaries through qemu (no enabled /proc/sys/fs/binfmt_misc/qemu-aarch64): sudo apt-get install -y binfmt-support qemu-user-static && sudo update-binfmts --enable qemu-aarch64"
    [ -x "$HOST_STATION" ] || die "no host venv at $SRC_DIR/.venv: run scripts/setup.sh first"
    local clip
    for clip in "${CLIPS[@]}"; do
        [ -f "$CLIPS_DIR/$clip" ] || die "clip $CLIPS_DIR/$clip is missing (the shared clips sit at ../shared/clips beside the checkout)"
    done
}

unmount_all() {
    local i
    for ((i = ${#MOUNTED[@]} - 1; i >= 0; i--)); do
        umount "${MOUNTED[i]}" 2>/dev/null || umount -l "${MOUNTED[i]}" || true
    done
    MOUNTED=()
}
trap unmount_all EXIT
trap 'exit 130' INT TERM

mount_into_root() {
    # XNNPACK's CPU detection reads /sys and /proc (see arm_cpuinfo): without them it gives up and
    # TFLite falls back to other kernels, so the run would not test the kernels a Pi uses.
    local target=$1 kind=$2 source=$3
    if [ "$kind" != bind ] || [ -d "$source" ]; then mkdir -p "$target"; fi
    if [ "$kind" != bind ] || [ -d "$source" ]; then mountpoint -q "$target" && return 0; fi
    case "$kind" in
        bind) mount --bind "$source" "$target" ;;
        *) mount -t "$kind" "$source" "$target" ;;
    esac
    MOUNTED+=("$target")
}

build_root() {
    if [ "$REBUILD" = 1 ] && [ -d "$ROOT" ]; then
        step "Removing the cached root (--rebuild)"
        rm -rf -- "$ROOT"
    fi
    if [ -f "$ROOT/.hinge-base-complete" ]; then
        step "Reusing the cached Debian bookworm arm64 root $ROOT"
        return 0
    fi
    step "Building a Debian bookworm arm64 root in $ROOT (debootstrap under qemu: about 4 minutes)"
    local partial=$CACHE/root.partial
    rm -rf -- "$partial"
    mkdir -p "$CACHE"
    # python3: Raspberry Pi OS has it; install.sh brings the rest (venv, sqlite3, espeak-ng...).
    debootstrap --arch=arm64 --variant=minbase --include=python3,systemd,passwd,ca-certificates \
        bookworm "$partial" "$MIRROR"
    touch "$partial/.hinge-base-complete"
    rm -rf -- "$ROOT"
    mv "$partial" "$ROOT"
}

# in_root CMD...: run in the root with a clean environment (the host's pip settings point at host paths).
in_root() {
    chroot "$ROOT" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root LANG=C.UTF-8 "$@"
}

prepare_root() {
    step "Network, CA bundle, checkout and clips into the root"
    cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
    # The host's bundle holds every CA this machine trusts (also a proxy's): pip inside needs them.
    mkdir -p "$ROOT/usr/local/share/ca-certificates"
    cp /etc/ssl/certs/ca-certificates.crt "$ROOT/usr/local/share/ca-certificates/host-bundle.crt"
    cp /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/ca-certificates.crt"
    mount_into_root "$ROOT/proc" proc proc
    mount_into_root "$ROOT/sys" sysfs sysfs
    mount_into_root "$ROOT/dev" bind /dev
    mount_into_root "$ROOT/dev/pts" bind /dev/pts

    # The checkout as git sees it (tracked and new files, no .venv or caches), fresh each run.
    rm -rf -- "$ROOT$IN_ROOT/hinge-station"
    mkdir -p "$ROOT$IN_ROOT/hinge-station" "$ROOT$IN_ROOT/shared"
    local file
    (cd "$SRC_DIR" && git ls-files -z --cached --others --exclude-standard |
        while IFS= read -r -d '' file; do if [ -e "$file" ]; then printf '%s\0' "$file"; fi; done |
        tar --null -T - -cf -) | tar -xf - -C "$ROOT$IN_ROOT/hinge-station"
    rm -rf -- "$ROOT$IN_ROOT/shared/clips"
    cp -R "$CLIPS_DIR" "$ROOT$IN_ROOT/shared/clips"

    # Debian has no python3-picamera2 or python3-lgpio (they come from the Raspberry Pi archive,
    # which this machine cannot reach). Empty stand-ins let install.sh's apt step pass; pip then
    # installs lgpio's own aarch64 wheel for the `pi` extra. The camera and GPIO themselves are not
    # tested here (tests/test_sources.py and the signals tests cover them on mocks).
    local pkg deb
    for pkg in python3-picamera2 python3-lgpio; do
        # shellcheck disable=SC2016  # ${Status} is dpkg-query's field name, not a shell variable
        if in_root dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then continue; fi
        deb=$ROOT/tmp/$pkg
        rm -rf -- "$deb"
        mkdir -p "$deb/DEBIAN"
        printf 'Package: %s\nVersion: 0~hinge-standin\nArchitecture: all\nMaintainer: Hinge Station <noreply@localhost>\nDescription: empty stand-in for the Raspberry Pi archive package (deploy/test-arm64.sh)\n' \
            "$pkg" >"$deb/DEBIAN/control"
        in_root dpkg-deb --build "/tmp/$pkg" "/tmp/$pkg.deb" >/dev/null
        in_root dpkg -i "/tmp/$pkg.deb"
        say "    installed an empty stand-in for $pkg"
    done
}

install_in_root() {
    step "deploy/install.sh inside the root (for real; systemd is not running there, so nothing starts)"
    # --no-quantize: judging int8 variants on the clips would take hours under emulation; the host's
    # variants (the same files: the build does not depend on the CPU) are timed below instead.
    in_root "$IN_ROOT/hinge-station/deploy/install.sh" --no-quantize
    in_root systemctl is-enabled hinge-station.service hinge-station-backup.timer
    step "station models fetch inside the root (as the service user; verifies both models)"
    in_root runuser -u hinge-station -- env -C /var/lib/hinge-station HOME=/var/lib/hinge-station \
        station --config /etc/hinge-station/config.toml models fetch --models-dir /var/lib/hinge-station/models
}

trace_host() {
    step "The host: models, and the trace with its one-pixel noise floor"
    "$HOST_STATION" models fetch
    HOST_MODELS=$("$SRC_DIR/.venv/bin/python" -c 'from device.config import load_settings; print(load_settings().models_dir)')
    [ -f "$HOST_MODELS/quantized.json" ] || "$HOST_STATION" models quantize --no-clips
    "$HOST_STATION" models trace "${CLIPS[@]/#/$CLIPS_DIR/}" --frames "$FRAMES" --variant float16 \
        --noise-floor --out "$WORK/host.json"
}

trace_in_root() {
    # The root's fetched models, plus the host's quantized variants and their record to time them.
    local models=$IN_ROOT/models
    rm -rf -- "$ROOT$models"
    mkdir -p "$ROOT$models"
    cp "$ROOT"/var/lib/hinge-station/models/*.tflite "$ROOT$models/"
    # shellcheck disable=SC2016  # the python snippet's $ is not the shell's
    "$SRC_DIR/.venv/bin/python" -c '
import json, shutil, sys, pathlib
src, dst = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
record = json.loads((src / "quantized.json").read_text())
for v in record.get("variants", []):
    shutil.copy2(src / v["file"], dst / v["file"])
shutil.copy2(src / "quantized.json", dst / "quantized.json")' "$HOST_MODELS" "$ROOT$models"
    local cpu
    for cpu in $CPUS; do
        step "Trace inside the root, QEMU_CPU=$cpu ($FRAMES frames of ${#CLIPS[@]} clips; emulated: minutes)"
        arm_cpuinfo "$cpu" >"$WORK/cpuinfo-$cpu"
        mount_into_root "$ROOT/proc/cpuinfo" bind "$WORK/cpuinfo-$cpu"
        QEMU_CPU=$cpu in_root QEMU_CPU="$cpu" station models trace "${CLIPS[@]/#/$IN_ROOT/shared/clips/}" \
            --frames "$FRAMES" --variant float16 --models-dir "$models" --variant-speed --out "$IN_ROOT/trace-$cpu.json"
        umount "$ROOT/proc/cpuinfo"
        unset 'MOUNTED[${#MOUNTED[@]}-1]'
        cp "$ROOT$IN_ROOT/trace-$cpu.json" "$WORK/arm64-$cpu.json"
    done
}

# arm_cpuinfo QEMU_CPU: the /proc/cpuinfo a Pi with that core shows, one entry per host CPU.
# qemu-user (7.2) passes the host's x86 /proc/cpuinfo through; with the host's /sys beside it,
# the cpuinfo library that XNNPACK and ruy use finds processors but no ARM ones and crashes
# (SIGSEGV in the first invoke), and without /sys it gives up and TFLite falls back to slower
# kernels. So the root sees the core's own identity (MIDR: implementer, part, variant, revision, as
# on a Pi 4 = Cortex-A72 r0p3 and a Pi 5 = Cortex-A76 r4p1) and the features qemu's CPU model
# reports in the auxiliary vector, which is where XNNPACK reads fp16 and dot-product support.
arm_cpuinfo() {
    local part variant revision features i
    case "$1" in
        cortex-a72) part=0xd08 variant=0x0 revision=3 features="fp asimd aes pmull sha1 sha2 crc32 cpuid" ;;
        cortex-a76) part=0xd0b variant=0x4 revision=1
            features="fp asimd aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp" ;;
        *) die "no /proc/cpuinfo description for QEMU_CPU=$1 (known: cortex-a72, cortex-a76)" ;;
    esac
    for ((i = 0; i < $(nproc); i++)); do
        printf 'processor\t: %d\nBogoMIPS\t: 108.00\nFeatures\t: %s\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: %s\nCPU part\t: %s\nCPU revision\t: %s\n\n' \
            "$i" "$features" "$variant" "$part" "$revision"
    done
}

compare() {
    step "arm64 against the host"
    local others=() cpu
    for cpu in $CPUS; do others+=("$WORK/arm64-$cpu.json"); done
    "$HOST_STATION" models compare "$WORK/host.json" "${others[@]}" ${JSON:+--json "$JSON"}
}

check_tools
mkdir -p "$CACHE"
WORK=$(mktemp -d "$CACHE/run.XXXXXX")
build_root
prepare_root
install_in_root
trace_host
trace_in_root
unmount_all
set +e
compare
status=$?
set -e
say "traces kept in $WORK"
exit "$status"
