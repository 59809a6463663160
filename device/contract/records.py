"""The records every side keeps, defined once: what a rep, a session and a fault are (their fields,
types and bounds), the errors a store raises, the filter the page asks with, and `RepReader`, the one
interface the trainer page reads a store through.

Three places hold these records and all take their shape from here: the station's rep log
(device/station/store.py, SQLite), the MQTT payloads that carry them (device/contract/topics.py:
RepPayload is a RepRecord plus its keys) and the hub's database (device/hub/store.py, whose rep
columns are made from RepRecord's fields). tests/test_records.py checks that the station's SQLite
columns and the hub's tables hold every field named here, so a field added here and forgotten in
a store fails there, not in a gym.

"""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal, Optional, Protocol, Sequence

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from device.analysis.vocabulary import fault_from_name
from device.errors import StationError

# --- bounds -----------------------------------------------------------------------------------------

MAX_SECONDS = 4_102_444_800.0  # 2100-01-01 UTC: a rep time past it is a wrong clock or a forged message
MAX_REP_INDEX = 100_000  # reps in one session: a day of nonstop reps is ~20,000
MAX_COUNT = 10_000_000  # any other count a payload carries (reps today, reps waiting)
MAX_FAULTS = 32  # faults (and borderline faults) of one rep; the vocabulary has 8
MAX_TRACE = 600  # trace points of one rep, as the station downsamples it

Seconds = Annotated[float, Field(ge=0, le=MAX_SECONDS)]  # Unix seconds (UTC)
Name = Annotated[str, Field(min_length=1, max_length=64)]
Text = Annotated[str, Field(max_length=200)]
Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]


def _known_fault(name: str) -> str:
    """A fault name must be one of the vocabulary's (device/analysis/vocabulary.py): a name is shown
    on pages and written to exports, so a made-up one (`=cmd|...`) is refused where it comes in."""
    if fault_from_name(name) is None:
        raise ValueError(f"{name[:40]!r} is not a fault of the vocabulary")
    return name


FaultName = Annotated[Name, AfterValidator(_known_fault)]


# --- the records ------------------------------------------------------------------------------------


class Record(BaseModel):
    # Strict both ways: a field this schema does not know is refused, not ignored, and NaN or infinity
    # (neither SQL nor JSON has them) never goes out or comes in.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True, populate_by_name=True)


class FaultRecord(Record):
    """One fault of a rep, as the station raised it (or a borderline one: past its limit within the
    noise, logged, never buzzed): the measured value, its limit, how far past it, and the noise band."""

    name: FaultName
    cue: Text
    at: Seconds
    value: Optional[float] = None
    threshold: Optional[float] = None
    margin: Optional[float] = None
    noise: Optional[float] = None
    # What `value` measures (device/analysis/rules.py: Finding.quantity), for the page's words; None
    # from a station older than this field.
    quantity: Optional[Annotated[str, Field(max_length=40)]] = None


class SessionRecord(Record):
    """One session: who trained, which drill (`profile`; ``drill`` on the wire), from which source."""

    started_at: Seconds
    ended_at: Optional[Seconds] = None
    profile: Name = Field(alias="drill")
    athlete: Optional[Annotated[str, Field(max_length=100)]] = None
    source: Text = ""


class RepRecord(Record):
    """One committed rep: its times, its measurements (None where unknown), its faults and borderline
    faults, and its trace: (seconds from the rep's start, hip flexion, knee flexion)."""

    rep_index: int = Field(ge=1, le=MAX_REP_INDEX)
    started_at: Seconds
    bottom_at: Seconds
    ended_at: Seconds
    movement: Name
    side: Literal["left", "right"]
    lowering_s: Optional[float] = None
    rising_s: Optional[float] = None
    peak_hip_flexion_deg: Optional[float] = None
    knee_flexion_at_bottom_deg: Optional[float] = None
    trunk_angle_at_bottom_deg: Optional[float] = None
    hip_shift_at_bottom: Optional[float] = None
    hinge_ratio: Optional[float] = None
    lockout_reached: bool
    # False when the camera was not side-on, so no fault but a squat (read in 3D) was judged: such a
    # rep is never clean, and faulty only if it squatted. True by default: a station from before this
    # field judged every rep it sent.
    judged: bool = True
    faults: list[FaultRecord] = Field(default_factory=list, max_length=MAX_FAULTS)
    borderline: list[FaultRecord] = Field(default_factory=list, max_length=MAX_FAULTS)
    trace: list[tuple[float, Optional[float], Optional[float]]] = Field(default_factory=list, max_length=MAX_TRACE)


