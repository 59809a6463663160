#!/usr/bin/env bash
# Install Hinge Station on Raspberry Pi OS (Bookworm or Trixie, 64-bit) as a systemd service.
#
#   sudo deploy/install.sh               install, or update in place (safe to run again)
#   sudo deploy/install.sh --headless    run the headless rep logger (no page, no GPIO) instead
#   sudo deploy/install.sh --hub         the gym's hub (every station's reps, the gym page), on a Pi or any Debian box
#   deploy/install.sh --dry-run          print every step, change nothing
#   sudo deploy/install.sh --uninstall   remove it all but the rep database (--purge-data: that too)
#   sudo deploy/install.sh --no-start    in an image build or chroot: install and enable, start nothing
#
# What it makes: apt packages (python3-picamera2 needs libcamera, so it comes from apt), a venv in
# /opt/hinge-station that sees those system packages, the service user hinge-station (groups video,
# gpio and audio), /etc/hinge-station/config.toml with a fresh page write token, the models in
# /var/lib/hinge-station/models, the systemd units, and journald/logrotate limits.
# Every step checks first and changes only what differs, so a second run changes nothing.
set -euo pipefail
umask 022  # the venv and units must stay readable for the service user whatever root's umask is

usage() {
    cat <<'EOF'
usage: install.sh [--dry-run] [--headless | --coach | --hub] [--no-quantize] [--no-start]
       install.sh --uninstall [--purge-data] [--dry-run]

  --dry-run      print every step and change nothing
  --headless     enable hinge-station-log.service (rep logging only: no page, no LED or buzzer)
  --coach        enable hinge-station.service (the default; switches back from --headless)
  --hub          enable hinge-hub.service: the gym's hub (arm64 or amd64; no camera, models or GPIO);
                 it leaves a station's services on this machine as they are
  --no-quantize  keep the shipped float16 landmark model (skip `station models quantize`)
  --no-start     install and enable the units but start, restart or reload nothing (image builds,
                 chroots); chosen by itself when systemd is not running (`systemctl is-system-running`
                 says offline)
  --uninstall    stop and remove the services, venv, config and models; keep the rep database
  --purge-data   with --uninstall: also delete /var/lib/hinge-station and the service user
  --root DIR     write every file under DIR (for tests and image builds; system commands still run)
EOF
}

SRC_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-/usr/bin/python3}
SERVICE_USER=hinge-station
PREFIX=/opt/hinge-station
VENV=$PREFIX/venv
CONF_DIR=/etc/hinge-station
CONFIG=$CONF_DIR/config.toml
DATA_DIR=/var/lib/hinge-station
UNIT_DIR=/etc/systemd/system
JOURNALD_DROPIN=/etc/systemd/journald.conf.d/hinge-station.conf
LOGROTATE_FILE=/etc/logrotate.d/hinge-station
BIN_LINK=/usr/local/bin/station
COACH_UNIT=hinge-station.service
HEADLESS_UNIT=hinge-station-log.service
BACKUP_TIMER=hinge-station-backup.timer
HUB_UNIT=hinge-hub.service
UNITS=("$COACH_UNIT" "$HEADLESS_UNIT" hinge-station-backup.service "$BACKUP_TIMER" "$HUB_UNIT")
APT_PACKAGES=(python3-venv python3-picamera2 python3-lgpio sqlite3 logrotate espeak-ng alsa-utils)
# The hub needs no camera, GPIO or sound; its PostgreSQL driver comes with pip (psycopg's wheel).
HUB_APT_PACKAGES=(python3-venv sqlite3 logrotate)
PIP_EXTRAS=pi,quantize
MIN_PYTHON_MINOR=10

ROOT=""
DRY_RUN=0
UNINSTALL=0
PURGE=0
MODE=""
QUANTIZE=1
WROTE=0     # set by put_file / put_dir: did the last call change anything?
CHANGED=0   # anything the running service would need a restart for
NEW_TOKEN=""
START_FAILED=""
NO_START=0  # 1: no running systemd to talk to (--no-start, or detected): units are enabled, nothing started

