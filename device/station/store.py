"""The durable rep log: one SQLite file in WAL mode, owned by this module (schema, migrations,
writes and queries).

A rep is committed in one transaction the moment it ends, with synchronous=FULL, so `kill -9` or a
power cut loses no completed rep and never leaves half a rep behind. Times are Unix seconds (UTC).
"""
from __future__ import annotations

import json
import logging
import math
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

from device.analysis.vocabulary import FaultEvent, Rep
from device.contract.records import BadRecordError, DiskFullError, SessionFilter, StorageError, chunks

log = logging.getLogger(__name__)

CORRECTION_KINDS = ("not_a_rep", "false_alarm", "missed_fault")

MIGRATIONS: tuple[str, ...] = (
    # 1: the first schema. Measurements are NULL where they are unknown (a lift that starts at the
    # floor has no lowering phase).
    """
    CREATE TABLE sessions (
        id INTEGER PRIMARY KEY,
        started_at REAL NOT NULL,
        ended_at REAL,
        profile TEXT NOT NULL,
        athlete TEXT,
        source TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX sessions_started ON sessions(started_at);
    CREATE TABLE reps (
        id INTEGER PRIMARY KEY,
        session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        rep_index INTEGER NOT NULL,
        started_at REAL NOT NULL,
        bottom_at REAL NOT NULL,
        ended_at REAL NOT NULL,
        lowering_s REAL,
        rising_s REAL,
        peak_hip_flexion_deg REAL,
        knee_flexion_at_bottom_deg REAL,
        trunk_angle_at_bottom_deg REAL,
        hip_shift_at_bottom REAL,
        hinge_ratio REAL,
        lockout_reached INTEGER NOT NULL,
        side TEXT NOT NULL,
        movement TEXT NOT NULL,
        trace TEXT NOT NULL DEFAULT '[]',
        timings TEXT NOT NULL DEFAULT '{}',
        UNIQUE (session_id, rep_index)
    );
    CREATE INDEX reps_started ON reps(started_at);
    CREATE TABLE faults (
        id INTEGER PRIMARY KEY,
        rep_id INTEGER NOT NULL REFERENCES reps(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        cue TEXT NOT NULL,
        at REAL NOT NULL,
        value REAL,
        threshold REAL
    );
    CREATE INDEX faults_rep ON faults(rep_id);
    CREATE TABLE corrections (
        id INTEGER PRIMARY KEY,
        rep_id INTEGER NOT NULL REFERENCES reps(id) ON DELETE CASCADE,
        kind TEXT NOT NULL CHECK (kind IN ('not_a_rep', 'false_alarm', 'missed_fault')),
        fault TEXT,
        note TEXT NOT NULL DEFAULT '',
        created_at REAL NOT NULL
    );
    CREATE INDEX corrections_rep ON corrections(rep_id);
    CREATE TABLE device_events (
        id INTEGER PRIMARY KEY,
        at REAL NOT NULL,
        kind TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX device_events_at ON device_events(at);
    CREATE TABLE station_settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        updated_at REAL NOT NULL
    );
    """,
    # 2: the evidence of each fault: how far past its limit (margin) against the value's noise band,
    # and the borderline faults of a rep (past a limit within the noise: logged, never buzzed) as
    # JSON beside the rep, so every query over `faults` still means "what buzzed".
    """
    ALTER TABLE faults ADD COLUMN margin REAL;
    ALTER TABLE faults ADD COLUMN noise REAL;
    ALTER TABLE reps ADD COLUMN borderline TEXT NOT NULL DEFAULT '[]';
    """,
    # 3: athletes: who trained, kept apart from the sessions so renaming or deleting one never touches a
    # rep. A session links to its athlete by id; `sessions.athlete` stays the athlete's name (kept in
    # step by this module, in the same transaction) so old readers, the history filter and the
    # labels export read what they always read. Every label already in the log becomes an athlete.
    # step_decisions: a trainer's answer to "ready for the next drill" (accepted or dismissed),
    # with the sessions that met the rule, so the choice is kept and shown.
    """
    CREATE TABLE athletes (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE COLLATE NOCASE,
        notes TEXT NOT NULL DEFAULT '',
        height_cm REAL,
        created_at REAL NOT NULL
    );
    INSERT INTO athletes (name, created_at)
        SELECT athlete, MIN(started_at) FROM sessions WHERE athlete IS NOT NULL AND TRIM(athlete) != ''
        GROUP BY athlete COLLATE NOCASE;
    ALTER TABLE sessions ADD COLUMN athlete_id INTEGER REFERENCES athletes(id) ON DELETE SET NULL;
    UPDATE sessions SET athlete_id = (SELECT a.id FROM athletes a WHERE a.name = sessions.athlete)
        WHERE athlete IS NOT NULL;
    CREATE INDEX sessions_athlete ON sessions(athlete_id, started_at);
    CREATE TABLE step_decisions (
        id INTEGER PRIMARY KEY,
        athlete_id INTEGER NOT NULL REFERENCES athletes(id) ON DELETE CASCADE,
        drill TEXT NOT NULL,
        next_drill TEXT NOT NULL,
        decision TEXT NOT NULL CHECK (decision IN ('accepted', 'dismissed')),
        evidence TEXT NOT NULL DEFAULT '[]',
        decided_at REAL NOT NULL
    );
    CREATE INDEX step_decisions_athlete ON step_decisions(athlete_id, decided_at);
    """,
    # 4: the MQTT outbox. A rep or session waits here, written in the transaction that commits it,
    # until the hub confirmed it stored it (device/station/broker_link.py); it points at its row, so
    # deleting a session drops what of it was still unsent. store_uuid is made once per database:
    # the station's rep and session keys carry it, so a fresh SD card cannot reuse the old card's keys.
    """
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('rep', 'session')),
        rep_id INTEGER REFERENCES reps(id) ON DELETE CASCADE,
        session_id INTEGER REFERENCES sessions(id) ON DELETE CASCADE,
        created_at REAL NOT NULL
    );
    INSERT OR IGNORE INTO station_settings (key, value, updated_at)
        VALUES ('store_uuid', '"' || lower(hex(randomblob(16))) || '"', CAST(strftime('%s', 'now') AS REAL));
    """,
    # 5: whether a rep's faults were judged at all (0 when the camera was not side-on): such a rep is
    # shown as "not judged", never as clean. Reps logged before this judged every rep they kept.
    """
    ALTER TABLE reps ADD COLUMN judged INTEGER NOT NULL DEFAULT 1;
    """,
    # 6: what each fault's value measures (a squat is decided by the thigh, the knees or the hinge
    # ratio), so the page says "knees bent 105°" rather than a bare number. NULL on older rows.
    """
    ALTER TABLE faults ADD COLUMN quantity TEXT;
    """,
)
STEP_DECISIONS = ("accepted", "dismissed")

