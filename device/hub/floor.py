"""The gym floor as the hub sees it now: each station's last state and whether it is online, from
the retained `state` and `availability` messages; how many of its reps started today the hub holds
(beside what the station says it made, so a gap shows); whether the hub itself has the broker (when
it has not, no station's state is news, and none is called offline for it); and what the hub
dropped and why.

Held in memory only: the broker keeps the retained messages, so a restarted hub gets the whole
floor back as soon as it subscribes. Every change bumps `version`, which is what the page's live
view waits on (the same pattern as device/station/live.py's LiveState).
"""
from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any, Optional

from device.contract.records import start_of_today


@dataclass(frozen=True)
class StationView:
    """One station on the floor."""

    station: str
    online: Optional[bool] = None  # None: no availability message seen yet
    state: Optional[dict[str, Any]] = None  # the last StatePayload, as a plain dict
    last_rep_id: Optional[int] = None  # the hub's id of its newest stored rep
    last_rep_at: Optional[float] = None
    reps_stored: int = 0  # reps this hub stored from it since the hub started
    stored_today: int = 0  # reps started today (the gym's day) that the hub holds from it
    seen_at: float = 0.0  # when the hub last heard from it (any message)


@dataclass(frozen=True)
class FloorSnapshot:
    version: int
    stations: tuple[StationView, ...]
    dropped: dict[str, int] = field(default_factory=dict)
    backlog: int = 0  # messages received and not yet stored
    broker: Optional[bool] = None  # the hub's own link: None before it first connected
    broker_since: float = 0.0  # when that last changed
    write_error: str = ""  # why the database refuses the hub's writes ('' while they go in)
    write_error_since: Optional[float] = None


class Floor:
    """Thread-safe: the hub's writer updates it, the page reads snapshots."""

    def __init__(self, clock: Any = time.time):
        self._clock = clock
        self._day = start_of_today(clock())
        self._broker: Optional[bool] = None
        self._broker_since = clock()
        self._write_error = ""
        self._write_error_since: Optional[float] = None
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._version = 0
        self._stations: dict[str, StationView] = {}
        self._dropped: Counter[str] = Counter()
        self._backlog = 0

    def _bump(self) -> None:
        self._version += 1
        self._changed.notify_all()

    def _update(self, station: str, **changes: Any) -> None:
        with self._lock:
            view = self._stations.get(station) or StationView(station)
            self._stations[station] = replace(view, seen_at=self._clock(), **changes)
            self._bump()

    def set_availability(self, station: str, online: bool) -> None:
        self._update(station, online=online)

    def set_state(self, station: str, state: dict[str, Any]) -> None:
        self._update(station, state=state)

    def rep_stored(self, station: str, rep_id: int, ended_at: float, started_at: float) -> None:
        with self._lock:
            self._roll_day()
            view = self._stations.get(station) or StationView(station)
            today = view.stored_today + (started_at >= self._day)
            self._stations[station] = replace(view, last_rep_id=rep_id, last_rep_at=ended_at,
                                              reps_stored=view.reps_stored + 1, stored_today=today, seen_at=self._clock())
            self._bump()

    def stored_today(self, counts: dict[str, int]) -> None:
        """What the database holds of today's reps per station, read once as the hub starts."""
        with self._lock:
            self._roll_day()
            for station, count in counts.items():
                view = self._stations.get(station) or StationView(station)
                self._stations[station] = replace(view, stored_today=count)
            self._bump()

    def _roll_day(self) -> None:
        day = start_of_today(self._clock())
        if day != self._day:  # a new day: nothing of it is stored yet
            self._day = day
            self._stations = {k: replace(v, stored_today=0) for k, v in self._stations.items()}

    def set_write_error(self, error: str) -> None:
        """The hub's writer: why the database refuses its writes now, or '' once one went in."""
        with self._lock:
            if bool(error) != bool(self._write_error):
                self._write_error_since = self._clock() if error else None
                self._bump()
            self._write_error = error

    def set_broker(self, connected: bool) -> None:
        with self._lock:
            if connected != self._broker:
                self._broker, self._broker_since = connected, self._clock()
                self._bump()

    def dropped(self, reason: str) -> None:
        with self._lock:
            self._dropped[reason] += 1
            self._bump()

    def set_backlog(self, backlog: int) -> None:
        with self._lock:
            if backlog != self._backlog:
                self._backlog = backlog
                self._bump()

    def snapshot(self) -> FloorSnapshot:
        with self._lock:
            self._roll_day()
            return FloorSnapshot(self._version, tuple(self._stations[k] for k in sorted(self._stations)),
                                 dict(self._dropped), self._backlog, self._broker, self._broker_since,
                                 self._write_error, self._write_error_since)

    def wait_change(self, seen: int, timeout: float) -> int:
        """Block until the version passes `seen` or `timeout` passes; returns the version."""
        with self._lock:
            self._changed.wait_for(lambda: self._version != seen, timeout)
            return self._version