say() { printf '%s\n' "$*"; }
step() { printf '\n==> %s\n' "$*"; }
warn() { printf 'install.sh: warning: %s\n' "$*" >&2; }
die() { printf 'install.sh: error: %s\n' "$*" >&2; exit 1; }

# run CMD...: a command that changes the system; printed always, executed unless --dry-run.
run() {
    if [ "$DRY_RUN" = 1 ]; then
        say "    would run: $*"
        return 0
    fi
    say "    + $*"
    "$@"
}

# put_file SRC DEST MODE [OWNER:GROUP]: install SRC as $ROOT$DEST unless it is already identical.
put_file() {
    local src=$1 dest=$ROOT$2 mode=$3 owner=${4:-} tmp
    WROTE=0
    if [ -f "$dest" ] && cmp -s "$src" "$dest" && [ "$(stat -c %a "$dest")" = "${mode#0}" ]; then
        say "    unchanged $2"
        return 0
    fi
    WROTE=1
    if [ "$DRY_RUN" = 1 ]; then
        say "    would write $2 (mode $mode${owner:+, owner $owner})"
        return 0
    fi
    mkdir -p "$(dirname "$dest")"
    tmp=$(mktemp "$dest.XXXXXX")
    cat "$src" >"$tmp"
    chmod "$mode" "$tmp"
    if [ -n "$owner" ]; then chown "$owner" "$tmp"; fi
    mv -f "$tmp" "$dest"
    say "    wrote $2 (mode $mode${owner:+, owner $owner})"
}

# put_dir DIR MODE [OWNER:GROUP]: create $ROOT$DIR if missing (owner set on creation), fix its mode.
put_dir() {
    local dir=$ROOT$1 mode=$2 owner=${3:-}
    WROTE=0
    if [ -d "$dir" ]; then
        if [ "$(stat -c %a "$dir")" != "${mode#0}" ]; then
            WROTE=1
            run chmod "$mode" "$dir"
        else
            say "    exists $1"
        fi
        return 0
    fi
    WROTE=1
    run mkdir -p -m "$mode" "$dir"
    if [ -n "$owner" ]; then run chown "$owner" "$dir"; fi
}

os_field() {
    sed -n "s/^$1=//p" "$ROOT/etc/os-release" | tr -d '"' | head -n 1
}

check_platform() {
    step "Checking the platform"
    [ -r "$ROOT/etc/os-release" ] || die "cannot read $ROOT/etc/os-release; this installer is for Raspberry Pi OS (Bookworm or Trixie, 64-bit)"
    local id codename arch pyver major minor
    id=$(os_field ID)
    codename=$(os_field VERSION_CODENAME)
    case "$id" in
        debian | raspbian) ;;
        *) die "unsupported OS '$id': this installer is for Raspberry Pi OS (Debian Bookworm or Trixie, 64-bit). Elsewhere run the station from a venv (scripts/demo.sh)" ;;
    esac
    case "$codename" in
        bookworm | trixie) ;;
        *) die "unsupported release '$codename': use Raspberry Pi OS Bookworm or Trixie (64-bit); older releases lack the libcamera and Python the station needs" ;;
    esac
    arch=$(dpkg --print-architecture)
    if [ "$MODE" = hub ]; then
        case "$arch" in
            arm64 | amd64) ;;
            *) die "unsupported architecture '$arch' for the hub: use a 64-bit Debian (arm64 or amd64)" ;;
        esac
    else
        [ "$arch" = arm64 ] || die "unsupported architecture '$arch': flash the 64-bit (arm64) Raspberry Pi OS; the pose runtime has no 32-bit build. On a PC run the station from a venv (scripts/demo.sh)"
    fi
    pyver=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])') || die "cannot run $PYTHON"
    major=${pyver%%.*}
    minor=${pyver#*.}
    if [ "$major" -ne 3 ] || [ "$minor" -lt "$MIN_PYTHON_MINOR" ]; then
        die "unsupported Python $pyver at $PYTHON: the station needs Python 3.$MIN_PYTHON_MINOR or newer (Bookworm has 3.11, Trixie 3.13)"
    fi
    say "    $id $codename $arch, Python $pyver"
}

