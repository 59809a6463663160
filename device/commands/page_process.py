"""The trainer page in a process of its own, beside the live loop of `station run`.

A process boundary is what keeps any number of LAN clients, slow or fast, from reaching coaching:
the page's sockets, file descriptors, memory and CPU are its own (it also runs at a lower
priority), so a flood can exhaust the page but not the loop's camera, model, LED, buzzer or rep log.
Edge video recorders split detection from their web server the same way.

The two sides talk over one pipe, and the live loop never waits on it:
- loop -> page: the live snapshot whenever it changes, and preview frames while someone watches
  (sent by a publisher thread; if the page is slow, that thread waits, not the loop);
- page -> loop: the page's controls (drill, buzzer, athlete label; the page has validated them)
  and "someone is watching the preview".
If the page process dies, or hangs (its server's event loop sends a heartbeat over the pipe every
BEAT_S; none for HUNG_AFTER_S and it is ended), it is started again (with a growing pause); coaching
goes on meanwhile. Stopping a page that will not end on SIGTERM kills it after END_WAIT_S, so a hung
page never holds up the station's own stop.
"""
from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import threading
import time
from multiprocessing.connection import Connection
from typing import Any, Optional

from device.errors import StationError
from device.station.live import LiveState, StationControls

log = logging.getLogger(__name__)

START_TIMEOUT_S = 30.0
PUBLISH_POLL_S = 0.2  # how often the publisher looks for a change it was not woken for (previews)
RESTART_MAX_S = 30.0
BEAT_S = 1.0  # the page's server loop says it is alive this often
HUNG_AFTER_S = 15.0  # no heartbeat for this long: the page is hung, and is ended and started again
END_WAIT_S = 2.0  # after SIGTERM, how long a page process has to end before it is killed
PAGE_NICENESS = 10  # below the live loop: under load the scheduler serves the loop first
PAGE_MAX_OPEN_FILES = 8192  # sockets the page may hold (the unit's LimitNOFILE allows this)