# A rep `r` whose verdict is "clean" (device/analysis/vocabulary.py: rep_verdict), in SQL: judged, no
# fault, nothing borderline, and not a squat. The counts of clean reps are made with this.
CLEAN_REP_SQL = ("(r.judged = 1 AND r.borderline = '[]' AND r.movement != 'squat' "
                 "AND NOT EXISTS (SELECT 1 FROM faults f WHERE f.rep_id = r.id))")


# Every column of `reps` but the per-frame trace and timings (read when a page needs them).
_REP_COLUMNS_BUT_TRACE = ("id, session_id, rep_index, started_at, bottom_at, ended_at, lowering_s, rising_s, "
                          "peak_hip_flexion_deg, knee_flexion_at_bottom_deg, trunk_angle_at_bottom_deg, "
                          "hip_shift_at_bottom, hinge_ratio, lockout_reached, judged, side, movement, borderline")


def _row_id(cur: sqlite3.Cursor) -> int:
    """The id of the row an INSERT just made (sqlite3 types lastrowid as optional: None before any
    insert), so a missing id is a clear error rather than a None handed on as a key."""
    if cur.lastrowid is None:
        raise StorageError("the rep log did not report the id of the row it just inserted")
    return cur.lastrowid


def _classify(err: sqlite3.Error, path: Path) -> StorageError:
    text = str(err).lower()
    if isinstance(err, sqlite3.IntegrityError):
        return BadRecordError(f"rep log {path}: record refused ({err})")
    if "full" in text:
        return DiskFullError(f"rep log {path}: disk full ({err}); free some space, logging resumes by itself")
    return StorageError(f"rep log {path}: {err}")


