"""Writes what the live loop produces — sessions, reps, device events — to the SQLite rep log and,
in headless mode, to a JSON-lines file.

Nothing completed lives only in RAM: what SQLite will not take right now (a damaged, locked or
read-only database, one that could not be opened at all yet, the disk under its free-space floor)
is appended and fsynced to the pending file beside it before the rep is reported, replayed into
SQLite in order as soon as SQLite takes writes again (this run or the next start), and the file is
emptied once all of it is in. Only when the disk refuses even that is an item held in memory, and
then the station says so and exits non-zero if it still could not be written at the end. The
station keeps coaching throughout: the live loop calls `flush`, which writes for at most
FLUSH_BUDGET_S at a time (BATCH items per transaction), so a pending file of thousands of reps is
replayed beside coaching, never before it starts.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from device.analysis.vocabulary import Rep
from device.fileio import json_line
from device.station.pending import PendingFile
from device.contract.records import BadRecordError, StorageError
from device.station.store import RepStore

log = logging.getLogger(__name__)

RETRY_INTERVAL_S = 5.0
FLUSH_BUDGET_S = 0.05  # the live loop's time one flush may take; the rest waits for the next one
BATCH = 50  # items written in one transaction while catching up
MAX_IN_RAM = 10_000  # items the disk refused even in the pending file; beyond that the oldest is dropped and logged


@dataclass
class SessionHandle:
    """A session as the live loop knows it; `db_id` is set once it reached the database."""

    started_at: float
    profile: str
    source: str
    athlete: Optional[str] = None
    db_id: Optional[int] = None
    reps: int = 0

    def identity(self) -> dict[str, Any]:
        return {"started_at": self.started_at, "profile": self.profile, "source": self.source, "athlete": self.athlete}


@dataclass
class Item:
    """One thing to log, as plain data (so it can wait in the pending file): `kind` and its fields."""

    kind: str  # session_start, session_end, rep, athlete, device_event, setting
    data: dict[str, Any]
    on_written: Optional[Callable[[Optional[int]], None]] = field(default=None, repr=False)
    kept: bool = False  # on disk in the pending file

    @property
    def what(self) -> str:
        if self.kind == "rep":
            return f"rep {self.data['rep']['index']}"
        return self.kind.replace("_", " ")


def pending_path_for(db_path: Path) -> Path:
    """Where the rep log keeps what SQLite has not taken yet: beside the database."""
    return Path(db_path).with_name(Path(db_path).stem + "-pending.jsonl")


class RepLog:
    def __init__(
        self,
        store: Optional[RepStore],
        jsonl_path: Optional[Path] = None,
        min_free_mb: int = 50,
        retry_interval_s: float = RETRY_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
        pending_path: Optional[Path] = None,
    ):
        self.store = store
        self.jsonl_path = Path(jsonl_path) if jsonl_path else None
        self.min_free_bytes = min_free_mb * 1024 * 1024
        self._clock = clock
        self.retry_interval_s = retry_interval_s
        self._queue: list[Item] = []
        self._sessions: dict[str, int] = {}  # session identity -> database id
        self._handles: dict[str, SessionHandle] = {}
        self._next_try = 0.0
        self.paused = False
        self.pause_reason = ""
        self.dropped = 0
        self.rejected = 0
        self.unwritten = 0  # items lost at close: neither in SQLite nor in the pending file
        self._jsonl_failing = False
        self._opened: Optional[RepStore] = None  # a store opened later (by another thread), taken at the next flush
        if self.jsonl_path:
            try:
                self.jsonl_path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as err:  # said now; each rep's line then fails alone and is logged, SQLite has the rep
                log.error("the JSON-lines rep log %s cannot be written (%s: %s); set store.jsonl_path or data_dir to "
                          "a folder the station may write", self.jsonl_path, err.strerror, err.filename)
        path = pending_path or (pending_path_for(store.path) if store is not None else None)
        self.pending = PendingFile(path) if path is not None else None
        self.replayed = self._load_pending()

    # --- the queue ----------------------------------------------------------------------------

    def _load_pending(self) -> int:
        """Items a previous run kept in the pending file go first, before anything new."""
        if self.pending is None:
            return 0
        for record in self.pending.records():
            if record.get("kind") and isinstance(record.get("data"), dict):
                self._queue.append(Item(record["kind"], record["data"], kept=True))
        loaded = len(self._queue)
        if loaded:  # written by the live loop's flushes, beside coaching
            log.warning("%d rep-log items from an earlier run wait in %s; writing them to the rep log beside coaching",
                        loaded, self.pending.path)
        return loaded

    def attach(self, store: RepStore) -> None:
        """A rep log that could not be opened at start has opened (another thread kept trying): the
        live loop's next flush takes it and writes what waited in the pending file."""
        self._opened = store
        self._next_try = 0.0

    @property
    def in_ram(self) -> int:
        """Items held only in memory: the disk refused even the pending file."""
        return sum(1 for item in self._queue if not item.kept)

    @property
    def status(self) -> str:
        """One line for the page, the log and doctor: '' while everything reaches SQLite."""
        if not self._queue:
            return ""
        if self.in_ram:
            return (f"{self.in_ram} rep-log items held in memory only ({self.pause_reason}); "
                    "free disk space or fix the rep log's folder before stopping the station")
        where = self.pending.path if self.pending else "the pending file"
        return f"{len(self._queue)} rep-log items kept in {where} until the rep log takes them ({self.pause_reason})"

    def _space_ok(self) -> bool:
        target = self.store.path.parent if self.store else self.jsonl_path.parent if self.jsonl_path else None
        if target is None:
            return True
        return shutil.disk_usage(target).free >= self.min_free_bytes

    def _keep(self, item: Item) -> None:
        """Put an item SQLite did not take into the pending file; in memory only if the disk refuses."""
        if item.kept or self.pending is None:
            return
        try:
            self.pending.append({"kind": item.kind, "data": item.data})
            item.kept = True
        except OSError as err:
            level = logging.DEBUG if self.in_ram > 1 else logging.ERROR  # said once per outage, not per item
            log.log(level, "could not keep %s in %s (%s); it is held in memory only", item.what, self.pending.path, err)
            if self.in_ram > MAX_IN_RAM:
                lost = next(i for i in self._queue if not i.kept)
                self._queue.remove(lost)
                self.dropped += 1
                log.error("too many rep-log items in memory; dropped %s", lost.what)

    def _submit(self, item: Item) -> None:
        self._queue.append(item)
        self.flush()
        for waiting in self._queue:
            self._keep(waiting)

    def flush(self, force: bool = False, final: bool = False, budget_s: Optional[float] = FLUSH_BUDGET_S) -> bool:
        """Write queued items to SQLite in order, for at most `budget_s` (None: until done or refused);
        returns True when nothing is left queued. `final` (at exit) writes whatever the disk really
        has room for, ignoring the free-space floor that protects the system while running."""
        if self.store is None and self._opened is not None:
            self.store, self._opened = self._opened, None
            if self.pending is not None and self.pending.path != pending_path_for(self.store.path):
                log.warning("the rep log opened at %s; its pending file is %s", self.store.path, self.pending.path)
        if not self._queue:
            return True
        if self.paused and not force and self._clock() < self._next_try:
            return False
        deadline = None if budget_s is None else self._clock() + budget_s
        had_kept = any(item.kept for item in self._queue)
        while self._queue:
            if deadline is not None and self._clock() > deadline:
                return False
            try:
                if not final and not self._space_ok():
                    raise StorageError(f"less than {self.min_free_bytes // (1024 * 1024)} MB free")
                if not self._write_batch():
                    self._write_one(self._queue[0])
            except BadRecordError as err:
                item = self._queue.pop(0)
                log.error("could not store %s, skipping it: %s", item.what, err)
                self.rejected += 1
                continue
            except (StorageError, OSError) as err:
                if not self.paused:
                    log.warning("logging to SQLite paused (%s); alerts continue, %s is kept until it can be written",
                                err, self._queue[0].what)
                self.paused, self.pause_reason = True, str(err)
                self._next_try = self._clock() + self.retry_interval_s
                return False
        if had_kept and self.pending is not None:
            try:
                self.pending.clear()
            except OSError as err:  # replaying it again later is harmless: every item is written once
                log.warning("could not empty %s: %s", self.pending.path, err)
        if self.paused:
            log.info("logging resumed; kept items written")
        self.paused, self.pause_reason = False, ""
        return True

    def _write_one(self, item: Item) -> None:
        rep_id = self._apply(item)
        self._queue.pop(0)
        self._written(item, rep_id)

    def _write_batch(self) -> bool:
        """Up to BATCH queued items in one transaction; False (nothing written, nothing changed) when
        it could not be, and the caller goes one item at a time to find the one SQLite refuses."""
        items = self._queue[:BATCH]
        if self.store is None or len(items) < 2:
            return False
        sessions, ids = dict(self._sessions), {k: h.db_id for k, h in self._handles.items()}
        try:
            with self.store.batch():
                rep_ids = [self._apply(item) for item in items]
        except (StorageError, OSError):
            self._sessions = sessions  # ids of sessions the rolled-back transaction made are void
            for key, handle in self._handles.items():
                handle.db_id = ids.get(key)
            return False
        del self._queue[:len(items)]
        for item, rep_id in zip(items, rep_ids):
            self._written(item, rep_id)
        return True

    def _written(self, item: Item, rep_id: Optional[int]) -> None:
        """After the commit: the JSON line, and the loop told the rep is on disk."""
        if item.kind == "rep":
            if self.jsonl_path:
                try:
                    self._append_jsonl(item.data, rep_id)
                except OSError as err:  # the rep is in SQLite; only its JSON line is missing
                    level = logging.ERROR if not self._jsonl_failing else logging.DEBUG
                    log.log(level, "could not append %s to %s (%s); it is in the rep log", item.what, self.jsonl_path, err)
                    self._jsonl_failing = True
            if item.on_written:
                item.on_written(rep_id)

    @property
    def queued(self) -> int:
        return len(self._queue)

    # --- applying an item to SQLite -------------------------------------------------------------

    @staticmethod
    def _key(session: dict[str, Any]) -> str:
        return json.dumps([session["started_at"], session["source"]])

    def _session_id(self, session: dict[str, Any]) -> int:
        """The session's database id: known, found (written before a restart), or written now."""
        assert self.store is not None
        key = self._key(session)
        if key not in self._sessions:
            found = self.store.find_session(session["started_at"], session["source"])
            if found is None:
                found = self.store.start_session(session["started_at"], session["profile"], session["source"],
                                                 session.get("athlete"))
            self._sessions[key] = found
            if key in self._handles:
                self._handles[key].db_id = found
        return self._sessions[key]

    def _apply(self, item: Item) -> Optional[int]:
        """Write one item to SQLite; returns the rep's id for a rep."""
        d = item.data
        rep_id: Optional[int] = None
        if self.store is None and self.pending is not None:
            raise StorageError("the rep log could not be opened at start")
        if self.store is not None:
            if item.kind == "session_start":
                self._session_id(d["session"])
            elif item.kind == "session_end":
                self.store.end_session(self._session_id(d["session"]), d["ended_at"])
            elif item.kind == "athlete":
                self.store.set_athlete(self._session_id(d["session"]), d["athlete"])
            elif item.kind == "device_event":
                self.store.add_device_event(d["kind"], d["detail"], d["at"])
            elif item.kind == "setting":
                self.store.set_setting(d["key"], d["value"])
            elif item.kind == "rep":
                session_id = self._session_id(d["session"])
                rep_id = self.store.find_rep(session_id, d["rep"]["index"])  # written before a restart
                if rep_id is None:
                    rep_id = self.store.add_rep(session_id, Rep.from_dict(d["rep"]), d["wall_offset"], d["timings"])
        return rep_id

    # --- what the station logs ------------------------------------------------------------------

    def start_session(self, started_at: float, profile: str, source: str, athlete: Optional[str] = None) -> SessionHandle:
        session = SessionHandle(started_at, profile, source, athlete)
        self._handles[self._key(session.identity())] = session
        self._submit(Item("session_start", {"session": session.identity()}))
        return session

    def end_session(self, session: SessionHandle, ended_at: float) -> None:
        self._submit(Item("session_end", {"session": session.identity(), "ended_at": ended_at}))
        self._handles.pop(self._key(session.identity()), None)

    def add_rep(self, session: SessionHandle, rep: Rep, wall_offset: float, timings: dict[str, Any], on_written: Optional[Callable[[Optional[int]], None]] = None) -> None:
        session.reps += 1
        data = {"session": session.identity(), "rep": rep.to_dict(), "wall_offset": wall_offset, "timings": timings}
        self._submit(Item("rep", json.loads(json_line(data)), on_written))

    def device_event(self, kind: str, detail: str = "", at: Optional[float] = None) -> None:
        stamp = at if at is not None else time.time()
        self._submit(Item("device_event", {"kind": kind, "detail": detail, "at": stamp}))

    def set_athlete(self, session: SessionHandle, athlete: Optional[str]) -> None:
        before = session.identity()
        session.athlete = athlete
        self._submit(Item("athlete", {"session": before, "athlete": athlete}))

    def setting(self, key: str, value: Any) -> None:
        """Remember a choice made on the page (drill, buzzer) across restarts."""
        self._submit(Item("setting", {"key": key, "value": value}))

    def _append_jsonl(self, data: dict[str, Any], rep_id: Optional[int]) -> None:
        record = dict(data["rep"])
        offset = data["wall_offset"]
        start = record["start_time"]
        for key in ("start_time", "bottom_time", "end_time"):
            record[key.replace("_time", "_at")] = record.pop(key) + offset
        for fault in record["faults"]:
            fault["at"] = fault.pop("time") + offset
        record["trace"] = [[round(t - start, 3), h, k] for t, h, k in record["trace"]]
        session = data["session"]
        line = json_line({"session_id": self._sessions.get(self._key(session)) if self.store else None,
                          "session_started_at": session["started_at"], "profile": session["profile"],
                          "source": session["source"], "rep_id": rep_id, **record, "timings": data["timings"]})
        assert self.jsonl_path is not None
        with self.jsonl_path.open("a") as fh:
            fh.write(line + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def close(self) -> None:
        """Write what is left, with all the disk really has; keep the rest in the pending file for
        the next start. `unwritten` counts what could be neither (the exit status says so)."""
        self.flush(force=True, final=True, budget_s=None)
        for item in self._queue:
            self._keep(item)
        self.unwritten = self.in_ram + self.dropped
        if self.unwritten:
            log.error("%d rep-log items could not be written anywhere before exit: %s", self.unwritten, self.pause_reason)
        elif self._queue:
            log.warning("%d rep-log items wait in %s; they are written at the next start", len(self._queue),
                        self.pending.path if self.pending else "-")
        if self._opened is not None and self.store is None:
            self.store, self._opened = self._opened, None
        if self.store:
            self.store.close()
