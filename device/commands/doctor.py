"""`station doctor`: is this station ready to coach, and if not, what to do about it.

Each check looks at one real thing (config, clock, disk, rep database, model files, TFLite runtime,
camera, GPIO) and returns a plain `Check`. `run_checks` never raises, so the web page's health
endpoint can call it; by default it is quick and touches no device the live loop may be holding.
With `probe=True` (the CLI's default) it also opens the camera for one frame and runs the detector
once, which is what a person debugging a new install wants.
"""
from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import logging
import os
import shutil
import sqlite3
import stat
import tempfile
import time
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Optional
from urllib.parse import quote

from device.commands.tables import print_table, write_json
from device.config import DEFAULT_CONFIG_PATHS, Settings, find_config_file
from device.errors import StationError
from device.station.clock import kernel_clock_synchronised
from device.station.pending import PendingFile
from device.station.replog import pending_path_for

log = logging.getLogger(__name__)

OK, WARN, FAIL = "ok", "warn", "fail"
SERVICE_USER = "hinge-station"
AS_SERVICE_USER = f"sudo -u {SERVICE_USER} station doctor"
# This release was written in 2025: a clock before that is a Pi without RTC that booted offline.
EARLIEST_PLAUSIBLE = datetime(2025, 1, 1, tzinfo=timezone.utc)
# Below this many times store.min_free_mb the card is close to pausing the rep log: warn early.
LOW_DISK_FACTOR = 4
MIN_TOKEN_LENGTH = 16


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # "ok" | "warn" | "fail"
    detail: str
    fix: str = ""

    @property
    def passed(self) -> bool:
        """Warnings pass: the station works, with something worth knowing."""
        return self.status != FAIL

    def row(self) -> dict[str, str]:
        return {"check": self.name, "status": self.status, "detail": self.detail, "fix": self.fix}


def run_checks(settings: Settings, config_path: Optional[Path] = None, probe: bool = False,
               broker: Optional[bool] = None) -> list[Check]:
    """All checks in a fixed order; a check that crashes is reported as failed, never raised.
    probe: open the camera and run the model. broker: connect once to the MQTT broker with these
    credentials (its own client id, no will: safe while the station runs; `station doctor` always
    does, --quick too, so a wrong password is never reported as fine); None: as `probe`."""
    return Doctor(settings, config_path, probe, broker).run()


