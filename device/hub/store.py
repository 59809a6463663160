"""The hub's own database: every station's sessions and reps, SQLite by default or PostgreSQL by URL.

SQLAlchemy Core, so one set of statements serves both engines; the only dialect-specific piece
is insert-or-ignore (`ON CONFLICT DO NOTHING`), which both have under the same name. A rep is
stored once per `rep_key` and a session once per `session_key` (see device/contract/topics.py):
MQTT delivers at least once, so a second delivery is a no-op, never a second row.

The page reads it through the same methods it reads a station's rep log with (`list_sessions`,
`session_reps`, `reps_page`, ...), plus the station and athlete it filters on. Rows carry the
hub's own integer ids (the page's links); the keys say where a row came from. The page cannot
change it: corrections and labels belong on the station's own page.
"""
from __future__ import annotations

import json
import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Annotated, Any, Iterable, Optional, Sequence, get_args, get_origin

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from annotated_types import MaxLen
from pydantic.fields import FieldInfo

from device.contract.records import (FAULT_FIELDS, MEASUREMENTS, REP_SCALARS, SESSION_FIELDS, BadRecordError, FaultRecord,
                                     Record, RepRecord, SessionFilter, SessionRecord, StorageError, chunks)

log = logging.getLogger(__name__)

SCHEMA_VERSION = 3
# What changes a database made by an older hub, in order: the schema version each one reaches and its
# statements (plain SQL both SQLite and PostgreSQL read). 2: a rep says whether its faults were judged.
# 3: what each fault's value measures (FaultRecord.quantity), for the page's words.
MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (2, ("ALTER TABLE hub_reps ADD COLUMN judged BOOLEAN NOT NULL DEFAULT TRUE",)),
    (3, ("ALTER TABLE hub_faults ADD COLUMN quantity VARCHAR(40)",)),
)


def _columns(record: type[Record], names: Sequence[str], indexed: Sequence[str] = ()) -> list[sa.Column]:
    """The SQL columns of a record's fields (device/contract/records.py, the one definition): a
    number is a number, text a string of the field's length, an optional field nullable."""
    out = []
    for name in names:
        field = record.model_fields[name]
        args = get_args(field.annotation)
        nullable = type(None) in args
        base = next((a for a in args if a is not type(None)), field.annotation) if nullable else field.annotation
        metadata = list(field.metadata)
        if get_origin(base) is Annotated:  # Optional[Annotated[...]]: the constraints are inside
            base, *more = get_args(base)
            metadata += [inner for m in more for inner in (m.metadata if isinstance(m, FieldInfo) else [m])]
        length = next((m.max_length for m in metadata if isinstance(m, MaxLen)), None)
        if base is bool:
            kind: Any = sa.Boolean
        elif base is int:
            kind = sa.Integer
        elif base is float:
            kind = sa.Double
        else:  # str or a Literal of strings
            kind = sa.String(length or 64)
        out.append(sa.Column(name, kind, nullable=nullable, index=name in indexed))
    return out