install_packages() {
    step "System packages (apt)"
    local missing=() pkg
    if [ "$MODE" = hub ]; then APT_PACKAGES=("${HUB_APT_PACKAGES[@]}"); fi
    for pkg in "${APT_PACKAGES[@]}"; do
        # shellcheck disable=SC2016  # ${Status} is dpkg-query's field name, not a shell variable
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
            missing+=("$pkg")
        fi
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        say "    all present: ${APT_PACKAGES[*]}"
        return 0
    fi
    run apt-get update
    run env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
}

group_has_member() {
    local members
    members=$(getent group "$1" | cut -d: -f4)
    [[ ",$members," == *",$2,"* ]]
}

create_user() {
    step "Service user $SERVICE_USER (groups video, gpio, audio)"
    local groups=() group wanted=(video gpio audio)
    if [ "$MODE" = hub ]; then wanted=(); fi  # the hub reaches no device
    for group in "${wanted[@]}"; do
        if getent group "$group" >/dev/null; then
            groups+=("$group")
        else
            warn "group '$group' does not exist here; the service will not reach the $group devices"
        fi
    done
    if ! getent passwd "$SERVICE_USER" >/dev/null; then
        local joined
        joined=$(IFS=,; echo "${groups[*]}")
        run useradd --system --user-group --home-dir "$DATA_DIR" --no-create-home \
            --shell /usr/sbin/nologin ${joined:+--groups "$joined"} "$SERVICE_USER"
        return 0
    fi
    local added=0
    for group in "${groups[@]}"; do
        if ! group_has_member "$group" "$SERVICE_USER"; then
            run usermod -a -G "$group" "$SERVICE_USER"
            added=1
        fi
    done
    [ "$added" = 1 ] || say "    exists, in ${groups[*]}"
}

make_dirs() {
    step "Directories"
    put_dir "$PREFIX" 0755
    put_dir "$CONF_DIR" 0750 "root:$SERVICE_USER"
    put_dir "$DATA_DIR" 0750 "$SERVICE_USER:$SERVICE_USER"
    if [ "$MODE" != hub ]; then put_dir "$DATA_DIR/models" 0750 "$SERVICE_USER:$SERVICE_USER"; fi
}

# The project's package directories present in this checkout (web/ may not exist yet).
package_dirs=()
for d in device models web; do
    if [ -d "$SRC_DIR/$d" ]; then package_dirs+=("$d"); fi
done

source_fingerprint() {
    {
        (cd "$SRC_DIR" && find pyproject.toml README.md "${package_dirs[@]}" -type f ! -path '*/__pycache__/*' ! -name '*.pyc' \
            ! -name '*.tflite' ! -path 'models/fetched/*' -print0 | sort -z | xargs -0 sha256sum)
        cat "$ROOT$PREFIX/constraints.txt" 2>/dev/null || true
    } | sha256sum | cut -d' ' -f1
}