class RepStore:
    """The station's rep log. One instance per thread of use (writer, or page reader).

    `readonly=True` opens the file without the right to change it (the trainer page in
    `station serve`, `station doctor`); it never creates or migrates the file.
    """

    def __init__(self, path: Path, readonly: bool = False, outbox: bool = False, synchronous: str = "FULL",
                 clock: Callable[[], float] = time.time):
        """`outbox=True` (MQTT on): each rep and session start or end also goes into the outbox, in the
        same transaction. `synchronous="NORMAL"` suits a connection whose writes may be lost to a power
        cut without harm (the MQTT sender's deletes: a lost one only sends a rep again)."""
        self.path = Path(path)
        self.readonly = readonly
        self.outbox = outbox
        self.clock = clock  # Unix seconds for what the log stamps itself (corrections, athletes, decisions)
        self._lock = threading.RLock()
        self._in_batch = False
        try:
            if readonly:
                if not self.path.is_file():
                    raise StorageError(f"rep log {self.path} does not exist (run the station first, or check store.db_path)")
                self._db = _open_readonly(self.path)
            else:
                try:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                except OSError as err:
                    raise StorageError(f"rep log {self.path}: cannot create its folder ({err.strerror}); "
                                       "set store.db_path or data_dir to a folder the station may write") from None
                self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute(f"PRAGMA synchronous={'NORMAL' if synchronous == 'NORMAL' else 'FULL'}")
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.execute("PRAGMA busy_timeout=5000")
            if not readonly:
                self._migrate()
        except sqlite3.Error as err:
            raise _classify(err, self.path) from None

    # --- lifetime ---------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> "RepStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        version = self.schema_version
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            with self._transaction() as db:
                for statement in filter(str.strip, script.split(";")):
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {number}")

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Several writes in one transaction (one sync to disk instead of one per write): the rep
        log replaying what waited in its pending file. Each write inside joins it; any error rolls
        all of them back, so the caller can try them one at a time."""
        with self._lock:
            if self._in_batch:
                yield
                return
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as err:
                raise _classify(err, self.path) from None
            self._in_batch = True
            try:
                yield
            except BaseException:
                self._in_batch = False
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            self._in_batch = False
            try:
                self._db.execute("COMMIT")
            except sqlite3.Error as err:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise _classify(err, self.path) from None

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._in_batch:  # part of the batch's transaction: its caller commits or rolls back
                try:
                    yield self._db
                except sqlite3.Error as err:
                    raise _classify(err, self.path) from None
                return
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                except BaseException:
                    if self._db.in_transaction:  # SQLite already rolled back on SQLITE_FULL
                        self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.Error as err:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise _classify(err, self.path) from None

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                return self._db.execute(sql, params).fetchall()
            except sqlite3.Error as err:
                raise _classify(err, self.path) from None

    # --- writes -----------------------------------------------------------------------------

    def start_session(self, started_at: float, profile: str, source: str = "", athlete: Optional[str] = None) -> int:
        """`athlete` is a name: an athlete not in the log yet is added (the station and the pending
        file carry names, so a label typed before the athletes list existed still links)."""
        with self._transaction() as db:
            athlete_id = self._athlete_named(db, athlete)
            cur = db.execute(
                "INSERT INTO sessions (started_at, profile, source, athlete, athlete_id) VALUES (?, ?, ?, ?, ?)",
                (started_at, profile, source, self._name_of(db, athlete_id), athlete_id),
            )
            self._to_outbox(db, "session", session_id=_row_id(cur))
            return _row_id(cur)

    def _athlete_named(self, db: sqlite3.Connection, name: Optional[str]) -> Optional[int]:
        name = name.strip() if name else None
        if not name:
            return None
        db.execute("INSERT OR IGNORE INTO athletes (name, created_at) VALUES (?, ?)", (name, self.clock()))
        return int(db.execute("SELECT id FROM athletes WHERE name = ?", (name,)).fetchone()[0])

    @staticmethod
    def _name_of(db: sqlite3.Connection, athlete_id: Optional[int]) -> Optional[str]:
        """The athlete's name as the athletes table spells it (names match without regard to case)."""
        if athlete_id is None:
            return None
        return str(db.execute("SELECT name FROM athletes WHERE id = ?", (athlete_id,)).fetchone()[0])

    def end_session(self, session_id: int, ended_at: float) -> None:
        with self._transaction() as db:
            if db.execute("UPDATE sessions SET ended_at = ? WHERE id = ? AND ended_at IS NULL",
                          (ended_at, session_id)).rowcount:
                self._to_outbox(db, "session", session_id=session_id)

    def _to_outbox(self, db: sqlite3.Connection, kind: str, rep_id: Optional[int] = None,
                   session_id: Optional[int] = None) -> None:
        if self.outbox:
            db.execute("INSERT INTO outbox (kind, rep_id, session_id, created_at) VALUES (?, ?, ?, ?)",
                       (kind, rep_id, session_id, self.clock()))

    def set_athlete(self, session_id: int, athlete: Optional[str]) -> bool:
        """Give a session to the athlete of that name (added when new), or make it anonymous (None)."""
        with self._transaction() as db:
            if db.execute("SELECT 1 FROM sessions WHERE id = ?", (session_id,)).fetchone() is None:
                return False
            athlete_id = self._athlete_named(db, athlete)
            return db.execute("UPDATE sessions SET athlete = ?, athlete_id = ? WHERE id = ?",
                              (self._name_of(db, athlete_id), athlete_id, session_id)).rowcount == 1

    def add_athlete(self, name: str, notes: str = "", height_cm: Optional[float] = None) -> int:
        """A new athlete; a name already taken (in any case) raises BadRecordError."""
        with self._transaction() as db:
            cur = db.execute("INSERT INTO athletes (name, notes, height_cm, created_at) VALUES (?, ?, ?, ?)",
                             (name.strip(), notes, height_cm, self.clock()))
            return _row_id(cur)

    def update_athlete(self, athlete_id: int, **fields: Any) -> bool:
        """Change any of name, notes, height_cm. A new name reaches every session of the athlete in
        the same transaction; no rep is touched."""
        unknown = set(fields) - {"name", "notes", "height_cm"}
        if unknown:
            raise ValueError(f"cannot change {sorted(unknown)} of an athlete")
        if "name" in fields:
            fields["name"] = fields["name"].strip()
        with self._transaction() as db:
            if fields:
                sets = ", ".join(f"{key} = ?" for key in fields)
                if db.execute(f"UPDATE athletes SET {sets} WHERE id = ?", (*fields.values(), athlete_id)).rowcount != 1:
                    return False
            elif db.execute("SELECT 1 FROM athletes WHERE id = ?", (athlete_id,)).fetchone() is None:
                return False
            if "name" in fields:
                db.execute("UPDATE sessions SET athlete = ? WHERE athlete_id = ?", (fields["name"], athlete_id))
            return True

    def delete_athlete(self, athlete_id: int) -> bool:
        """Forget an athlete: their sessions and reps stay, anonymous; their step decisions go."""
        with self._transaction() as db:
            db.execute("UPDATE sessions SET athlete = NULL, athlete_id = NULL WHERE athlete_id = ?", (athlete_id,))
            return db.execute("DELETE FROM athletes WHERE id = ?", (athlete_id,)).rowcount == 1

    def add_step_decision(self, athlete_id: int, drill: str, next_drill: str, decision: str,
                          evidence: Sequence[int]) -> int:
        if decision not in STEP_DECISIONS:
            raise ValueError(f"decision must be one of {STEP_DECISIONS}")
        with self._transaction() as db:
            cur = db.execute(
                "INSERT INTO step_decisions (athlete_id, drill, next_drill, decision, evidence, decided_at) "
                "VALUES (?, ?, ?, ?, ?, ?)", (athlete_id, drill, next_drill, decision, json.dumps(list(evidence)), self.clock()))
            return _row_id(cur)

    def find_session(self, started_at: float, source: str) -> Optional[int]:
        """The id of the session that started at `started_at` from `source`, if it is logged."""
        rows = self._query("SELECT id FROM sessions WHERE started_at = ? AND source = ? ORDER BY id LIMIT 1",
                           (started_at, source))
        return int(rows[0][0]) if rows else None

    def find_rep(self, session_id: int, rep_index: int) -> Optional[int]:
        rows = self._query("SELECT id FROM reps WHERE session_id = ? AND rep_index = ?", (session_id, rep_index))
        return int(rows[0][0]) if rows else None

    def add_rep(self, session_id: int, rep: Rep, wall_offset: float, timings: Optional[dict[str, Any]] = None) -> int:
        """Commit a finished rep and its faults in one transaction.

        `wall_offset` turns the frame clock into Unix time (wall = frame time + offset). The trace
        is stored relative to the rep start so charts line reps up.
        """
        trace = [[round(t - rep.start_time, 3), _num(h, 1), _num(k, 1)] for t, h, k in rep.trace]
        with self._transaction() as db:
            cur = db.execute(
                """INSERT INTO reps (session_id, rep_index, started_at, bottom_at, ended_at, lowering_s, rising_s,
                       peak_hip_flexion_deg, knee_flexion_at_bottom_deg, trunk_angle_at_bottom_deg,
                       hip_shift_at_bottom, hinge_ratio, lockout_reached, judged, side, movement, trace, timings,
                       borderline)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    session_id, rep.index, rep.start_time + wall_offset, rep.bottom_time + wall_offset,
                    rep.end_time + wall_offset, _num(rep.lowering_s), _num(rep.rising_s), _num(rep.peak_hip_flexion_deg),
                    _num(rep.knee_flexion_at_bottom_deg), _num(rep.trunk_angle_at_bottom_deg),
                    _num(rep.hip_shift_at_bottom), _num(rep.hinge_ratio), int(rep.lockout_reached), int(rep.judged), rep.side,
                    rep.movement, json.dumps(trace),
                    json.dumps(timings or {}), json.dumps([_evidence(f, wall_offset) for f in rep.borderline]),
                ),
            )
            rep_id = _row_id(cur)
            db.executemany(
                "INSERT INTO faults (rep_id, name, cue, at, value, threshold, margin, noise, quantity)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(rep_id, f.fault.value, f.cue, f.time + wall_offset, _num(f.value), _num(f.threshold), _num(f.margin),
                  _num(f.noise), f.quantity or None) for f in rep.faults],
            )
            self._to_outbox(db, "rep", rep_id=rep_id)
            return rep_id

    def add_device_event(self, kind: str, detail: str = "", at: Optional[float] = None) -> None:
        with self._transaction() as db:
            db.execute("INSERT INTO device_events (at, kind, detail) VALUES (?, ?, ?)", (at or time.time(), kind, detail))

    def add_correction(self, rep_id: int, kind: str, fault: Optional[str] = None, note: str = "") -> int:
        if kind not in CORRECTION_KINDS:
            raise ValueError(f"correction kind must be one of {CORRECTION_KINDS}")
        with self._transaction() as db:
            cur = db.execute(
                "INSERT INTO corrections (rep_id, kind, fault, note, created_at) VALUES (?, ?, ?, ?, ?)",
                (rep_id, kind, fault, note, self.clock()),
            )
            return _row_id(cur)

    def delete_correction(self, correction_id: int) -> bool:
        with self._transaction() as db:
            return db.execute("DELETE FROM corrections WHERE id = ?", (correction_id,)).rowcount == 1

    def delete_session(self, session_id: int) -> bool:
        with self._transaction() as db:
            return db.execute("DELETE FROM sessions WHERE id = ?", (session_id,)).rowcount == 1

    def set_setting(self, key: str, value: Any) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO station_settings (key, value, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                (key, json.dumps(value), time.time()),
            )

    def prune(self, before: float) -> int:
        """Drop sessions that ended before `before` (retention), and ones a power cut left without an
        end that started before it; returns how many went."""
        with self._transaction() as db:
            return db.execute("DELETE FROM sessions WHERE COALESCE(ended_at, started_at) < ?", (before,)).rowcount

    def newest_time(self) -> Optional[float]:
        """The latest time the log holds (a session's start or end, a rep's end): a clock reading
        earlier than this has gone backwards, or the rows came from a clock that ran fast."""
        row = self._query("SELECT MAX(t) FROM (SELECT MAX(COALESCE(ended_at, started_at)) AS t FROM sessions "
                          "UNION ALL SELECT MAX(ended_at) FROM reps)")[0]
        return float(row[0]) if row[0] is not None else None

    def close_interrupted(self) -> int:
        """At start no session can still be running: one without an end was cut by kill -9 or a
        power loss. It ends at its last rep (or its start), so history, exports and retention
        treat it like any other. Returns how many were closed."""
        with self._transaction() as db:
            return db.execute(
                """UPDATE sessions SET ended_at = COALESCE(
                       (SELECT MAX(r.ended_at) FROM reps r WHERE r.session_id = sessions.id), started_at)
                   WHERE ended_at IS NULL""").rowcount

    # --- reads ------------------------------------------------------------------------------

    def get_setting(self, key: str, default: Any = None) -> Any:
        rows = self._query("SELECT value FROM station_settings WHERE key = ?", (key,))
        return json.loads(rows[0]["value"]) if rows else default

    def settings(self) -> dict[str, Any]:
        return {r["key"]: json.loads(r["value"]) for r in self._query("SELECT key, value FROM station_settings")}

    def _session_where(self, flt: SessionFilter) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if flt.since is not None:
            clauses.append("s.started_at >= ?")
            params.append(flt.since)
        if flt.until is not None:
            clauses.append("s.started_at < ?")
            params.append(flt.until)
        if flt.profile:
            clauses.append("s.profile = ?")
            params.append(flt.profile)
        if flt.athlete:
            clauses.append("s.athlete = ?")
            params.append(flt.athlete)
        if flt.athlete_id is not None:
            clauses.append("s.athlete_id = ?")
            params.append(flt.athlete_id)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def count_sessions(self, flt: SessionFilter = SessionFilter()) -> int:
        where, params = self._session_where(flt)
        return int(self._query(f"SELECT COUNT(*) FROM sessions s{where}", params)[0][0])

    def list_sessions(self, flt: SessionFilter = SessionFilter(), limit: int = 20, offset: int = 0) -> list[dict[str, Any]]:
        """Sessions newest first with rep counts, clean reps and per-fault counts."""
        where, params = self._session_where(flt)
        # Page the sessions first, then count reps for that page only: the history page stays
        # as fast with a year of reps as with a week's.
        rows = self._query(
            f"""SELECT s.*, COUNT(r.id) AS reps,
                       SUM(CASE WHEN r.id IS NOT NULL AND {CLEAN_REP_SQL} THEN 1 ELSE 0 END) AS clean_reps,
                       MAX(r.ended_at) AS last_rep_at
                FROM (SELECT * FROM sessions s {where} ORDER BY s.started_at DESC, s.id DESC LIMIT ? OFFSET ?) s
                LEFT JOIN reps r ON r.session_id = s.id
                GROUP BY s.id ORDER BY s.started_at DESC, s.id DESC""",
            [*params, limit, offset],
        )
        sessions = [dict(r) for r in rows]
        ids = [s["id"] for s in sessions]
        counts: dict[int, dict[str, int]] = {i: {} for i in ids}
        if ids:
            marks = ",".join("?" * len(ids))
            for r in self._query(
                f"""SELECT r.session_id, f.name, COUNT(*) AS n FROM faults f JOIN reps r ON r.id = f.rep_id
                    WHERE r.session_id IN ({marks}) GROUP BY r.session_id, f.name""",
                ids,
            ):
                counts[r["session_id"]][r["name"]] = r["n"]
        for s in sessions:
            s["clean_reps"] = s["clean_reps"] or 0
            s["fault_counts"] = counts[s["id"]]
        return sessions

    def get_session(self, session_id: int) -> Optional[dict[str, Any]]:
        rows = self._query("SELECT * FROM sessions WHERE id = ?", (session_id,))
        return dict(rows[0]) if rows else None

    def _reps(self, where: str, params: Sequence[Any], limit: Optional[int] = None,
              traces: bool = True) -> list[dict[str, Any]]:
        page = f" LIMIT {int(limit)}" if limit is not None else ""
        columns = "*" if traces else f"{_REP_COLUMNS_BUT_TRACE}, '[]' AS trace, '{{}}' AS timings"
        reps = [dict(r) for r in self._query(f"SELECT {columns} FROM reps {where} ORDER BY started_at, id{page}", params)]
        if not reps:
            return []
        ids = [r["id"] for r in reps]
        by_id = {r["id"]: r for r in reps}
        for r in reps:
            r["trace"] = json.loads(r["trace"])
            r["timings"] = json.loads(r["timings"])
            r["borderline"] = json.loads(r["borderline"])
            r["lockout_reached"] = bool(r["lockout_reached"])
            r["judged"] = bool(r["judged"])
            r["faults"], r["corrections"] = [], []
        for chunk in chunks(ids, 500):
            marks = ",".join("?" * len(chunk))
            for f in self._query(f"SELECT * FROM faults WHERE rep_id IN ({marks}) ORDER BY at, id", chunk):
                by_id[f["rep_id"]]["faults"].append(dict(f))
            for c in self._query(f"SELECT * FROM corrections WHERE rep_id IN ({marks}) ORDER BY created_at, id", chunk):
                by_id[c["rep_id"]]["corrections"].append(dict(c))
        return reps

    def session_reps(self, session_id: int) -> list[dict[str, Any]]:
        """Every rep of a session with its faults, corrections and trace, oldest first."""
        return self._reps("WHERE session_id = ?", (session_id,))

    def reps_page(self, since: float, until: float, after: tuple[float, int], limit: int) -> list[dict[str, Any]]:
        """Up to `limit` reps started in [since, until) after (started_at, id) `after`, oldest first:
        an export read a page at a time, so a 10,000-rep log never sits in memory at once."""
        return self._reps("WHERE started_at >= ? AND started_at < ? AND (started_at, id) > (?, ?)",
                          (since, until, after[0], after[1]), limit)

    def reps_between(self, since: float, until: float) -> list[dict[str, Any]]:
        return self._reps("WHERE started_at >= ? AND started_at < ?", (since, until))

    def get_rep(self, rep_id: int) -> Optional[dict[str, Any]]:
        reps = self._reps("WHERE id = ?", (rep_id,))
        return reps[0] if reps else None

    def rep_count(self, session_id: Optional[int] = None) -> int:
        if session_id is None:
            return int(self._query("SELECT COUNT(*) FROM reps")[0][0])
        return int(self._query("SELECT COUNT(*) FROM reps WHERE session_id = ?", (session_id,))[0][0])

    def list_athletes(self) -> list[dict[str, Any]]:
        """Every athlete by name, with their sessions, reps and last session's start."""
        return self._athletes("", ())

    def get_athlete(self, athlete_id: int) -> Optional[dict[str, Any]]:
        rows = self._athletes("WHERE a.id = ?", (athlete_id,))
        return rows[0] if rows else None

    def _athletes(self, where: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        return [dict(r) for r in self._query(
            f"""SELECT a.*, COUNT(DISTINCT s.id) AS sessions, COUNT(r.id) AS reps, MAX(s.started_at) AS last_session_at
                FROM athletes a LEFT JOIN sessions s ON s.athlete_id = a.id LEFT JOIN reps r ON r.session_id = s.id
                {where} GROUP BY a.id ORDER BY a.name""", params)]

    def athlete_reps(self, athlete_id: int) -> list[dict[str, Any]]:
        """Every rep of the athlete's sessions, oldest first, with faults and corrections. Without
        the traces and timings: progress reads measures per rep, and a year of an athlete's traces
        would make their page slow for nothing (the session page shows each rep's trace)."""
        return self._reps("WHERE session_id IN (SELECT id FROM sessions WHERE athlete_id = ?)", (athlete_id,),
                          traces=False)

    def step_decisions(self, athlete_id: int) -> list[dict[str, Any]]:
        rows = [dict(r) for r in self._query(
            "SELECT * FROM step_decisions WHERE athlete_id = ? ORDER BY decided_at, id", (athlete_id,))]
        for r in rows:
            r["evidence"] = json.loads(r["evidence"])
        return rows

    def device_events(self, limit: int = 100) -> list[dict[str, Any]]:
        return [dict(r) for r in self._query("SELECT * FROM device_events ORDER BY at DESC, id DESC LIMIT ?", (limit,))]

    def profiles_used(self) -> list[str]:
        return [r[0] for r in self._query("SELECT DISTINCT profile FROM sessions ORDER BY profile")]

    def stations(self) -> list[str]:
        """None to filter by: a station's own log holds that one station's sessions."""
        return []

    def athlete_names(self) -> list[str]:
        return [r[0] for r in self._query("SELECT name FROM athletes ORDER BY name")]

    # --- the MQTT outbox --------------------------------------------------------------------------

    @property
    def store_uuid(self) -> str:
        """The random id of this database, made once (by its migration), part of every MQTT key."""
        return str(self.get_setting("store_uuid"))

    def outbox_next(self, limit: int) -> list[dict[str, Any]]:
        """The oldest `limit` outbox entries, in commit order."""
        return [dict(r) for r in self._query("SELECT * FROM outbox ORDER BY id LIMIT ?", (limit,))]

    def outbox_confirm(self, rep_ids: Sequence[int], sessions: Sequence[tuple[int, Optional[float]]]) -> list[int]:
        """The hub has stored these reps and sessions: their rows leave the outbox (one transaction).
        A session's rows go only if the hub holds it as it stands now (the same end, or both open):
        an end queued after the start the hub confirmed still goes. Returns the outbox ids let go."""
        with self._transaction() as db:
            gone: list[int] = []
            for chunk in chunks(list(rep_ids), 500):
                marks = ",".join("?" * len(chunk))
                gone += [r[0] for r in db.execute(f"SELECT id FROM outbox WHERE kind = 'rep' AND rep_id IN ({marks})", chunk)]
            for session_id, ended_at in sessions:
                gone += [r[0] for r in db.execute(
                    "SELECT o.id FROM outbox o JOIN sessions s ON s.id = o.session_id "
                    "WHERE o.kind = 'session' AND o.session_id = ? AND s.ended_at IS ?", (session_id, ended_at))]
            for chunk in chunks(gone, 500):
                db.execute(f"DELETE FROM outbox WHERE id IN ({','.join('?' * len(chunk))})", chunk)
            return gone

    def outbox_remove(self, ids: Sequence[int]) -> None:
        """Rows that can never be sent (their payload is refused by the contract): they leave the outbox."""
        if not ids:
            return
        with self._transaction() as db:
            db.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in ids])

    def outbox_size(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM outbox")[0][0])

    def day_summary(self, since: float) -> dict[str, Any]:
        """Reps since `since` (the local midnight), how many were clean, and the latest fault among them."""
        row = self._query(
            f"""SELECT COUNT(*) AS reps, SUM(CASE WHEN {CLEAN_REP_SQL} THEN 1 ELSE 0 END) AS clean
               FROM reps r WHERE r.started_at >= ?""", (since,))[0]
        last = self._query("SELECT f.name FROM faults f JOIN reps r ON r.id = f.rep_id WHERE r.started_at >= ? "
                           "ORDER BY f.at DESC, f.id DESC LIMIT 1", (since,))
        return {"reps": int(row["reps"]), "clean": int(row["clean"] or 0), "last_fault": last[0][0] if last else None}

    def integrity_check(self) -> str:
        return str(self._query("PRAGMA integrity_check")[0][0])

    def quick_check(self) -> str:
        """SQLite's quick check of every page and index ("ok" when sound); fast enough for each start."""
        return "; ".join(str(row[0]) for row in self._query("PRAGMA quick_check"))


def _open_readonly(path: Path) -> sqlite3.Connection:
    """Open the log for reading only. A reader that may not write the log's folder (the page run
    by another user) cannot make the WAL's shared-memory file; it then reads the file as it was
    last checkpointed (immutable), which may miss the newest reps, and says so in the log."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    try:
        db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        return db
    except sqlite3.OperationalError as err:
        db.close()
        if "unable to open" not in str(err) and "readonly" not in str(err):
            raise
    log.warning(
        "%s: this user may not write its folder, so the rep log is read as last checkpointed; the newest reps "
        "may show only after the station checkpoints (run as the service user to see them at once)", path)
    return sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True, check_same_thread=False)


def open_rep_log(path: Path, clock: Any = time.time, outbox: bool = False) -> tuple[RepStore, Optional[Path]]:
    """Open the rep log for writing, checked: a file SQLite cannot read, or whose quick check fails,
    is moved aside as `<name>.damaged-<UTC time>` (with its WAL and shared-memory files) and a fresh
    log is started, so the station keeps logging. Returns the store and where a damaged file went
    (None when the log was sound). A file that cannot be written at all (permissions, a read-only
    disk) raises StorageError: that is not damage, and moving it would not help."""
    path = Path(path)
    problem = ""
    try:
        store = RepStore(path, outbox=outbox)
        try:
            problem = "" if (check := store.quick_check()) == "ok" else check
        except StorageError as err:
            problem = str(err)
        if not problem:
            return store, None
        store.close()
    except DiskFullError:
        raise
    except StorageError as err:
        text = str(err).lower()
        if not any(word in text for word in ("not a database", "malformed", "corrupt", "disk image")):
            raise
        problem = str(err)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(clock()))
    moved = path.with_name(f"{path.name}.damaged-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        part = path.with_name(path.name + suffix)
        if part.exists():
            part.replace(moved.with_name(moved.name + suffix))
    store = RepStore(path, outbox=outbox)
    store.add_device_event("rep_log_damaged", f"moved aside to {moved.name}: {problem[:200]}")
    return store, moved


def _num(value: Optional[float], digits: Optional[int] = None) -> Optional[float]:
    """SQLite and JSON have no NaN: an unknown measurement is stored as NULL."""
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits) if digits is not None else float(value)


def _evidence(fault: FaultEvent, wall_offset: float) -> dict[str, Any]:
    """A borderline fault as stored beside its rep: the same fields as a row of `faults`."""
    return {"name": fault.fault.value, "cue": fault.cue, "at": fault.time + wall_offset, "value": _num(fault.value),
            "threshold": _num(fault.threshold), "margin": _num(fault.margin), "noise": _num(fault.noise),
            "quantity": fault.quantity or None}
