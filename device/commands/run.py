"""`station run` (LED, buzzer, rep log and the trainer page) and `station log` (headless: rep log
and JSON lines only): the live station, assembled from settings.

SIGTERM and SIGINT finish the frame in hand, close the session and exit 0.
"""
from __future__ import annotations

import argparse
import logging
import os
import secrets
import sys
import threading
from contextlib import ExitStack
from pathlib import Path
from typing import Optional

from pydantic import SecretStr

from device.station.addresses import page_lines
from device.commands.doctor import MIN_TOKEN_LENGTH
from device.commands.tables import print_table
from device.config import Settings
from device.errors import StationError
from device.station.assembly import StationRig, build_station, retention, stopped_by_signals
from device.station.loop import RunSummary
from device.stats import median

logger = logging.getLogger(__name__)
PAGE_RETRY_FIRST_S = 2.0  # a page that could not start is tried again after this...
PAGE_RETRY_MAX_S = 60.0  # ...then twice as long each time, up to this


class PageKeeper:
    """The trainer page beside the station, which coaching never waits for: `start` (once the rep
    log is open) brings it up in the background, and when it cannot come up (its port taken, say) it
    is tried again after PAGE_RETRY_FIRST_S, then twice as long each time up to PAGE_RETRY_MAX_S,
    while the station coaches. Once up, a page process that dies or hangs is PageProcess's to restart."""

    def __init__(self, settings: Settings, rig: StationRig, note: str = ""):
        from device.commands.page_process import PageProcess

        self.port = settings.web.port
        self.settings = settings
        self.page = PageProcess(settings.model_dump(), rig.live, rig.station)
        self.note = note
        self.url: Optional[str] = None
        self.tries = 0
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="page-keeper", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        delay = PAGE_RETRY_FIRST_S
        while not self._stop.is_set():
            self.tries += 1
            try:
                self.url = self.page.start()
            except StationError as err:
                logger.error("trainer page: %s; is port %s free? Coaching goes on; trying again in %.0f s "
                          "(choose another port with --port or web.port)", err, self.port, delay)
                if self._stop.wait(delay):
                    return
                delay = min(delay * 2, PAGE_RETRY_MAX_S)
                continue
            web = self.settings.web
            print("\n".join(page_lines(web.host, self.page.port or web.port, self.url, sys.stdout.isatty())), flush=True)
            if self.note:
                print(self.note, flush=True)
            return

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(PAGE_RETRY_MAX_S)
        self.page.stop()


def run_live(
    settings: Settings,
    source: Optional[str] = None,
    *,
    profile: Optional[str] = None,
    headless: bool = False,
    fast: bool = False,
    serve_page: bool = True,
    jsonl: Optional[Path] = None,
    keep_page_after_clip: bool = False,
    token_note: str = "",
    engine=None,
) -> RunSummary:
    """Build the station, keep the rep log's retention, serve the page (unless headless or not
    wanted: once the rep log is open, retried while its port is taken), run until the source ends or
    a signal comes, and close everything. `engine`: a pose backend in place of the model (tests)."""
    with ExitStack() as running:
        rig = running.enter_context(build_station(settings, source, profile=profile, headless=headless, fast=fast,
                                                  jsonl=jsonl, engine=engine))
        running.enter_context(retention(settings))
        page = None
        if not headless and serve_page:
            page = PageKeeper(settings, rig, token_note)
            running.callback(page.stop)
            if rig.replog.store is None:
                print("trainer page: starts once the rep log opens (see the log); coaching goes on", flush=True)
            rig.when_rep_log_opens(page.start)
        shutdown = running.enter_context(stopped_by_signals(rig.station))
        summary = rig.run()
        if page is not None and keep_page_after_clip and not rig.source_live and not shutdown.is_set():
            # (the page may still be starting: it comes up in the background, and stays until Ctrl-C)
            print(f"clip finished; the trainer page stays up{' at ' + page.url if page.url else ''} (Ctrl-C to stop)",
                  flush=True)
            shutdown.wait()
    summary.unwritten = rig.replog.unwritten  # known once the rep log is closed
    return summary


def exit_status(summary: RunSummary) -> int:
    """Non-zero when a completed rep or event could be written nowhere (so systemd and the
    operator see it); everything kept in the pending file is written at the next start."""
    if summary.unwritten:
        print(f"error: {summary.unwritten} rep-log items could not be written (disk full or the rep log's "
              "folder not writable); see the log", flush=True)
        return 1
    return 0


def print_run_summary(summary: RunSummary) -> None:
    print_table([{
        "frames": summary.frames, "dropped": summary.dropped, "fps": round(summary.fps, 1), "sessions": summary.sessions,
        "reps": summary.reps, "faults": summary.faults,
        "frame_to_signal_ms_median": median(summary.signal_latency_ms, 1),
    }])


DEMO_TOKEN_FILE = "web-token"


def demo_token(settings: Settings) -> tuple[Settings, str]:
    """The demo's write token: web.token when the config sets one (an installed station keeps the
    install script's), else the one kept in <data_dir>/web-token, made on first use (0600, fsynced).
    Returns the settings to run with and what to tell the person at the terminal: the token itself
    only the time it is made."""
    if settings.web.token is not None:
        return settings, "write token: the one in the station's config (web.token)"
    path = settings.data_dir / DEMO_TOKEN_FILE
    made = False
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            token = path.read_text().strip()
        else:
            token = secrets.token_urlsafe(18)
            with os.fdopen(fd, "w") as fh:
                fh.write(token + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            made = True
    except OSError as err:
        raise StationError(f"cannot keep the demo's write token in {path}: {err.strerror}; "
                           "set web.token in a config file instead") from None
    if len(token) < MIN_TOKEN_LENGTH:
        raise StationError(f"{path} does not hold a write token (at least {MIN_TOKEN_LENGTH} characters); "
                           "delete it and a new one is made")
    web = settings.web.model_copy(update={"token": SecretStr(token)})
    note = (f"write token (shown this once; kept in {path}): {token}\n"
            "  sign in on the page's Settings with it to switch drills, add athletes, label and correct reps"
            if made else f"write token: kept in {path} (sign in on the page's Settings with it)")
    return settings.model_copy(update={"web": web}), note


def run(args: argparse.Namespace, settings: Settings) -> int:
    token_note = ""
    if args.demo_token and not args.no_page:
        settings, token_note = demo_token(settings)
    summary = run_live(settings, args.source, profile=args.profile, fast=args.fast, serve_page=not args.no_page,
                       keep_page_after_clip=not args.exit_at_end, token_note=token_note)
    print_run_summary(summary)
    return exit_status(summary)


def log(args: argparse.Namespace, settings: Settings) -> int:
    jsonl = args.jsonl or settings.store.jsonl_path
    summary = run_live(settings, args.source, profile=args.profile, headless=True, fast=args.fast, jsonl=jsonl)
    print_run_summary(summary)
    print(f"rep log: {settings.store.db_path}\nJSON lines: {jsonl}")
    return exit_status(summary)