class Doctor:
    def __init__(self, settings: Settings, config_path: Optional[Path] = None, probe: bool = False,
                 broker: Optional[bool] = None):
        self.settings = settings
        self.config_path = config_path
        self.probe = probe
        self.broker = probe if broker is None else broker

    def run(self) -> list[Check]:
        checks: list[tuple[str, Callable[[], Check]]] = [
            ("config", self.config),
            ("clock", self.clock),
            ("disk", self.disk),
            ("database", self.database),
            ("models", self.models),
            ("runtime", self.runtime),
            ("camera", self.camera),
            ("gpio", self.gpio),
            ("voice", self.voice),
            ("mqtt", self.mqtt),
        ]
        results = []
        for name, check in checks:
            try:
                results.append(check())
            except Exception as err:  # a health endpoint must answer even if one check is broken
                log.debug("check %s crashed", name, exc_info=True)
                results.append(Check(name, FAIL, f"the check itself crashed: {type(err).__name__}: {err}",
                                     "run `station -v doctor` and report the traceback"))
        return results

    # --- config -----------------------------------------------------------------------------

    def config(self) -> Check:
        s = self.settings
        path = find_config_file(self.config_path)
        where = f"loaded {path}" if path else "no config file: defaults and HINGE_* environment"
        problems: list[tuple[str, str, str]] = []
        if path is None:
            for hidden in DEFAULT_CONFIG_PATHS:  # the loader skips a config it may not read: say so
                try:
                    hidden.stat()
                except PermissionError:
                    problems.append((FAIL, f"{hidden} exists but user {_user()} may not read it, so defaults were used",
                                     f"run as the service user: {AS_SERVICE_USER}"))
                except OSError:
                    pass

        pins: dict[int, list[str]] = {}
        if s.signals.enabled:
            leds = {"rgb": ["led_red_pin", "led_green_pin", "led_blue_pin"], "single": ["led_red_pin"]}[s.signals.led]
            names = leds + (["buzzer_pin"] if s.signals.buzzer != "none" else [])
            for name in names:
                pins.setdefault(getattr(s.signals, name), []).append(name)
        for pin, users in pins.items():
            if len(users) > 1:
                problems.append((FAIL, f"GPIO{pin} is used twice ({', '.join('signals.' + u for u in users)})",
                                 "give each LED leg and the buzzer its own pin (see deploy/README.md)"))

        token = s.web.token.get_secret_value() if s.web.token else ""
        if not token:
            problems.append((WARN, "web.token is not set, so the page's write actions (settings, labels) are off",
                             "set web.token in the config (deploy/install.sh generates one)"))
        elif len(token) < MIN_TOKEN_LENGTH:
            problems.append((WARN, f"web.token is only {len(token)} characters",
                             "use a long random token: python3 -c 'import secrets; print(secrets.token_urlsafe(24))'"))
        if token and path and path.is_file() and path.stat().st_mode & stat.S_IROTH:
            problems.append((WARN, f"{path} holds the write token but any local user can read it",
                             f"sudo chmod 640 {path} && sudo chgrp {SERVICE_USER} {path}"))
        if s.web.camera_preview:
            problems.append((OK, "web.camera_preview is on: the live page shows the camera picture (opt-in)", ""))
        return _combine("config", where, problems)

    # --- clock ------------------------------------------------------------------------------

    def clock(self) -> Check:
        now = datetime.now(timezone.utc)
        shown = now.astimezone().strftime("%Y-%m-%d %H:%M %Z")
        if now < EARLIEST_PLAUSIBLE:
            return Check("clock", FAIL, f"the clock reads {shown}, before this software existed: rep times would be wrong",
                         "give the station network so systemd-timesyncd sets the time (check `timedatectl`), "
                         "or fit an RTC battery (Pi 5)")
        synced = kernel_clock_synchronised()
        if synced is False:
            return Check("clock", WARN, f"{shown}, but the kernel reports the clock is not synchronised (no NTP)",
                         "enable time sync (`sudo timedatectl set-ntp true`) and give the station network; "
                         "a Pi has no clock battery, so after a power cut rep times drift")
        state = "synchronised" if synced else "sync state unknown on this platform"
        return Check("clock", OK, f"{shown}, {state}")

    # --- disk -------------------------------------------------------------------------------

    def disk(self) -> Check:
        data_dir = self.settings.data_dir
        existing = _nearest_existing(data_dir)
        usage = shutil.disk_usage(existing)
        free_mb, total_mb = usage.free // 2**20, usage.total // 2**20
        floor = self.settings.store.min_free_mb
        if not os.access(existing, os.W_OK | os.X_OK):
            what = data_dir if existing == data_dir else f"{existing} (to create {data_dir})"
            return Check("disk", FAIL, f"{what} is not writable by user {_user()}",
                         f"run as the service user ({AS_SERVICE_USER}), or fix the owner: "
                         f"sudo chown -R {SERVICE_USER}: {data_dir}")
        detail = f"{free_mb} MB free of {total_mb} MB at {data_dir} (the rep log pauses below {floor} MB)"
        cleanup = ("free space: `sudo journalctl --vacuum-size=100M`, copy old backups off "
                   f"{data_dir / 'backups'}, or use a bigger card")
        if free_mb < floor:
            return Check("disk", FAIL, detail, cleanup)
        if free_mb < LOW_DISK_FACTOR * floor:
            return Check("disk", WARN, detail, cleanup)
        return Check("disk", OK, detail)

    # --- rep database -----------------------------------------------------------------------

    def database(self) -> Check:
        path = self.settings.store.db_path
        assert path is not None
        if not path.exists():
            return Check("database", OK, f"no rep database yet at {path} (created on the first run)")
        if not os.access(path, os.R_OK):
            return Check("database", FAIL, f"{path} is not readable by user {_user()}",
                         f"run as the service user: {AS_SERVICE_USER}")
        size_kb = path.stat().st_size // 1024
        restore = (f"stop the station, move {path.name} aside and restore a backup from {path.parent / 'backups'} "
                   "(see deploy/README.md); without one the station starts a fresh database")
        try:
            result = integrity_check(path)
        except sqlite3.DatabaseError as err:
            return Check("database", FAIL, f"{path} cannot be read as SQLite: {err}", restore)
        if result != ["ok"]:
            shown = "; ".join(result[:3]) + (f" (+{len(result) - 3} more)" if len(result) > 3 else "")
            return Check("database", FAIL, f"{path} fails PRAGMA integrity_check: {shown}", restore)
        aside = sorted(p.name for p in path.parent.glob(f"{path.name}.damaged-*") if not p.name.endswith(("-wal", "-shm")))
        pending = pending_path_for(path)
        waiting = len(PendingFile(pending).records()) if pending.exists() else 0
        if waiting:
            return Check("database", WARN, f"{path} passes PRAGMA integrity_check, but {waiting} rep-log items wait "
                         f"in {pending.name} (SQLite refused them)",
                         "they are written at the next start once SQLite takes writes; check disk space and "
                         f"that {path} is writable by the service user")
        if aside:
            return Check("database", WARN, f"{path} passes PRAGMA integrity_check; damaged logs were moved aside: "
                         f"{', '.join(aside[-3:])}",
                         "the reps in them may be recoverable with sqlite3's .recover; delete them once dealt with")
        return Check("database", OK, f"{path} ({size_kb} kB) passes PRAGMA integrity_check")

    # --- models -----------------------------------------------------------------------------

    def models(self) -> Check:
        from device.pose.model_files import resolve_models

        try:
            resolved = resolve_models(self.settings.models_dir, self.settings.models.landmark_variant)
        except StationError as err:
            return Check("models", FAIL, str(err),
                         "run `station models fetch` (as the service user on a Pi); for an int8 variant run "
                         "`station models quantize` or set models.landmark_variant = \"float16\"")
        return Check("models", OK, f"{resolved.detector.name} and {resolved.landmark.name} "
                                   f"({resolved.landmark_variant}) in {self.settings.models_dir}, sha256 verified")

    # --- runtime ----------------------------------------------------------------------------

    def runtime(self) -> Check:
        from device.pose.tflite import interpreter_class

        try:
            name, _ = interpreter_class(self.settings.models.runtime)
        except StationError as err:
            return Check("runtime", FAIL, str(err),
                         "reinstall the station into its venv (deploy/install.sh, or pip install ai-edge-litert)")
        detail = f"{name} {_version(name)}"
        if self.probe:
            outcome = self._run_detector_once()
            if isinstance(outcome, Check):
                return outcome
            detail += "; no detector model to try it on" if outcome is None else f", ran the detector once ({outcome:.0f} ms)"
        return Check("runtime", OK, detail)

    def _run_detector_once(self) -> Optional[float | Check]:
        import numpy as np

        from device.pose.tflite import TFLiteModel
        from device.pose.model_files import load_manifest

        path = self.settings.models_dir / load_manifest().by_role("detector").file
        if not path.is_file():
            return None
        try:
            model = TFLiteModel(path, threads=self.settings.models.threads, runtime=self.settings.models.runtime)
            start = time.perf_counter()
            model.run(np.zeros(model.input_shape, np.float32))
        except StationError as err:
            return Check("runtime", FAIL, str(err), "run `station models fetch` to restore the model")
        return (time.perf_counter() - start) * 1000

    # --- camera -----------------------------------------------------------------------------

    def camera(self) -> Check:
        spec = self.settings.source.camera
        if spec == "picamera":
            return self._picamera(required=True)
        if spec == "auto":
            pi = self._picamera(required=False)
            return pi if pi.status == OK else self._webcam(0, auto=True, pi_note=pi.detail)
        if spec == "webcam" or spec.startswith("webcam:") or spec.isdigit():
            number = spec.split(":", 1)[1] if ":" in spec else spec if spec.isdigit() else "0"
            if not number.isdigit():
                return Check("camera", FAIL, f"source.camera is {spec!r}: the webcam number is not a number",
                             "use 'webcam:0' for the first webcam")
            return self._webcam(int(number), auto=False)
        clip = Path(spec)
        if clip.is_file() and os.access(clip, os.R_OK):
            return Check("camera", OK, f"source.camera is a clip: {clip} (replayed, no live camera)")
        return Check("camera", FAIL, f"source.camera is {spec!r}, which is not a readable file",
                     "set source.camera to 'auto', 'picamera', 'webcam:N', or the path of a readable video")

    def _picamera(self, required: bool) -> Check:
        from device.capture.picamera import picamera_available

        if importlib.util.find_spec("picamera2") is None:
            detail = "picamera2 is not importable"
            fix = ("on Raspberry Pi OS: sudo apt install python3-picamera2, and a venv made with "
                   "--system-site-packages (deploy/install.sh does both)")
            return Check("camera", FAIL, detail, fix) if required else Check("camera", WARN, detail, fix)
        if not picamera_available():
            return Check("camera", FAIL if required else WARN, "picamera2 sees no Pi camera",
                         "check the ribbon cable (contacts facing the right way) and `rpicam-hello --list-cameras`")
        if self.probe:
            from device.capture.picamera import PiCameraSource

            failed = self._read_one_frame(PiCameraSource(self.settings.source.width, self.settings.source.height))
            if failed:
                return failed
            return Check("camera", OK, "Pi camera found and delivered a frame")
        return Check("camera", OK, "Pi camera found")

    def _webcam(self, index: int, auto: bool, pi_note: str = "") -> Check:
        node = Path(f"/dev/video{index}")
        prefix = f"{pi_note}; " if pi_note else ""
        plug_in = ("connect the Pi camera (ribbon) or plug in a USB webcam; to run on a recording set "
                   "source.camera to a clip path")
        if not node.exists():
            return Check("camera", FAIL, f"{prefix}no webcam at {node}", plug_in if auto else f"plug in webcam {index}")
        name, usb = _v4l2_identity(index)
        if auto and not usb:
            return Check("camera", FAIL, f"{prefix}{node} is {name!r}, part of the board, not a USB webcam", plug_in)
        if not os.access(node, os.R_OK | os.W_OK):
            return Check("camera", FAIL, f"{node} ({name}) is not accessible to user {_user()}",
                         "add the user to the video group: sudo usermod -aG video $USER (then log in again)")
        if self.probe:
            from device.capture.webcam import WebcamSource

            s = self.settings.source
            failed = self._read_one_frame(WebcamSource(index, s.width, s.height, s.fps))
            if failed:
                return failed
            return Check("camera", OK, f"webcam {node} ({name}) delivered a frame")
        return Check("camera", OK, f"webcam {node} ({name}) present")

    @staticmethod
    def _read_one_frame(source) -> Optional[Check]:
        try:
            with source:
                frame = source.read()
        except StationError as err:
            return Check("camera", FAIL, str(err),
                         "if the station service is running it holds the camera: stop it first "
                         "(sudo systemctl stop hinge-station) or use `station doctor --quick`")
        if frame is None:
            return Check("camera", FAIL, f"{source.source_id} opened but gave no frame", "reconnect the camera")
        return None

    # --- GPIO -------------------------------------------------------------------------------

    def voice(self) -> Check:
        """Spoken cues: off is fine; on needs espeak-ng and an audio device, else the station
        coaches without them (said here and in the log)."""
        from device.station.voice import AlsaSpeaker, PhraseBank, VoiceError

        cfg = self.settings.voice
        if not cfg.enabled:
            return Check("voice", OK, "spoken cues are off (voice.enabled = false)")
        try:
            PhraseBank(self.settings.data_dir / "cache" / "voice", cfg.language, cfg.volume)
            speaker = AlsaSpeaker(cfg.device)
            speaker.close()
        except VoiceError as err:
            return Check("voice", WARN, str(err), "install espeak-ng and alsa-utils, plug in a speaker (see "
                         "deploy/README.md), or set voice.enabled = false")
        return Check("voice", OK, f"espeak-ng and an audio device ({cfg.device}) are there")

    def mqtt(self) -> Check:
        """The gym's broker: off is fine; on, how many reps and sessions wait in the outbox, and (with
        probe) whether the broker takes this station's credentials."""
        cfg = self.settings.mqtt
        if not cfg.enabled:
            return Check("mqtt", OK, "MQTT is off (no [mqtt] host)")
        who = f"station {cfg.station_id}" if cfg.station_id else f"the hub ({self.settings.hub.client_id})"
        where = f"{cfg.host}:{cfg.broker_port} as {who}"
        waiting = _outbox_waiting(self.settings.db_path)
        backlog = f"; {waiting} reps and sessions wait in the outbox" if waiting else ""
        if not self.broker:  # the page's health view: it never opens a connection on a client's request
            verb = "publishing to" if cfg.station_id else "reading from"
            return Check("mqtt", OK, f"{verb} {where}{backlog} (credentials not tried here: `station doctor` tries them)")
        from device.station.broker_link import probe_broker

        problem = probe_broker(cfg)
        if problem:
            return Check("mqtt", FAIL, f"{where}: {problem}{backlog}",
                         "check [mqtt] host, port, tls and credentials, and the broker's password file and ACL "
                         "(deploy/README.md, \"Many stations\"); coaching goes on and reps wait in the outbox")
        return Check("mqtt", OK, f"the broker at {where} accepted these credentials{backlog}")

    def gpio(self) -> Check:
        sig = self.settings.signals
        if not sig.enabled:
            return Check("gpio", OK, "signals are disabled in the config (no LED or buzzer)")
        if sig.pin_factory == "mock":
            return Check("gpio", OK, "signals.pin_factory = \"mock\": the LED and buzzer are simulated, nothing is wired")
        from gpiozero import Device

        if "LG_WD" not in os.environ and not os.access(os.getcwd(), os.W_OK):
            # lgpio makes notification pipes in $LG_WD, else the working directory (the service
            # sets LG_WD); `sudo -u hinge-station station doctor` usually starts somewhere unwritable.
            os.environ["LG_WD"] = tempfile.gettempdir()
        with warnings.catch_warnings(record=True) as tried:
            warnings.simplefilter("always")
            try:
                factory = Device._default_pin_factory()
            except Exception as err:
                reasons = "; ".join(str(w.message).replace("Falling back from ", "") for w in tried) or str(err)
                return Check("gpio", FAIL, f"no GPIO pin factory works here ({reasons})",
                             "on a Pi: sudo apt install python3-lgpio and add the user to the gpio group; "
                             "on a machine without GPIO set signals.pin_factory = \"mock\" or signals.enabled = false")
        try:
            board = getattr(getattr(factory, "board_info", None), "model", None) or "unknown board"
            kind = type(factory).__name__
        finally:
            factory.close()
        pins = f"LED {sig.led} on GPIO {sig.led_red_pin}" + (
            f"/{sig.led_green_pin}/{sig.led_blue_pin}" if sig.led == "rgb" else "")
        if sig.buzzer != "none":
            pins += f", {sig.buzzer} buzzer on GPIO {sig.buzzer_pin}"
        return Check("gpio", OK, f"{kind} on {board}; {pins}")


