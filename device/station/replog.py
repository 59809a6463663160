"""Writes what the live loop produces — sessions, reps, device events — to the SQLite rep log and,
in headless mode, to a JSON-lines file.

When the disk is full (or below the configured free-space floor) writes are queued in memory, in
order, and retried; the station keeps coaching meanwhile. Nothing already written is touched.
"""
from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from device.analysis.vocabulary import Rep
from device.fileio import json_line
from device.station.store import BadRecordError, RepStore, StorageError

log = logging.getLogger(__name__)

RETRY_INTERVAL_S = 5.0
MAX_QUEUED = 10_000  # about a day of reps; beyond that the oldest queued rep is dropped and logged


@dataclass
class SessionHandle:
    """A session as the live loop knows it; `db_id` is set once it reached the database."""

    started_at: float
    profile: str
    source: str
    athlete: Optional[str] = None
    db_id: Optional[int] = None
    reps: int = 0


class RepLog:
    def __init__(
        self,
        store: Optional[RepStore],
        jsonl_path: Optional[Path] = None,
        min_free_mb: int = 50,
        retry_interval_s: float = RETRY_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.store = store
        self.jsonl_path = Path(jsonl_path) if jsonl_path else None
        self.min_free_bytes = min_free_mb * 1024 * 1024
        self._clock = clock
        self.retry_interval_s = retry_interval_s
        self._queue: list[tuple[Callable[[], None], str]] = []
        self._next_try = 0.0
        self.paused = False
        self.pause_reason = ""
        self.dropped = 0
        self.rejected = 0
        if self.jsonl_path:
            self.jsonl_path.parent.mkdir(parents=True, exist_ok=True)

    # --- the queue ----------------------------------------------------------------------------

    def _space_ok(self) -> bool:
        target = self.store.path.parent if self.store else self.jsonl_path.parent if self.jsonl_path else None
        if target is None:
            return True
        return shutil.disk_usage(target).free >= self.min_free_bytes

    def _submit(self, op: Callable[[], None], what: str) -> None:
        self._queue.append((op, what))
        if len(self._queue) > MAX_QUEUED:
            _, lost = self._queue.pop(0)
            self.dropped += 1
            log.error("rep log queue full while logging is paused; dropped %s", lost)
        self.flush()

    def flush(self, force: bool = False) -> bool:
        """Write queued items in order; returns True when nothing is left queued."""
        if not self._queue:
            return True
        if self.paused and not force and self._clock() < self._next_try:
            return False
        while self._queue:
            op, what = self._queue[0]
            try:
                if not self._space_ok():
                    raise StorageError(f"less than {self.min_free_bytes // (1024 * 1024)} MB free")
                op()
            except BadRecordError as err:
                log.error("could not store %s, skipping it: %s", what, err)
                self.rejected += 1
                self._queue.pop(0)
                continue
            except (StorageError, OSError) as err:
                if not self.paused:
                    log.warning("logging paused (%s); alerts continue, %s will be written when space returns", err, what)
                self.paused, self.pause_reason = True, str(err)
                self._next_try = self._clock() + self.retry_interval_s
                return False
            self._queue.pop(0)
        if self.paused:
            log.info("logging resumed; queued items written")
        self.paused, self.pause_reason = False, ""
        return True

    @property
    def queued(self) -> int:
        return len(self._queue)

    # --- what the station logs ------------------------------------------------------------------

    def start_session(self, started_at: float, profile: str, source: str, athlete: Optional[str] = None) -> SessionHandle:
        session = SessionHandle(started_at, profile, source, athlete)

        def op() -> None:
            if self.store and session.db_id is None:
                session.db_id = self.store.start_session(started_at, profile, source, athlete)

        self._submit(op, "a session start")
        return session

    def end_session(self, session: SessionHandle, ended_at: float) -> None:
        def op() -> None:
            if self.store and session.db_id is not None:
                self.store.end_session(session.db_id, ended_at)

        self._submit(op, "a session end")

    def add_rep(self, session: SessionHandle, rep: Rep, wall_offset: float, timings: dict[str, Any], on_written: Optional[Callable[[Optional[int]], None]] = None) -> None:
        session.reps += 1
        state = {"db_done": False}

        def op() -> None:
            rep_id = None
            if self.store and not state["db_done"]:
                rep_id = self.store.add_rep(session.db_id, rep, wall_offset, timings)  # type: ignore[arg-type]
                state["db_done"] = True
            if self.jsonl_path:
                self._append_jsonl(session, rep, wall_offset, timings, rep_id)
            if on_written:
                on_written(rep_id)

        self._submit(op, f"rep {rep.index}")

    def device_event(self, kind: str, detail: str = "", at: Optional[float] = None) -> None:
        stamp = at if at is not None else time.time()

        def op() -> None:
            if self.store:
                self.store.add_device_event(kind, detail, stamp)

        self._submit(op, f"device event {kind}")

    def set_athlete(self, session: SessionHandle, athlete: Optional[str]) -> None:
        session.athlete = athlete

        def op() -> None:
            if self.store and session.db_id is not None:
                self.store.set_athlete(session.db_id, athlete)

        self._submit(op, "an athlete label")

    def setting(self, key: str, value: Any) -> None:
        """Remember a choice made on the page (drill, buzzer) across restarts."""

        def op() -> None:
            if self.store:
                self.store.set_setting(key, value)

        self._submit(op, f"setting {key}")

    def _append_jsonl(self, session: SessionHandle, rep: Rep, wall_offset: float, timings: dict[str, Any], rep_id: Optional[int]) -> None:
        record = rep.to_dict()
        for key in ("start_time", "bottom_time", "end_time"):
            record[key.replace("_time", "_at")] = record.pop(key) + wall_offset
        for fault in record["faults"]:
            fault["at"] = fault.pop("time") + wall_offset
        record["trace"] = [[round(t - rep.start_time, 3), h, k] for t, h, k in rep.trace]
        line = json_line({"session_id": session.db_id, "session_started_at": session.started_at,
                          "profile": session.profile, "source": session.source, "rep_id": rep_id,
                          **record, "timings": timings})
        assert self.jsonl_path is not None
        with self.jsonl_path.open("a") as fh:
            fh.write(line + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def close(self) -> None:
        self.flush(force=True)
        if self._queue:
            log.error("%d rep-log items could not be written before exit: %s", len(self._queue), self.pause_reason)
        if self.store:
            self.store.close()

