"""The MQTT contract between a station and whoever listens (the hub, Home Assistant): every topic
and every payload, in this one place. Stations publish their reps, sessions and state; the hub and
Home Assistant read them; the hub answers each station with what it has stored; Home Assistant may
switch a station's buzzer and choose its drill.

Topics (`<prefix>` from `[mqtt] topic_prefix`, default ``hinge``; `<sid>` the station id,
``[a-z0-9_-]{1,32}``, never ``hub`` or ``homeassistant``: those are the other users' names):

==================================  ======  ========  ===  ======================================================================
topic                               from    retained  QoS  payload
==================================  ======  ========  ===  ======================================================================
<prefix>/<sid>/availability         sid     yes       1    ``online`` / ``offline`` (plain text; the last will is ``offline``)
<prefix>/<sid>/state                sid     yes       0    StatePayload: what the station sees now, who is up, drill, reps, buzzer (best effort)
<prefix>/<sid>/session              sid     no        1    SessionPayload: when a session starts and again when it ends (outbox)
<prefix>/<sid>/rep                  sid     no        1    RepPayload: one committed rep, its measurements and faults (outbox)
<prefix>/<sid>/alert                sid     no        0    AlertPayload: a fault that buzzed, as it happened (best effort)
<prefix>/<sid>/stored               hub     no        1    StoredPayload: the station's reps and sessions the hub has stored
<prefix>/<sid>/buzzer/set           HA      no        1    command to the station: ``ON`` / ``OFF`` (nothing else is obeyed)
<prefix>/<sid>/drill/set            HA      no        1    command to the station: one of its drills' ids (``dowel_hinge``, plain UTF-8)
<prefix>/hub/availability           hub     yes       1    ``online`` / ``offline``: whether the hub is reading (its last will: offline)
homeassistant/<c>/<sid>/<o>/config  sid     yes       1    Home Assistant discovery (`<c>` component, `<o>` object id)
==================================  ======  ========  ===  ======================================================================

The broker's ACL (deploy/mosquitto/hinge.acl) holds each user to its column: a station writes only
its own topics, the hub writes only `stored` and its availability, Home Assistant only the buzzer
and drill commands; a station reads only its own commands.

A command is obeyed only as the station's own page would obey it (device/station/broker_link.py):
a drill command names one of the station's drills (its profiles, what its page offers) and goes
through the same change as the page's; its effect shows in the retained state's ``drill``. A
retained command (stale), a flood, and any other payload are ignored and logged, never an error.

Every JSON payload carries ``schema`` (SCHEMA_VERSION) and ``station``; a reader refuses a payload
past MAX_PAYLOAD_BYTES, one that is not JSON, one of another schema version, or one whose
``station`` is not the station in its topic (`decode`). The records inside (a rep, a session, a
fault) are device/contract/records.py's, with every number bounded and every fault name one of the
vocabulary's (device/analysis/vocabulary.py).

**Nothing lost.** A rep or session leaves the station's outbox only when the hub says it has stored
it (its key in a StoredPayload on the station's `stored` topic), not when the broker took it: a
broker's queue for an absent hub has a limit, and a hub may receive a message and fail to store it.
A station sends its outbox oldest first, a window at a time, and sends again, with backoff, what the
hub has not confirmed; it waits while the hub's availability says ``offline`` and sends again soon
after it says ``online``. So a reader sees a rep or session at least once and may see it many times:
it stores each once, by its key, and confirms every key it holds, also a second time. Keys are made
where the rep is committed and never reused: ``session_key`` = ``<sid>:<store_uuid>:<session id>``
and ``rep_key`` = ``<sid>:<store_uuid>:<rep id>``, where store_uuid is a random id made once per
station database, so a replaced SD card (ids starting again at 1) cannot collide with the old card's keys.

A session message is the session as it stands when it is sent, not as it was when it was queued:
one queued at the start but sent after the session ended (the broker was away, or the set was
short) already carries ``ended_at``. So a reader merges session messages by key and never lets a
later message without an end reopen an ended session; and the hub confirms a session with the end
it stored, so a station lets go of a session only once the hub has it as it stands now.

The state and alerts go at QoS 0: they are replaced by the next one anyway, and a broker never
queues them for a reader that is away (they would crowd out reps).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from device.contract.records import Count, FaultName, Name, RepRecord, Seconds, SessionRecord, Text

SCHEMA_VERSION: Final = 1  # Final: typed Literal[1], the one value Payload.schema_ accepts
DEFAULT_PREFIX = "hinge"
DISCOVERY_PREFIX = "homeassistant"
MAX_PAYLOAD_BYTES = 64 * 1024
MAX_STORED_KEYS = 1000  # keys one StoredPayload confirms (the hub stores at most 500 messages per batch)

STATION_ID_PATTERN = r"^[a-z0-9_-]{1,32}$"
HUB = "hub"  # the hub's broker user and its availability topic's level: no station may take the name
RESERVED_IDS = (HUB, DISCOVERY_PREFIX)  # the broker users that are not stations (deploy/mosquitto/hinge.acl)
PREFIX_PATTERN = r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$"  # no wildcards, no empty levels
_KEY_PATTERN = r"^[a-z0-9_-]{1,32}:[0-9a-f]{32}:[1-9][0-9]{0,17}$"  # an id below 10**18: it fits every SQL integer

ONLINE = "online"
OFFLINE = "offline"
BUZZER_ON = "ON"
BUZZER_OFF = "OFF"

# What a station can be doing, in the coach's words (StatePayload.state).
NOBODY = "nobody"
IN_VIEW = "in_view"
IN_REP = "in_rep"
TURN_SIDEWAYS = "turn_sideways"
CAMERA_LOST = "camera_lost"
STATES = (NOBODY, IN_VIEW, IN_REP, TURN_SIDEWAYS, CAMERA_LOST)

# The topic kinds under <prefix>/<sid>/ (the last levels of the topic).
AVAILABILITY = "availability"
STATE = "state"
SESSION = "session"
REP = "rep"
ALERT = "alert"
STORED = "stored"
BUZZER_SET = "buzzer/set"
DRILL_SET = "drill/set"
COMMANDS = (BUZZER_SET, DRILL_SET)  # what Home Assistant may send a station
KINDS = (AVAILABILITY, STATE, SESSION, REP, ALERT, STORED, *COMMANDS)
STATION_KINDS = (AVAILABILITY, STATE, SESSION, REP, ALERT)  # what a station itself publishes
HUB_READS = (AVAILABILITY, STATE, SESSION, REP)  # what the hub subscribes to (alerts are Home Assistant's)

StationId = Annotated[str, Field(pattern=STATION_ID_PATTERN)]
Key = Annotated[str, Field(pattern=_KEY_PATTERN, max_length=80)]


def is_station_id(name: str) -> bool:
    return bool(re.fullmatch(STATION_ID_PATTERN, name)) and name not in RESERVED_IDS


def session_key(station: str, store_uuid: str, session_id: int) -> str:
    return f"{station}:{store_uuid}:{int(session_id)}"


def rep_key(station: str, store_uuid: str, rep_id: int) -> str:
    return f"{station}:{store_uuid}:{int(rep_id)}"


def key_id(key: str, station: str, store_uuid: str) -> Optional[int]:
    """The row id in a key this station's database made (None for another station's or database's key)."""
    head, _, number = key.rpartition(":")
    return int(number) if head == f"{station}:{store_uuid}" and number.isdigit() else None