# --- helpers ----------------------------------------------------------------------------------


def integrity_check(path: Path) -> list[str]:
    """PRAGMA integrity_check on a read-only connection: safe while the station writes."""
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    conn = sqlite3.connect(uri, uri=True, timeout=5)
    try:
        return [row[0] for row in conn.execute("PRAGMA integrity_check")]
    finally:
        conn.close()


def _combine(name: str, head: str, problems: list[tuple[str, str, str]]) -> Check:
    order = {OK: 0, WARN: 1, FAIL: 2}
    status = max((p[0] for p in problems), key=order.__getitem__, default=OK)
    detail = "; ".join([head, *(p[1] for p in problems)])
    fix = "; ".join(p[2] for p in problems if p[2] and p[0] != OK)
    return Check(name, status, detail, fix)


def _nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _user() -> str:
    import pwd

    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def _version(runtime: str) -> str:
    dist = {"ai_edge_litert": "ai-edge-litert", "tflite_runtime": "tflite-runtime"}.get(runtime, runtime)
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "(version unknown)"


def _v4l2_identity(index: int) -> tuple[str, bool]:
    """The V4L2 device's name and whether it sits on USB (a webcam) rather than the board."""
    sysfs = Path(f"/sys/class/video4linux/video{index}")
    try:
        name = (sysfs / "name").read_text().strip()
    except OSError:
        name = "unknown device"
    try:
        usb = "/usb" in str((sysfs / "device").resolve())
    except OSError:
        usb = False
    return name, usb


def command(args: argparse.Namespace, settings: Settings) -> int:
    checks = run_checks(settings, args.config, probe=not args.quick, broker=True)
    rows = [c.row() for c in checks]
    print_table(rows, columns=["check", "status", "detail"])
    todo = [c for c in checks if c.fix and c.status != "ok"]
    if todo:
        print("\nfix:")
        for c in todo:
            print(f"  {c.name}: {c.fix}")
    failed = sum(c.status == FAIL for c in checks)
    warned = sum(c.status == WARN for c in checks)
    print(f"\n{failed} failed, {warned} warnings, {len(checks) - failed - warned} ok")
    if args.json:
        write_json(args.json, {"checks": rows, "ok": failed == 0, "failed": failed, "warnings": warned})
    return 1 if failed else 0


def _outbox_waiting(db_path: Path) -> int:
    """Rows in the MQTT outbox, read without writing (0 when there is no database or outbox yet)."""
    if not Path(db_path).is_file():
        return 0
    try:
        db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
        try:
            return int(db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
        finally:
            db.close()
    except sqlite3.Error:
        return 0
