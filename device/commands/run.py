"""`station run` (LED, buzzer, rep log and the trainer page) and `station log` (headless: rep log
and JSON lines only): the live station, assembled from settings.

SIGTERM and SIGINT finish the frame in hand, close the session and exit 0.
"""
from __future__ import annotations

import argparse
import os
import secrets
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Iterator, Optional

from pydantic import SecretStr

from device.commands.doctor import MIN_TOKEN_LENGTH
from device.commands.tables import print_table
from device.config import Settings
from device.errors import StationError
from device.station.assembly import StationRig, build_station, retention, stopped_by_signals
from device.station.loop import RunSummary
from device.stats import median


@contextmanager
def trainer_page(settings: Settings, rig: StationRig) -> Iterator[str]:
    """Serve the trainer page from its own process (device/commands/page_process.py), over the rep
    log, with the running station's live state and controls; yields the page's URL."""
    from device.commands.page_process import PageProcess

    page = PageProcess(settings.model_dump(), rig.live, rig.station)
    try:
        url = page.start()
    except StationError as err:
        raise StationError(f"{err}; is port {settings.web.port} free? Choose another with --port or web.port, "
                           "or run with --no-page") from None
    try:
        yield url
    finally:
        page.stop()


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
) -> RunSummary:
    """Build the station, keep the rep log's retention, serve the page (unless headless or not
    wanted), run until the source ends or a signal comes, and close everything."""
    with ExitStack() as running:
        rig = running.enter_context(build_station(settings, source, profile=profile, headless=headless, fast=fast,
                                                  jsonl=jsonl))
        running.enter_context(retention(settings))
        url = None
        if not headless and serve_page and rig.replog.store is None:
            print("trainer page: not served, the rep log cannot be opened (see the log)", flush=True)
        elif not headless and serve_page:
            url = running.enter_context(trainer_page(settings, rig))
            print(f"trainer page: {url}", flush=True)
            if token_note:
                print(token_note, flush=True)
        shutdown = running.enter_context(stopped_by_signals(rig.station))
        summary = rig.run()
        if url is not None and keep_page_after_clip and not rig.source_live and not shutdown.is_set():
            print(f"clip finished; the trainer page stays up at {url} (Ctrl-C to stop)", flush=True)
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