@dataclass(frozen=True)
class Topics:
    """One station's topics under a prefix."""

    prefix: str
    station: str

    def __post_init__(self) -> None:
        if not re.fullmatch(STATION_ID_PATTERN, self.station):
            raise ValueError(f"station id {self.station!r} must match {STATION_ID_PATTERN}")
        if self.station in RESERVED_IDS:
            raise ValueError(f"station id {self.station!r} is the broker's {self.station} user, not a station: "
                             "give the station another name")
        if not re.fullmatch(PREFIX_PATTERN, self.prefix):
            raise ValueError(f"topic prefix {self.prefix!r} must be letters, digits, '_' or '-' levels joined by '/'")

    def topic(self, kind: str) -> str:
        if kind not in KINDS:
            raise ValueError(f"unknown topic kind {kind!r}")
        return f"{self.prefix}/{self.station}/{kind}"

    @property
    def availability(self) -> str:
        return self.topic(AVAILABILITY)

    @property
    def state(self) -> str:
        return self.topic(STATE)

    @property
    def session(self) -> str:
        return self.topic(SESSION)

    @property
    def rep(self) -> str:
        return self.topic(REP)

    @property
    def alert(self) -> str:
        return self.topic(ALERT)

    @property
    def stored(self) -> str:
        return self.topic(STORED)

    @property
    def buzzer_set(self) -> str:
        return self.topic(BUZZER_SET)

    @property
    def drill_set(self) -> str:
        return self.topic(DRILL_SET)

    @property
    def hub_availability(self) -> str:
        return hub_availability(self.prefix)

    def discovery(self, component: str, object_id: str) -> str:
        return f"{DISCOVERY_PREFIX}/{component}/{self.station}/{object_id}/config"


def hub_subscriptions(prefix: str) -> list[str]:
    """What the hub reads: every station's reps, sessions, state and availability (not the alerts,
    which are Home Assistant's, nor its own `stored` answers)."""
    return [f"{prefix}/+/{kind}" for kind in HUB_READS]


def hub_availability(prefix: str) -> str:
    return f"{prefix}/{HUB}/{AVAILABILITY}"


def parse_topic(prefix: str, topic: str) -> Optional[tuple[str, str]]:
    """(station, kind) of a topic under `prefix`, or None when it is not one of the contract's
    station topics (the hub's own availability is not: `hub` is no station)."""
    head = prefix + "/"
    if not topic.startswith(head):
        return None
    station, _, kind = topic[len(head):].partition("/")
    if not is_station_id(station) or kind not in KINDS:
        return None
    return station, kind


