"""`station serve`: the trainer page alone over an existing rep log (no camera, no live loop),
read-only unless asked otherwise."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Optional

import uvicorn

from device.config import Settings
from device.errors import ConfigError
from device.station.addresses import local_url, page_lines
from device.station.store import RepStore
from device.analysis.ladder import load_ladder
from web.app import create_app

log = logging.getLogger("station.web")


def serve_rep_log(settings: Settings, db: Optional[Path] = None, host: Optional[str] = None, port: Optional[int] = None,
                  writable: bool = False) -> int:
    path = Path(db or settings.db_path)
    host = host or settings.web.host
    port = settings.web.port if port is None else port
    if not 1 <= port <= 65535:
        raise ConfigError(f"--port must be 1..65535, not {port}")
    store = RepStore(path, readonly=not writable)
    try:
        app = create_app(store, settings.web, profiles=store.profiles_used(),
                         ladder=load_ladder(profiles_dir=settings.analysis.profiles_dir))
        if settings.web.token is None:
            log.warning("no web.token set: the page is read-only for everyone; set web.token to allow corrections")
        print("\n".join(serve_lines(host, port, path, writable, sys.stdout.isatty())), flush=True)
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False, timeout_graceful_shutdown=2)
    finally:
        store.close()
    return 0


def serve_lines(host: str, port: int, path: Path, writable: bool, tty: bool) -> list[str]:
    """What `station serve` prints: where the page opens, as `station run` says it (on this machine,
    and where a phone on the gym's network opens it, never 0.0.0.0), and over which rep log."""
    return [*page_lines(host, port, local_url(host, port), tty),
            f"  over {path} ({'writable' if writable else 'read-only'}); Ctrl-C stops"]


def command(args: argparse.Namespace, settings: Settings) -> int:
    return serve_rep_log(settings, db=args.db, host=args.host, port=args.port, writable=args.writable)