install_venv() {
    step "Python environment $VENV"
    local cfg=$ROOT$VENV/pyvenv.cfg
    if [ ! -x "$ROOT$VENV/bin/python" ]; then
        run "$PYTHON" -m venv --system-site-packages "$ROOT$VENV"
        CHANGED=1
    elif ! grep -qx 'include-system-site-packages = true' "$cfg"; then
        run "$PYTHON" -m venv --system-site-packages "$ROOT$VENV"
        CHANGED=1
    else
        say "    exists (with system site packages)"
    fi

    # picamera2's compiled helpers (simplejpeg) are built against the apt numpy: a pip numpy of
    # another ABI in the venv breaks `import picamera2`, so the venv keeps the system's numpy.
    local numpy tmp
    numpy=$("$PYTHON" -c 'import numpy; print(numpy.__version__)' 2>/dev/null || true)
    tmp=$(mktemp)
    {
        echo "# Written by deploy/install.sh: keep the venv on the numpy that python3-picamera2 was built against."
        if [ -n "$numpy" ]; then echo "numpy==$numpy"; fi
    } >"$tmp"
    if [ -z "$numpy" ] && [ "$DRY_RUN" = 1 ]; then
        say "    would pin numpy to the version python3-picamera2 brings"
    fi
    put_file "$tmp" "$PREFIX/constraints.txt" 0644
    rm -f "$tmp"

    local fingerprint stamp=$ROOT$PREFIX/installed-source.sha256
    fingerprint="$(source_fingerprint) $PIP_EXTRAS"
    if [ -x "$ROOT$VENV/bin/station" ] && [ "$fingerprint" = "$(cat "$stamp" 2>/dev/null || true)" ]; then
        say "    hinge-station already installed from this source"
    else
        # pip builds in the source tree: build from a copy so the checkout gets no root-owned files.
        local build=/tmp/hinge-station-build
        if [ "$DRY_RUN" = 0 ]; then
            build=$(mktemp -d)
            cp -R "$SRC_DIR/pyproject.toml" "$SRC_DIR/README.md" "${package_dirs[@]/#/$SRC_DIR/}" "$build/"
        fi
        run "$ROOT$VENV/bin/python" -m pip install --no-cache-dir --disable-pip-version-check \
            --constraint "$ROOT$PREFIX/constraints.txt" "${build}[$PIP_EXTRAS]"
        if [ "$DRY_RUN" = 0 ]; then rm -rf "$build"; fi
        tmp=$(mktemp)
        echo "$fingerprint" >"$tmp"
        put_file "$tmp" "$PREFIX/installed-source.sha256" 0644
        rm -f "$tmp"
        CHANGED=1
    fi
    if [ "$(readlink "$ROOT$BIN_LINK" 2>/dev/null || true)" = "$VENV/bin/station" ]; then
        say "    $BIN_LINK -> $VENV/bin/station"
    else
        if [ "$DRY_RUN" = 0 ]; then mkdir -p "$(dirname "$ROOT$BIN_LINK")"; fi
        run ln -sfn "$VENV/bin/station" "$ROOT$BIN_LINK"
    fi
    put_file "$SRC_DIR/deploy/README.md" "$PREFIX/doc/deploy.md" 0644
}