class Payload(BaseModel):
    # Strict both ways: a field this schema version does not know is refused, not ignored, and NaN
    # or infinity (not JSON) never goes out or comes in.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True, populate_by_name=True)

    schema_: Literal[1] = Field(SCHEMA_VERSION, alias="schema")
    station: StationId

    def to_json(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()


class StatePayload(Payload):
    at: Seconds
    state: Literal["nobody", "in_view", "in_rep", "turn_sideways", "camera_lost"]
    drill: Name
    reps_this_session: Count
    reps_today: Count
    last_fault: Optional[FaultName] = None
    clean_share_today: Optional[float] = Field(None, ge=0, le=1, description="Clean reps / reps today; None before the first.")
    buzzer_on: bool
    waiting: Optional[Count] = Field(None, description="Reps and sessions the hub has not confirmed yet (the outbox); "
                                     "None from a station without [mqtt].")
    athlete: Optional[Annotated[str, Field(max_length=100)]] = Field(
        None, description="Who is up: the athlete the station's page named for the running or next session; None: "
                          "nobody named (or a station older than this field).")


class SessionPayload(Payload, SessionRecord):
    """A SessionRecord and its key; its drill goes as ``drill``."""

    session_key: Key


class RepPayload(Payload, RepRecord):
    """A RepRecord and its keys."""

    rep_key: Key
    session_key: Key


class AlertPayload(Payload):
    at: Seconds
    fault: FaultName
    cue: Text
    session_key: Optional[Key] = None


class StoredSession(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)

    session_key: Key
    ended_at: Optional[Seconds] = None  # the end the hub holds (None: still open there)


class StoredPayload(Payload):
    """The hub's answer on a station's `stored` topic: these of the station's reps and sessions are in
    its database (committed), so the station may let them go."""

    reps: list[Key] = Field(default_factory=list, max_length=MAX_STORED_KEYS)
    sessions: list[StoredSession] = Field(default_factory=list, max_length=MAX_STORED_KEYS)


MODELS: dict[str, type[Payload]] = {STATE: StatePayload, SESSION: SessionPayload, REP: RepPayload, ALERT: AlertPayload,
                                    STORED: StoredPayload}


class PayloadError(ValueError):
    """A message a reader must drop; `reason` is one word for counting (too_big, not_json,
    unknown_schema, wrong_station, invalid, unknown_topic)."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def decode(prefix: str, topic: str, payload: bytes) -> tuple[str, str, Union[Payload, str]]:
    """Validate one received message: (station, kind, payload model — or the plain string for
    availability and the commands). Raises PayloadError with the reason to drop it."""
    parsed = parse_topic(prefix, topic)
    if parsed is None:
        raise PayloadError("unknown_topic", topic[:200])
    station, kind = parsed
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise PayloadError("too_big", f"{len(payload)} bytes on {topic} (limit {MAX_PAYLOAD_BYTES})")
    if kind in (AVAILABILITY, BUZZER_SET):
        text = payload.decode("utf-8", errors="replace")
        allowed = (ONLINE, OFFLINE) if kind == AVAILABILITY else (BUZZER_ON, BUZZER_OFF)
        if text not in allowed:
            raise PayloadError("invalid", f"{topic}: {text[:40]!r} is not one of {allowed}")
        return station, kind, text
    if kind == DRILL_SET:
        drill = drill_command(payload)
        if drill is None:
            raise PayloadError("invalid", f"{topic}: {payload[:40]!r} is not a drill id")
        return station, kind, drill
    try:
        data: Any = json.loads(payload)
    except ValueError as err:
        raise PayloadError("not_json", f"{topic}: {err}") from None
    if not isinstance(data, dict):
        raise PayloadError("not_json", f"{topic}: not a JSON object")
    if data.get("schema") != SCHEMA_VERSION:
        raise PayloadError("unknown_schema", f"{topic}: schema {str(data.get('schema'))[:20]!r}, this reader knows {SCHEMA_VERSION}")
    if data.get("station") != station:
        raise PayloadError("wrong_station", f"{topic}: payload says station {str(data.get('station'))[:40]!r}")
    try:
        return station, kind, MODELS[kind].model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise PayloadError("invalid", f"{topic}: {where}: {first['msg']}") from None


def buzzer_command(payload: bytes) -> Optional[bool]:
    """True for ``ON``, False for ``OFF``, None for anything else (ignored)."""
    if payload == BUZZER_ON.encode():
        return True
    if payload == BUZZER_OFF.encode():
        return False
    return None


MAX_DRILL_ID = 64  # a drill's id is its profile's file name (device/analysis/profiles/<id>.toml)


def drill_command(payload: bytes) -> Optional[str]:
    """The drill id a drill command names, or None for a payload that cannot be one (empty, longer
    than MAX_DRILL_ID bytes, not UTF-8, control characters or surrounding blanks). Whether the
    station has that drill is the station's to say."""
    if not payload or len(payload) > MAX_DRILL_ID:
        return None
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text if text.isprintable() and text == text.strip() else None