meta = sa.MetaData()
sessions = sa.Table(
    "hub_sessions", meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("session_key", sa.String(200), nullable=False, unique=True),
    sa.Column("station", sa.String(32), nullable=False, index=True),
    *_columns(SessionRecord, SESSION_FIELDS, indexed=("started_at", "athlete")),
    sa.Column("received_at", sa.Double, nullable=False),
)
reps = sa.Table(
    "hub_reps", meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("rep_key", sa.String(200), nullable=False, unique=True),
    sa.Column("session_id", sa.Integer, sa.ForeignKey("hub_sessions.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("station", sa.String(32), nullable=False),
    *_columns(RepRecord, REP_SCALARS, indexed=("started_at",)),
    sa.Column("trace", sa.Text, nullable=False, server_default="[]"),
    sa.Column("borderline", sa.Text, nullable=False, server_default="[]"),
    sa.Column("received_at", sa.Double, nullable=False),
)
faults = sa.Table(
    "hub_faults", meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("rep_id", sa.Integer, sa.ForeignKey("hub_reps.id", ondelete="CASCADE"), nullable=False, index=True),
    *_columns(FaultRecord, FAULT_FIELDS),
)
settings_table = sa.Table(
    "hub_settings", meta,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)


@dataclass(frozen=True)
class Stored:
    """What one ingest did: sessions new to the hub, and (station, id, ended_at) of each new rep
    (none when it was a second delivery); and what the hub now holds of what came in, to confirm to
    the stations: (station, rep_key) of every rep, new or not, and (station, session_key, ended_at
    as stored) of every session."""

    sessions: int = 0
    new_reps: tuple[tuple[str, int, float, float], ...] = ()  # (station, id, ended_at, started_at)
    reps_held: tuple[tuple[str, str], ...] = ()
    sessions_held: tuple[tuple[str, str, Optional[float]], ...] = ()


def redact(url: str) -> str:
    """The database URL without its password, for logs and the health answer."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable database url>"


def _default(record: type[Record], name: str) -> Any:
    """A field a message may leave out takes the record's default (a rep from a station older than
    the field); a required one missing is the message's error, raised as such."""
    field = record.model_fields[name]
    if field.is_required():
        raise KeyError(name)
    return field.get_default(call_default_factory=True)


def _num(value: Any) -> Optional[float]:
    if value is None or isinstance(value, bool):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


class HubStore:
    """Every station's reps in one database. Thread-safe (a connection pool); one per process."""

    readonly = True  # to the page: the hub mirrors the stations, which own their reps

    def __init__(self, url: str, create: bool = True):
        self.url = url
        self.path = redact(url)
        try:
            parsed = make_url(url)
        except Exception as err:
            raise StorageError(f"hub.database_url is not a database URL ({err}); use sqlite:///PATH or "
                               "postgresql+psycopg://user:password@host/dbname") from None
        self.dialect = parsed.get_backend_name()
        if self.dialect not in ("sqlite", "postgresql"):
            raise StorageError(f"hub.database_url: {self.dialect} is not supported; use sqlite:/// or postgresql+psycopg://")
        if self.dialect == "postgresql" and parsed.get_driver_name() != "psycopg":
            parsed = parsed.set(drivername="postgresql+psycopg")
        self._insert = sqlite.insert if self.dialect == "sqlite" else postgresql.insert
        kwargs: dict[str, Any] = {"future": True}
        if self.dialect == "sqlite":
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 5}
        else:
            kwargs.update(pool_pre_ping=True, pool_size=4, max_overflow=4)
        try:
            self._engine = sa.create_engine(parsed, **kwargs)
        except ModuleNotFoundError as err:
            raise StorageError(f"hub.database_url needs the {err.name} driver: pip install 'hinge-station[hub]' "
                               "(deploy/install.sh --hub does)") from None
        if self.dialect == "sqlite":
            sa.event.listen(self._engine, "connect", _sqlite_pragmas)
        self._lock = threading.Lock()  # one writer at a time: SQLite allows no more
        try:
            if create:
                meta.create_all(self._engine)
                with self._engine.begin() as db:
                    db.execute(self._insert(settings_table).values(key="schema_version", value=str(SCHEMA_VERSION))
                               .on_conflict_do_nothing(index_elements=["key"]))
                self._migrate()
        except sa.exc.SQLAlchemyError as err:
            raise StorageError(f"hub database {self.path}: {_reason(err)}") from None

    def _migrate(self) -> None:
        """Bring a database an older hub made up to this schema, one step per transaction, so a hub
        upgraded in place keeps every rep it held (create_all adds missing tables, never columns)."""
        with self._engine.begin() as db:
            version = int(db.execute(sa.select(settings_table.c.value)
                                     .where(settings_table.c.key == "schema_version")).scalar_one())
        for number, statements in MIGRATIONS:
            if number <= version:
                continue
            with self._engine.begin() as db:
                for statement in statements:
                    db.execute(sa.text(statement))
                db.execute(settings_table.update().where(settings_table.c.key == "schema_version")
                           .values(value=str(number)))
            log.info("hub database %s: schema version %d", self.path, number)

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> "HubStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- writes -----------------------------------------------------------------------------

    def ingest(self, sessions_in: Iterable[dict[str, Any]] = (), reps_in: Iterable[dict[str, Any]] = (),
               received_at: Optional[float] = None) -> Stored:
        """Store validated session and rep payloads (plain dicts) in one transaction.

        A session seen again updates its end and athlete (a session is published when it starts
        and when it ends); a rep seen again is ignored. A rep whose session has not arrived yet
        gets a placeholder session that the session message fills in later.
        """
        now = time.time() if received_at is None else received_at
        new_sessions, new_reps = 0, []
        reps_held: list[tuple[str, str]] = []
        sessions_held: list[tuple[str, str, Optional[float]]] = []
        try:
            with self._lock, self._engine.begin() as db:
                for s in sessions_in:
                    new_sessions += self._upsert_session(db, s, now)
                    ended = db.execute(sa.select(sessions.c.ended_at)
                                       .where(sessions.c.session_key == s["session_key"])).scalar_one()
                    sessions_held.append((s["station"], s["session_key"], ended))
                for r in reps_in:
                    rep_id = self._insert_rep(db, r, now)
                    if rep_id is not None:
                        new_reps.append((r["station"], rep_id, float(r["ended_at"]), float(r["started_at"])))
                    reps_held.append((r["station"], r["rep_key"]))
        except (sa.exc.IntegrityError, sa.exc.DataError) as err:
            raise BadRecordError(f"hub database {self.path}: record refused ({_reason(err)})") from None
        except sa.exc.SQLAlchemyError as err:
            raise StorageError(f"hub database {self.path}: {_reason(err)}") from None
        return Stored(new_sessions, tuple(new_reps), tuple(reps_held), tuple(sessions_held))

    def _upsert_session(self, db: sa.Connection, s: dict[str, Any], now: float) -> int:
        values = dict(session_key=s["session_key"], station=s["station"], received_at=now,
                      **{name: s.get(name) for name in SESSION_FIELDS})
        values.update(started_at=float(s["started_at"]), ended_at=_num(s.get("ended_at")), source=s.get("source") or "")
        stmt = self._insert(sessions).values(**values)
        excluded = stmt.excluded
        stmt = stmt.on_conflict_do_update(index_elements=["session_key"], set_={
            # A late copy of the start message must not reopen an ended session or clear its label.
            "ended_at": sa.func.coalesce(excluded.ended_at, sessions.c.ended_at),
            "athlete": sa.func.coalesce(excluded.athlete, sessions.c.athlete),
            "profile": excluded.profile, "started_at": excluded.started_at, "source": excluded.source,
        })
        existed = db.execute(sa.select(sessions.c.id).where(sessions.c.session_key == s["session_key"])).first()
        db.execute(stmt)
        return 0 if existed else 1

    def _session_id(self, db: sa.Connection, r: dict[str, Any], now: float) -> int:
        key = r["session_key"]
        row = db.execute(sa.select(sessions.c.id).where(sessions.c.session_key == key)).first()
        if row is not None:
            return int(row[0])
        db.execute(self._insert(sessions).values(
            session_key=key, station=r["station"], started_at=float(r["started_at"]), ended_at=None,
            profile="", athlete=None, source="", received_at=now,
        ).on_conflict_do_nothing(index_elements=["session_key"]))
        return int(db.execute(sa.select(sessions.c.id).where(sessions.c.session_key == key)).scalar_one())

    def _insert_rep(self, db: sa.Connection, r: dict[str, Any], now: float) -> Optional[int]:
        session_id = self._session_id(db, r, now)
        values = dict(rep_key=r["rep_key"], session_id=session_id, station=r["station"], received_at=now,
                      **{name: r[name] if name in r else _default(RepRecord, name) for name in REP_SCALARS},
                      trace=json.dumps(r.get("trace") or []), borderline=json.dumps(r.get("borderline") or []))
        values.update({name: _num(r.get(name)) for name in MEASUREMENTS})
        inserted = db.execute(self._insert(reps).values(**values).on_conflict_do_nothing(index_elements=["rep_key"])
                              .returning(reps.c.id)).first()
        if inserted is None:
            return None
        rows = [dict(rep_id=inserted[0], **{name: f.get(name) for name in FAULT_FIELDS}) for f in r.get("faults") or ()]
        if rows:
            db.execute(faults.insert(), rows)
        return int(inserted[0])

    # --- reads (the page's) -------------------------------------------------------------------

    def _rows(self, stmt: Any) -> list[dict[str, Any]]:
        try:
            with self._engine.connect() as db:
                return [dict(r._mapping) for r in db.execute(stmt)]
        except sa.exc.SQLAlchemyError as err:
            raise StorageError(f"hub database {self.path}: {_reason(err)}") from None

    def _scalar(self, stmt: Any) -> Any:
        try:
            with self._engine.connect() as db:
                return db.execute(stmt).scalar()
        except sa.exc.SQLAlchemyError as err:
            raise StorageError(f"hub database {self.path}: {_reason(err)}") from None

    @property
    def schema_version(self) -> int:
        value = self._scalar(sa.select(settings_table.c.value).where(settings_table.c.key == "schema_version"))
        return int(value or 0)

    @staticmethod
    def _where(flt: SessionFilter) -> list[Any]:
        clauses = []
        if flt.since is not None:
            clauses.append(sessions.c.started_at >= flt.since)
        if flt.until is not None:
            clauses.append(sessions.c.started_at < flt.until)
        if flt.profile:
            clauses.append(sessions.c.profile == flt.profile)
        if getattr(flt, "station", None):
            clauses.append(sessions.c.station == flt.station)
        if getattr(flt, "athlete", None):
            clauses.append(sessions.c.athlete == flt.athlete)
        return clauses

    def count_sessions(self, flt: SessionFilter = SessionFilter()) -> int:
        return int(self._scalar(sa.select(sa.func.count()).select_from(sessions).where(*self._where(flt))))

    def list_sessions(self, flt: SessionFilter = SessionFilter(), limit: int = 20, offset: int = 0) -> list[dict[str, Any]]:
        """Sessions newest first with rep counts, clean reps and per-fault counts (as RepStore's)."""
        page = (sa.select(sessions).where(*self._where(flt))
                .order_by(sessions.c.started_at.desc(), sessions.c.id.desc()).limit(limit).offset(offset).subquery())
        # A rep whose verdict is "clean" (device/analysis/vocabulary.py: rep_verdict), as RepStore counts it.
        clean = sa.and_(reps.c.id.is_not(None), reps.c.judged, reps.c.borderline == "[]", reps.c.movement != "squat",
                        ~sa.exists().where(faults.c.rep_id == reps.c.id))
        stmt = (sa.select(page, sa.func.count(reps.c.id).label("reps"),
                          sa.func.sum(sa.case((clean, 1), else_=0)).label("clean_reps"),
                          sa.func.max(reps.c.ended_at).label("last_rep_at"))
                .select_from(page.outerjoin(reps, reps.c.session_id == page.c.id))
                .group_by(*page.c).order_by(page.c.started_at.desc(), page.c.id.desc()))
        rows = self._rows(stmt)
        counts: dict[int, dict[str, int]] = {r["id"]: {} for r in rows}
        if counts:
            for f in self._rows(sa.select(reps.c.session_id, faults.c.name, sa.func.count().label("n"))
                                .select_from(faults.join(reps, reps.c.id == faults.c.rep_id))
                                .where(reps.c.session_id.in_(list(counts)))
                                .group_by(reps.c.session_id, faults.c.name)):
                counts[f["session_id"]][f["name"]] = int(f["n"])
        for r in rows:
            r["reps"] = int(r["reps"])
            r["clean_reps"] = int(r["clean_reps"] or 0)
            r["fault_counts"] = counts[r["id"]]
        return rows

    def get_session(self, session_id: int) -> Optional[dict[str, Any]]:
        rows = self._rows(sa.select(sessions).where(sessions.c.id == session_id))
        return rows[0] if rows else None

    def _reps(self, *where: Any, limit: Optional[int] = None) -> list[dict[str, Any]]:
        stmt = sa.select(reps).where(*where).order_by(reps.c.started_at, reps.c.id)
        if limit is not None:
            stmt = stmt.limit(limit)
        found = self._rows(stmt)
        by_id = {r["id"]: r for r in found}
        for r in found:
            r["trace"] = json.loads(r["trace"])
            r["borderline"] = json.loads(r["borderline"])
            r["lockout_reached"] = bool(r["lockout_reached"])
            r["judged"] = bool(r["judged"])
            r["timings"] = {}
            r["faults"], r["corrections"] = [], []
        for chunk in chunks(list(by_id), 500):
            for f in self._rows(sa.select(faults).where(faults.c.rep_id.in_(chunk)).order_by(faults.c.at, faults.c.id)):
                by_id[f["rep_id"]]["faults"].append(f)
        return found

    def session_reps(self, session_id: int) -> list[dict[str, Any]]:
        return self._reps(reps.c.session_id == session_id)

    def reps_page(self, since: float, until: float, after: tuple[float, int], limit: int) -> list[dict[str, Any]]:
        """As RepStore.reps_page: an export read a page at a time."""
        start, rep_id = after
        later = sa.or_(reps.c.started_at > start, sa.and_(reps.c.started_at == start, reps.c.id > rep_id)) \
            if math.isfinite(start) else sa.true()
        return self._reps(reps.c.started_at >= since, reps.c.started_at < until, later, limit=limit)

    def reps_between(self, since: float, until: float) -> list[dict[str, Any]]:
        return self._reps(reps.c.started_at >= since, reps.c.started_at < until)

    def get_rep(self, rep_id: int) -> Optional[dict[str, Any]]:
        found = self._reps(reps.c.id == rep_id)
        return found[0] if found else None

    def find_rep(self, rep_key: str) -> Optional[int]:
        return self._scalar(sa.select(reps.c.id).where(reps.c.rep_key == rep_key))

    def rep_count(self, session_id: Optional[int] = None) -> int:
        stmt = sa.select(sa.func.count()).select_from(reps)
        if session_id is not None:
            stmt = stmt.where(reps.c.session_id == session_id)
        return int(self._scalar(stmt))

    def rep_keys(self, station: Optional[str] = None) -> list[str]:
        stmt = sa.select(reps.c.rep_key).order_by(reps.c.id)
        if station is not None:
            stmt = stmt.where(reps.c.station == station)
        return [r["rep_key"] for r in self._rows(stmt)]

    def reps_since(self, after_id: int) -> list[dict[str, Any]]:
        """(id, rep_key, ended_at) of reps stored after `after_id`: what the benchmark watches (a station
        commits a rep the moment it ends)."""
        return self._rows(sa.select(reps.c.id, reps.c.rep_key, reps.c.ended_at)
                          .where(reps.c.id > after_id).order_by(reps.c.id))

    def reps_per_station(self, since: float) -> dict[str, int]:
        """How many reps started since `since` the hub holds, per station."""
        rows = self._rows(sa.select(reps.c.station, sa.func.count().label("n")).where(reps.c.started_at >= since)
                          .group_by(reps.c.station))
        return {r["station"]: int(r["n"]) for r in rows}

    def profiles_used(self) -> list[str]:
        return [r["profile"] for r in self._rows(sa.select(sessions.c.profile).distinct().order_by(sessions.c.profile))]

    def stations(self) -> list[str]:
        return [r["station"] for r in self._rows(sa.select(sessions.c.station).distinct().order_by(sessions.c.station))]

    def athlete_names(self) -> list[str]:
        return [r["athlete"] for r in self._rows(sa.select(sessions.c.athlete).distinct()
                                                  .where(sessions.c.athlete.is_not(None)).order_by(sessions.c.athlete))]

    def integrity_check(self) -> str:
        if self.dialect == "sqlite":
            return str(self._scalar(sa.text("PRAGMA integrity_check")))
        self._scalar(sa.select(sa.func.count()).select_from(reps))
        return "ok"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")  # a rep the hub acknowledged survives a power cut
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def _reason(err: Exception) -> str:
    orig = getattr(err, "orig", None)
    return str(orig or err).strip().splitlines()[0]
