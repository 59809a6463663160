"""Builds the station's collaborators from settings and runs it: `station run` (LED, buzzer and
trainer page) and `station log` (headless: rep log and JSON lines only).

SIGTERM and SIGINT finish the frame in hand, close the session and exit 0.
"""
from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from device.config import Settings
from device.errors import StationError
from device.station.live import LiveState
from device.pose.engine import PoseEngine
from device.station.replog import RepLog
from device.capture import open_source
from device.station.loop import RunSummary, Station
from device.station.store import RepStore

log = logging.getLogger(__name__)

RETENTION_CHECK_S = 24 * 3600


def analyzer_factory(settings: Settings) -> Callable[[str], object]:
    """name -> a fresh analyzer for that drill profile (raises ConfigError for a bad profile)."""
    from device.analysis.profiles import load_profile
    from device.analysis.analyzer import HingeAnalyzer

    def make(name: str):
        return HingeAnalyzer(load_profile(name, settings.analysis.profiles_dir))

    return make


@dataclass
class LiveRun:
    station: Station
    live: LiveState
    url: Optional[str] = None


class RetentionKeeper(threading.Thread):
    """Deletes sessions older than store.retention_days, at start and once a day, on its own connection."""

    def __init__(self, db_path: Path, retention_days: int, stop: threading.Event):
        super().__init__(name="retention", daemon=True)
        self.db_path, self.retention_days, self.stop = db_path, retention_days, stop

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                with RepStore(self.db_path) as store:
                    gone = store.prune(time.time() - self.retention_days * 86400)
                if gone:
                    log.info("retention: removed %d sessions older than %d days", gone, self.retention_days)
            except Exception as err:  # never take the station down for housekeeping
                log.warning("retention check failed: %s", err)
            self.stop.wait(RETENTION_CHECK_S)


def run_live(
    settings: Settings,
    source: Optional[str] = None,
    *,
    profile: Optional[str] = None,
    headless: bool = False,
    fast: bool = False,
    serve_page: bool = True,
    jsonl: Optional[Path] = None,
    pin_factory=None,
    on_started: Optional[Callable[[LiveRun], None]] = None,
    install_signal_handlers: bool = True,
    keep_page_after_clip: bool = False,
) -> RunSummary:
    spec = source or settings.source.camera
    engine = PoseEngine.from_settings(settings)  # refuses to start on a missing/corrupt model
    make_analyzer = analyzer_factory(settings)
    store = RepStore(settings.store.db_path)  # type: ignore[arg-type]
    saved = store.settings()
    chosen = profile or saved.get("profile") or settings.analysis.profile
    try:
        make_analyzer(chosen)
    except Exception as err:
        if profile or chosen == settings.analysis.profile:
            raise
        log.warning("saved drill profile %r is unusable (%s); using %s", chosen, err, settings.analysis.profile)
        chosen = settings.analysis.profile
        make_analyzer(chosen)
    profile = chosen
    buzzer_enabled = bool(saved.get("buzzer_enabled", settings.signals.buzzer_enabled))

    replog = RepLog(store, jsonl, settings.store.min_free_mb)
    signals = None
    if not headless and settings.signals.enabled:
        from device.station.signals import signals_from_settings

        signals, _ = signals_from_settings(settings.signals, pin_factory)
        signals.set_buzzer_enabled(buzzer_enabled)
    live = LiveState()
    live.update(profile=profile, buzzer_enabled=buzzer_enabled)
    notifier = _notifier()
    probe = open_source(spec, settings.source.width, settings.source.height, settings.source.fps, pace=not fast)
    station = Station(
        engine=engine, make_analyzer=make_analyzer, profile=profile, replog=replog, signals=signals, live=live,
        notifier=notifier, idle_timeout_s=settings.session.idle_timeout_s, preview_fps=settings.web.preview_fps,
        camera_preview=settings.web.camera_preview,
        source_id=probe.source_id,
    )
    stop_housekeeping = threading.Event()
    RetentionKeeper(settings.store.db_path, settings.store.retention_days, stop_housekeeping).start()  # type: ignore[arg-type]

    server = None
    run = LiveRun(station, live)
    if not headless and serve_page:
        server, run.url = _start_page(settings, live, station)
        print(f"trainer page: {run.url}", flush=True)

    shutdown = threading.Event()

    def on_signal(*_) -> None:
        shutdown.set()
        station.stop()

    previous = {}
    if install_signal_handlers and threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, on_signal)
    if on_started:
        on_started(run)
    try:
        summary = station.run(
            lambda: open_source(spec, settings.source.width, settings.source.height, settings.source.fps, pace=not fast),
            lossless=fast and not probe.live,
            retry_initial_s=settings.source.retry_initial_s,
            retry_max_s=settings.source.retry_max_s,
        )
        if server is not None and not probe.live and not shutdown.is_set() and keep_page_after_clip:
            print(f"clip finished; the trainer page stays up at {run.url} (Ctrl-C to stop)", flush=True)
            shutdown.wait()
        return summary
    finally:
        stop_housekeeping.set()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if server is not None:
            server.stop()
        replog.close()
        if signals is not None:
            signals.close()


def _notifier():
    try:
        from device.station.notify import SystemdNotifier
    except ImportError:
        return None
    return SystemdNotifier()


def _start_page(settings: Settings, live: LiveState, station: Station):
    """Serve the trainer page from this process on a small uvicorn thread; returns (server, url)."""
    from device.commands.doctor import run_checks
    from device.analysis.profiles import list_profiles
    from web.app import create_app
    from web.page_server import PageServer

    app = create_app(
        RepStore(settings.store.db_path),  # type: ignore[arg-type]
        settings.web,
        live=live,
        controls=station,
        profiles=list_profiles(settings.analysis.profiles_dir),
        checks=lambda: [c.row() for c in run_checks(settings)],
    )
    server = PageServer(app, host=settings.web.host, port=settings.web.port)
    try:
        server.start()
    except RuntimeError as err:
        raise StationError(f"{err}; choose another with --port or web.port, or run with --no-page") from None
    host = "127.0.0.1" if settings.web.host in ("0.0.0.0", "::") else settings.web.host
    return server, f"http://{host}:{server.port}/"