class PageProcess:
    """Serve the trainer page from a child process over `live` and `controls`; `start()` returns
    the page's URL once it listens, `stop()` ends it. A context manager."""

    def __init__(self, settings_dump: dict[str, Any], live: LiveState, controls: StationControls,
                 max_open_files: int = PAGE_MAX_OPEN_FILES):
        self.settings_dump = settings_dump
        self.live = live
        self.controls = controls
        self.max_open_files = max_open_files
        self.port: Optional[int] = None
        self.restarts = 0
        self._stop = threading.Event()
        self._process: Optional[multiprocessing.process.BaseProcess] = None
        self._conn: Optional[Connection] = None
        self._send_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._last_beat = time.monotonic()

    # --- lifetime ---------------------------------------------------------------------------

    def start(self, timeout: float = START_TIMEOUT_S) -> str:
        self._spawn(timeout)
        for target, name in ((self._publish, "page-publisher"), (self._watch, "page-watchdog")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self.url

    @property
    def url(self) -> str:
        host = self.settings_dump["web"]["host"]
        shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        return f"http://{shown}:{self.port}/"

    def _spawn(self, timeout: float) -> None:
        ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no threads or locks inherited
        parent, child = ctx.Pipe(duplex=True)
        port = self.port if self.port is not None else self.settings_dump["web"]["port"]
        process = ctx.Process(target=page_main, args=(self.settings_dump, child, port, self.max_open_files),
                              name="trainer-page", daemon=True)
        process.start()
        child.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if parent.poll(0.1):
                try:
                    message = parent.recv()
                except EOFError:
                    break
                if message[0] == "listening":
                    self.port = int(message[1])
                    self._process, self._conn = process, parent
                    self._last_beat = time.monotonic()
                    self._send(("snapshot", self.live.snapshot()[1]))
                    threading.Thread(target=self._listen, args=(parent,), name="page-listener", daemon=True).start()
                    return
                if message[0] == "failed":
                    process.join(5)
                    raise StationError(f"the trainer page did not start: {message[1]}")
            if not process.is_alive():
                break
        process.terminate()
        raise StationError("the trainer page did not start in time (see the log)")

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        process, conn = self._process, self._conn
        if conn is not None:
            try:
                self._send(("stop",))
            except (OSError, ValueError):
                pass
        if process is not None:
            process.join(timeout)
            _end(process)
        if conn is not None:
            conn.close()

    def __enter__(self) -> "PageProcess":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- the live loop's side -----------------------------------------------------------------

    def _send(self, message: tuple) -> None:
        conn = self._conn
        if conn is None:
            raise OSError("the page process is not running")
        with self._send_lock:
            conn.send(message)

    def _publish(self) -> None:
        """Pass every new snapshot, and previews while wanted, to the page. Runs beside the loop;
        only this thread ever waits for the page."""
        seen, seen_preview = -1, -1
        while not self._stop.is_set():
            version, snap = self.live.wait_for_change(seen, PUBLISH_POLL_S)
            try:
                if version != seen:
                    self._send(("snapshot", snap))
                    seen = version
                preview_version, jpeg = self.live.latest_preview()
                if jpeg is not None and preview_version != seen_preview and self.live.preview_wanted():
                    self._send(("preview", jpeg))
                    seen_preview = preview_version
            except (OSError, ValueError, EOFError):
                self._stop.wait(PUBLISH_POLL_S)  # the page is gone; the watchdog starts it again

    def _listen(self, conn: Connection) -> None:
        """Carry out what the page asks of the station."""
        while not self._stop.is_set():
            try:
                message = conn.recv()
            except (EOFError, OSError):
                return
            kind = message[0]
            try:
                if kind == "control" and message[1] in ("set_profile", "set_buzzer_enabled", "set_athlete",
                                                        "set_voice_enabled", "set_cues"):
                    getattr(self.controls, message[1])(*message[2])
                elif kind == "preview_wanted":
                    self.live.want_preview()
                elif kind == "alive":
                    self._last_beat = time.monotonic()
            except Exception as err:  # a bad request from the page must not stop this thread
                log.warning("the page asked for %s and it failed: %s", message[:2], err)

    def _watch(self) -> None:
        """Start the page again if it dies or hangs; coaching never waits for it."""
        pause = 1.0
        while not self._stop.wait(1.0):
            process = self._process
            if process is None:
                continue
            if process.is_alive():
                silent = time.monotonic() - self._last_beat
                if silent < HUNG_AFTER_S:
                    continue
                log.error("the trainer page has not answered for %.0f s (hung); ending it", silent)
                _end(process)
            log.error("the trainer page process ended (exit code %s); starting it again in %.0f s",
                      process.exitcode, pause)
            if self._stop.wait(pause):
                return
            old, self._conn = self._conn, None
            if old is not None:
                old.close()
            try:
                self._spawn(START_TIMEOUT_S)
                self.restarts += 1
                pause = 1.0
            except StationError as err:
                log.error("%s", err)
                pause = min(pause * 2, RESTART_MAX_S)


def _end(process: multiprocessing.process.BaseProcess) -> None:
    """End a page process that is still there: SIGTERM, then SIGKILL if it does not go (a stopped or
    hung process does not act on SIGTERM)."""
    if not process.is_alive():
        return
    process.terminate()
    process.join(END_WAIT_S)
    if process.is_alive():
        log.warning("the trainer page did not end on SIGTERM within %.0f s; killing it", END_WAIT_S)
        process.kill()
        process.join(END_WAIT_S)


# --- the page's side ------------------------------------------------------------------------------


class _MirroredLive(LiveState):
    """The page's copy of the live state; asking for the preview tells the loop someone watches."""

    def __init__(self, conn: Connection, lock: threading.Lock):
        super().__init__()
        self._conn, self._lock = conn, lock
        self._told = 0.0

    def preview(self):
        now = time.monotonic()
        if now - self._told > 1.0:
            self._told = now
            _send_quietly(self._conn, self._lock, ("preview_wanted",))
        return super().preview()


class _ControlsProxy:
    """The page's controls, passed to the live loop (it applies them between frames)."""

    def __init__(self, conn: Connection, lock: threading.Lock):
        self._conn, self._lock = conn, lock

    def set_profile(self, name: str) -> None:
        _send_quietly(self._conn, self._lock, ("control", "set_profile", (name,)))

    def set_buzzer_enabled(self, enabled: bool) -> None:
        _send_quietly(self._conn, self._lock, ("control", "set_buzzer_enabled", (enabled,)))

    def set_athlete(self, label: Optional[str]) -> None:
        _send_quietly(self._conn, self._lock, ("control", "set_athlete", (label,)))

    def set_voice_enabled(self, enabled: bool) -> None:
        _send_quietly(self._conn, self._lock, ("control", "set_voice_enabled", (enabled,)))

    def set_cues(self, drill: str, cues: dict[str, str]) -> None:
        _send_quietly(self._conn, self._lock, ("control", "set_cues", (drill, dict(cues))))


def _send_quietly(conn: Connection, lock: threading.Lock, message: tuple) -> None:
    try:
        with lock:
            conn.send(message)
    except (OSError, ValueError) as err:
        log.warning("could not reach the live loop: %s", err)


class RepeatFilter(logging.Filter):
    """At most one record per message text every `every_s` seconds: a flood of refused sockets
    logs its cause once in a while, not megabytes of identical tracebacks."""

    def __init__(self, every_s: float = 30.0):
        super().__init__()
        self.every_s = every_s
        self._last: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = f"{record.name}:{record.getMessage()[:200]}"
        now = time.monotonic()
        if now - self._last.get(key, -1e9) < self.every_s:
            return False
        self._last[key] = now
        if len(self._last) > 1000:
            self._last.clear()
        return True


def _allow_open_files(wanted: int) -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target != soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


async def _heartbeat(conn: Connection, lock: threading.Lock) -> None:
    while True:
        _send_quietly(conn, lock, ("alive",))
        await asyncio.sleep(BEAT_S)


def page_main(settings_dump: dict[str, Any], conn: Connection, port: int, max_open_files: int) -> None:
    """The page process: serve the page until the loop says stop or goes away."""
    from device.analysis.profiles import list_profiles, profile_titles
    from device.commands.doctor import run_checks
    from device.config import load_settings
    from device.station.store import RepStore
    from device.analysis.ladder import load_ladder
    from web.app import create_app
    from web.page_server import PageServer

    logging.basicConfig(level=logging.INFO, format="%(asctime)s page %(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(RepeatFilter())
    try:
        os.nice(PAGE_NICENESS)
        _allow_open_files(max_open_files)
    except OSError as err:
        log.warning("page process: %s", err)
    lock = threading.Lock()
    try:
        settings = load_settings(None, settings_dump)
        live = _MirroredLive(conn, lock)
        ladder = load_ladder(profiles_dir=settings.analysis.profiles_dir)
        app = create_app(RepStore(settings.db_path), settings.web, live=live,
                         controls=_ControlsProxy(conn, lock),
                         profiles=list_profiles(settings.analysis.profiles_dir),
                         checks=lambda: [c.row() for c in run_checks(settings)], ladder=ladder,
                         drill_titles=profile_titles(settings.analysis.profiles_dir),
                         profiles_dir=settings.analysis.profiles_dir)
        server = PageServer(app, host=settings.web.host, port=port)
        server.start()
    except Exception as err:  # tell the loop why, in one line
        _send_quietly(conn, lock, ("failed", f"{type(err).__name__}: {err}"))
        return
    _send_quietly(conn, lock, ("listening", server.port))
    if server.loop is not None:  # a heartbeat from the server's own loop: a hung loop stops it
        asyncio.run_coroutine_threadsafe(_heartbeat(conn, lock), server.loop)
    try:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                break  # the loop is gone
            if message[0] == "snapshot":
                live.mirror(message[1])
            elif message[0] == "preview":
                live.set_preview(message[1])
            elif message[0] == "stop":
                break
    finally:
        server.stop()