write_config() {
    step "Configuration $CONFIG"
    if [ -f "$ROOT$CONFIG" ]; then
        say "    kept (settings and the page's write token are unchanged)"
        return 0
    fi
    if [ "$DRY_RUN" = 1 ]; then
        say "    would write $CONFIG from deploy/config.example.toml with a new write token (mode 0640, owner root:$SERVICE_USER)"
        return 0
    fi
    local token tmp
    token=$(head -c 24 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
    tmp=$(mktemp)
    sed "s|^# token = \"\"\$|token = \"$token\"|" "$SRC_DIR/deploy/config.example.toml" >"$tmp"
    grep -qx "token = \"$token\"" "$tmp" || die "deploy/config.example.toml has no '# token = \"\"' line to fill in"
    put_file "$tmp" "$CONFIG" 0640 "root:$SERVICE_USER"
    rm -f "$tmp"
    NEW_TOKEN=$token
    CHANGED=1
}

# as_service CMD...: run as the service user, so what it writes belongs to that user.
# It starts in the data directory: lgpio makes its notification pipes in the working directory.
as_service() {
    run runuser -u "$SERVICE_USER" -- env -C "$ROOT$DATA_DIR" HOME="$DATA_DIR" PIP_NO_CACHE_DIR=1 "$@"
}

fetch_models() {
    if [ "$MODE" = hub ]; then return 0; fi  # the hub runs no model
    step "Pose models in $DATA_DIR/models"
    local station=$ROOT$VENV/bin/station
    as_service "$station" --config "$ROOT$CONFIG" models fetch --models-dir "$ROOT$DATA_DIR/models"
    if [ "$QUANTIZE" = 0 ]; then
        say "    skipping quantization (--no-quantize): the float16 landmark model is used"
    elif [ -f "$ROOT$DATA_DIR/models/quantized.json" ]; then
        say "    already quantized (models/quantized.json)"
    elif [ "$DRY_RUN" = 1 ]; then
        say "    would run: station models quantize --models-dir $ROOT$DATA_DIR/models"
    elif "$station" models quantize --help >/dev/null 2>&1; then
        as_service "$station" --config "$ROOT$CONFIG" models quantize --models-dir "$ROOT$DATA_DIR/models" ||
            warn "quantization failed; the station uses the float16 model (retry: sudo -u $SERVICE_USER station models quantize)"
    else
        warn "this version has no 'station models quantize'; the station uses the float16 model"
    fi
}

install_units() {
    step "systemd units, journald and logrotate limits"
    local unit units_changed=0 journald_changed=0
    for unit in "${UNITS[@]}"; do
        put_file "$SRC_DIR/deploy/systemd/$unit" "$UNIT_DIR/$unit" 0644
        if [ "$WROTE" = 1 ]; then units_changed=1; fi
    done
    put_file "$SRC_DIR/deploy/journald.conf.d/hinge-station.conf" "$JOURNALD_DROPIN" 0644
    journald_changed=$WROTE
    put_file "$SRC_DIR/deploy/logrotate.d/hinge-station" "$LOGROTATE_FILE" 0644
    if [ "$units_changed" = 1 ]; then CHANGED=1; fi
    if [ "$NO_START" = 1 ]; then
        say "    no running systemd: units and limits take effect at boot (no daemon-reload, no journald restart)"
        return 0
    fi
    if [ "$units_changed" = 1 ]; then run systemctl daemon-reload; fi
    # journald reads its configuration only at start; it keeps services' log streams across a restart.
    if [ "$journald_changed" = 1 ]; then run systemctl restart systemd-journald; fi
}

enable_hub() {
    step "Service $HUB_UNIT"
    if systemctl is-enabled --quiet "$HUB_UNIT" 2>/dev/null; then
        say "    $HUB_UNIT enabled"
    else
        run systemctl enable "$HUB_UNIT"
    fi
    if [ "$NO_START" = 1 ]; then
        say "    not starting: no running systemd here (--no-start or a chroot); $HUB_UNIT starts at boot"
        return 0
    fi
    if ! systemctl is-active --quiet "$HUB_UNIT" 2>/dev/null; then
        run systemctl start "$HUB_UNIT" || START_FAILED="$START_FAILED $HUB_UNIT"
    elif [ "$CHANGED" = 1 ]; then
        run systemctl restart "$HUB_UNIT" || START_FAILED="$START_FAILED $HUB_UNIT"
    else
        say "    $HUB_UNIT running"
    fi
}

enable_services() {
    if [ "$MODE" = hub ]; then
        enable_hub
        return 0
    fi
    step "Services"
    local want other
    if [ "$MODE" = headless ]; then want=$HEADLESS_UNIT other=$COACH_UNIT; else want=$COACH_UNIT other=$HEADLESS_UNIT; fi
    if systemctl is-enabled --quiet "$other" 2>/dev/null; then
        run systemctl disable "${NOW[@]}" "$other"
    fi
    local unit
    for unit in "$want" "$BACKUP_TIMER"; do
        if systemctl is-enabled --quiet "$unit" 2>/dev/null; then
            say "    $unit enabled"
        else
            run systemctl enable "$unit"
        fi
    done

    step "Checking the station (station doctor --quick, as $SERVICE_USER)"
    as_service "$ROOT$VENV/bin/station" --config "$ROOT$CONFIG" doctor --quick ||
        warn "station doctor reports failures (above); the service starts anyway and keeps retrying"

    if [ "$NO_START" = 1 ]; then
        step "Not starting: no running systemd here (--no-start or a chroot); $want and $BACKUP_TIMER start at boot"
        return 0
    fi
    step "Starting (waits until the station reports ready: model loaded, camera open)"
    for unit in "$want" "$BACKUP_TIMER"; do
        if ! systemctl is-active --quiet "$unit" 2>/dev/null; then
            run systemctl start "$unit" || START_FAILED="$START_FAILED $unit"
        elif [ "$CHANGED" = 1 ] && [ "$unit" = "$want" ]; then
            run systemctl restart "$unit" || START_FAILED="$START_FAILED $unit"
        else
            say "    $unit running"
        fi
    done
}

detect_mode() {
    if [ -n "$MODE" ]; then return 0; fi
    MODE=coach
    if systemctl is-enabled --quiet "$HEADLESS_UNIT" 2>/dev/null && ! systemctl is-enabled --quiet "$COACH_UNIT" 2>/dev/null; then
        MODE=headless
    fi
}

web_port() {
    awk '/^\[/{web = ($0 == "[web]")} web && /^port *=/{gsub(/[^0-9]/, "", $0); print; exit}' "$ROOT$CONFIG" 2>/dev/null || true
}

summary() {
    local port unit
    port=$(web_port)
    unit=$COACH_UNIT
    if [ "$MODE" = headless ]; then unit=$HEADLESS_UNIT; fi
    if [ "$MODE" = hub ]; then unit=$HUB_UNIT; fi
    step "Done"
    if [ "$DRY_RUN" = 1 ]; then
        say "    dry run: nothing was changed"
        return 0
    fi
    say "    service:  $unit   (systemctl status ${unit%.service}; journalctl -u ${unit%.service} -f)"
    if [ "$MODE" = coach ] || [ "$MODE" = hub ]; then say "    page:     http://$(uname -n).local:${port:-8080}/"; fi
    if [ "$MODE" = hub ]; then
        say "    broker:   set [mqtt] host (and username/password/tls) and [hub] stations in $CONFIG;"
        say "              the gym's Mosquitto config and ACL: deploy/README.md, \"Many stations\""
    fi
    say "    config:   $CONFIG   (then: sudo systemctl restart ${unit%.service})"
    say "    data:     $DATA_DIR   (rep database, weekly backups in backups/)"
    say "    check:    sudo -u $SERVICE_USER station doctor"
    if [ -n "$NEW_TOKEN" ]; then
        say ""
        say "    Page write token (shown only now; it is kept in $CONFIG):"
        say "        $NEW_TOKEN"
    fi
    if [ -n "$START_FAILED" ]; then
        warn "did not start:$START_FAILED. See: journalctl -u ${unit%.service} -n 50; sudo -u $SERVICE_USER station doctor"
        return 1
    fi
}

install() {
    check_platform
    install_packages
    create_user
    make_dirs
    install_venv
    write_config
    fetch_models
    install_units
    detect_mode
    enable_services
    summary
}

# retire: a station publishing over MQTT leaves Home Assistant and the hub's floor (`station retire`
# empties its retained discovery configs, state and availability), once its service has stopped (a
# running station would say "offline" again) and while its program and config are still here. Best
# effort: a station without [mqtt], or a broker out of reach, is said and the uninstall goes on.
retire() {
    step "Leaving Home Assistant and the hub (station retire, as $SERVICE_USER)"
    if [ ! -x "$ROOT$VENV/bin/station" ] || [ ! -f "$ROOT$CONFIG" ]; then
        say "    nothing to retire: no station program or config here"
        return 0
    fi
    as_service "$ROOT$VENV/bin/station" --config "$ROOT$CONFIG" retire ||
        warn "station retire did not run through (above: no [mqtt] set, or the broker out of reach); if this station published over MQTT, its entities stay in Home Assistant until you delete them there"
}

uninstall() {
    step "Stopping and removing the services"
    local unit removed=0
    for unit in "${UNITS[@]}"; do
        if [ -e "$ROOT$UNIT_DIR/$unit" ]; then
            run systemctl disable "${NOW[@]}" "$unit" || warn "could not stop $unit"
            run rm -f "$ROOT$UNIT_DIR/$unit"
            removed=1
        fi
    done
    if [ "$removed" = 1 ] && [ "$NO_START" = 0 ]; then run systemctl daemon-reload; fi
    if [ -e "$ROOT$JOURNALD_DROPIN" ]; then
        run rm -f "$ROOT$JOURNALD_DROPIN"
        if [ "$NO_START" = 0 ]; then run systemctl restart systemd-journald; fi
    fi
    if [ -e "$ROOT$LOGROTATE_FILE" ]; then run rm -f "$ROOT$LOGROTATE_FILE"; fi

    retire

    step "Removing the program, its config and the models"
    if [ "$(readlink "$ROOT$BIN_LINK" 2>/dev/null || true)" = "$VENV/bin/station" ]; then run rm -f "$ROOT$BIN_LINK"; fi
    local path
    for path in "$PREFIX" "$CONF_DIR" "$DATA_DIR/models"; do
        if [ -e "$ROOT$path" ]; then run rm -rf -- "$ROOT$path"; fi
    done

    step "Rep data"
    if [ "$PURGE" = 1 ]; then
        if [ -e "$ROOT$DATA_DIR" ]; then run rm -rf -- "$ROOT$DATA_DIR"; fi
        if getent passwd "$SERVICE_USER" >/dev/null; then run userdel "$SERVICE_USER"; fi
    else
        say "    kept $DATA_DIR (rep database, reps.jsonl, backups) and the user $SERVICE_USER who owns it;"
        say "    delete both with: sudo deploy/install.sh --uninstall --purge-data"
    fi
    say "    apt packages are left installed (other software may use them): ${APT_PACKAGES[*]}"
}

ARGS=("$@")
while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) DRY_RUN=1 ;;
        --headless) MODE=headless ;;
        --coach) MODE=coach ;;
        --hub) MODE=hub PIP_EXTRAS=hub ;;
        --no-quantize) QUANTIZE=0 ;;
        --no-start) NO_START=1 ;;
        --uninstall) UNINSTALL=1 ;;
        --purge-data) PURGE=1 ;;
        --root)
            [ $# -ge 2 ] || die "--root needs a directory"
            ROOT=$(cd "$2" && pwd) || die "--root $2 is not a directory"
            shift
            ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown option '$1'" ;;
    esac
    shift
done

if [ "$PURGE" = 1 ] && [ "$UNINSTALL" = 0 ]; then die "--purge-data only goes with --uninstall"; fi
if [ "$DRY_RUN" = 0 ] && [ -z "$ROOT" ] && [ "$EUID" -ne 0 ]; then
    die "run as root: sudo $0 ${ARGS[*]}  (or --dry-run to see the steps)"
fi

# An image build or a chroot has no systemd to start units with: systemctl there still enables
# units (it only writes symlinks) but cannot start or reload anything.
if [ "$NO_START" = 0 ] && [ "$(systemctl is-system-running 2>/dev/null || true)" = offline ]; then
    say "systemd is not running here (systemctl is-system-running: offline): installing with --no-start"
    NO_START=1
fi
NOW=(--now)
if [ "$NO_START" = 1 ]; then NOW=(); fi

if [ "$UNINSTALL" = 1 ]; then
    uninstall
else
    install
fi
