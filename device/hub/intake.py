"""What the hub does with one received message: validate it against the contract
(device/contract/topics.py), check the station against the allow-list, and sort it into floor
updates and rows to store — or a drop with its reason. Plain data in, plain data out: no broker,
no database, so every hostile payload can be tried here alone."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Optional

from device.contract import topics

log = logging.getLogger(__name__)

NOT_ALLOWED = "not_allowed"  # a station outside the hub's allow-list
REFUSED = "refused"  # valid by the contract, but the database would not take it
ERROR = "error"  # anything else that went wrong with this one message (the database driver, a bug): logged with it
REASONS = ("too_big", "not_json", "unknown_schema", "wrong_station", "invalid", "unknown_topic", NOT_ALLOWED, REFUSED,
           ERROR)


@dataclass
class Sorted:
    """A batch of messages sorted by what happens to them."""

    sessions: list[dict[str, Any]] = field(default_factory=list)
    reps: list[dict[str, Any]] = field(default_factory=list)
    availability: list[tuple[str, bool]] = field(default_factory=list)
    states: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    dropped: list[tuple[str, str]] = field(default_factory=list)  # (reason, detail)


class Intake:
    """Validates messages under one topic prefix for an allow-list (None or empty: any station)."""

    def __init__(self, prefix: str, allowed: Optional[set[str]] = None):
        self.prefix = prefix
        self.allowed = frozenset(allowed or ())

    def sort(self, messages: list[tuple[str, bytes]], into: Optional[Sorted] = None) -> Sorted:
        out = into or Sorted()
        for topic, payload in messages:
            try:
                self._sort_one(topic, payload, out)
            except topics.PayloadError as err:
                out.dropped.append((err.reason, str(err)))
            except Exception as err:  # one message must never stop the others
                out.dropped.append((ERROR, f"{topic[:200]}: {type(err).__name__}: {err}"))
        return out

    def _sort_one(self, topic: str, payload: bytes, out: Sorted) -> None:
        if topic == topics.hub_availability(self.prefix):
            return  # the hub's own (its subscription to every station's availability includes it)
        station, kind, value = topics.decode(self.prefix, topic, payload)
        if self.allowed and station not in self.allowed:
            out.dropped.append((NOT_ALLOWED, f"station {station!r} on {topic} is not in hub.stations"))
            return
        keys = [getattr(value, name) for name in ("rep_key", "session_key") if getattr(value, name, None)]
        if any(not key.startswith(station + ":") for key in keys):
            # A key is the station's own: another's would make the hub ignore that station's real row.
            out.dropped.append(("wrong_station", f"{topic}: a key of another station ({', '.join(keys)})"))
            return
        if kind == topics.AVAILABILITY:
            out.availability.append((station, value == topics.ONLINE))
        elif isinstance(value, str) or kind == topics.STORED:
            pass  # buzzer/set, a plain command, or the hub's own answer: nothing for the hub to keep
        elif kind == topics.STATE:
            out.states.append((station, value.model_dump()))
        elif kind == topics.SESSION:
            out.sessions.append(value.model_dump())
        elif kind == topics.REP:
            out.reps.append(value.model_dump())
        # alerts and buzzer commands are for the station and Home Assistant: the hub keeps
        # the faults with their reps and the station's state carries the last one.