# The parts of a rep each store keeps in its own way: faults in their own table, the rest as JSON.
REP_LISTS = ("faults", "borderline", "trace")
# The rep's own columns (everything but the lists), and among them the measurements: optional numbers.
REP_SCALARS = tuple(name for name in RepRecord.model_fields if name not in REP_LISTS)
MEASUREMENTS = tuple(name for name, f in RepRecord.model_fields.items() if f.annotation == Optional[float])
FAULT_FIELDS = tuple(FaultRecord.model_fields)
SESSION_FIELDS = tuple(SessionRecord.model_fields)


def start_of_today(now: Optional[float] = None) -> float:
    """Local midnight: 'today' is the gym's day, for a station's count and the hub's alike."""
    moment = datetime.fromtimestamp(now if now is not None else time.time())
    return moment.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


def rep_fields(row: dict[str, Any]) -> dict[str, Any]:
    """A stored rep (a row as either store returns it) as RepRecord's fields: every field the record
    has, taken by name, so a field added to the record travels without another list to update."""
    fields = {name: row[name] for name in REP_SCALARS}
    for name in ("faults", "borderline"):
        fields[name] = [{key: fault.get(key) for key in FAULT_FIELDS} for fault in row[name][:MAX_FAULTS]]
    trace = row["trace"]
    if len(trace) > MAX_TRACE:  # never the case for a rep the station downsampled, but the record has a limit
        trace = trace[:: -(-len(trace) // MAX_TRACE)]
    fields["trace"] = [tuple(point) for point in trace]
    return fields


# --- what a store raises, and how the page asks -----------------------------------------------------


class StorageError(StationError):
    """A store cannot be written or read right now (disk full, read-only file system, a damaged
    file, a database server away): retrying later may help."""


class DiskFullError(StorageError):
    pass


class BadRecordError(StorageError):
    """This one record cannot be stored (a constraint failed); retrying will not help."""


@dataclass(frozen=True)
class SessionFilter:
    since: Optional[float] = None  # Unix seconds, inclusive
    until: Optional[float] = None  # Unix seconds, exclusive
    profile: Optional[str] = None
    athlete: Optional[str] = None
    station: Optional[str] = None  # the hub's: a station's own log holds one station
    athlete_id: Optional[int] = None  # a station's: the hub knows athletes by name only


class RepReader(Protocol):
    """What the trainer page reads, from a station's rep log (device/station/store.py: RepStore) or
    the hub's database (device/hub/store.py: HubStore) alike. Rows are plain dicts with the records'
    fields and the store's own integer ids (the page's links); a rep carries its `faults`,
    `borderline`, `trace`, `corrections` (the hub has none) and `timings`."""

    @property
    def path(self) -> object: ...

    @property
    def readonly(self) -> bool: ...

    @property
    def schema_version(self) -> int: ...

    def count_sessions(self, flt: SessionFilter = ...) -> int: ...

    def list_sessions(self, flt: SessionFilter = ..., limit: int = ..., offset: int = ...) -> list[dict[str, Any]]: ...

    def get_session(self, session_id: int) -> Optional[dict[str, Any]]: ...

    def session_reps(self, session_id: int) -> list[dict[str, Any]]: ...

    def reps_page(self, since: float, until: float, after: tuple[float, int], limit: int) -> list[dict[str, Any]]: ...

    def reps_between(self, since: float, until: float) -> list[dict[str, Any]]: ...

    def get_rep(self, rep_id: int) -> Optional[dict[str, Any]]: ...

    def rep_count(self, session_id: Optional[int] = None) -> int: ...

    def profiles_used(self) -> list[str]: ...

    def stations(self) -> list[str]:
        """The stations whose sessions this store holds (empty for a station's own log: one station)."""
        ...

    def athlete_names(self) -> list[str]: ...

    def integrity_check(self) -> str: ...


def chunks(items: Sequence[int], size: int) -> list[list[int]]:
    """`items` in lists of at most `size` (SQL's IN lists have a limit)."""
    return [list(items[i : i + size]) for i in range(0, len(items), size)]
