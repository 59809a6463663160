"""What is happening at the station right now, shared between the live loop (writer) and the page
(reader), plus the few controls the page may use on a running station.

The live loop never waits on the page: it replaces a snapshot under a short lock and bumps a
version number; the page polls `wait_for_change` from its own threads.
"""
from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Collection, Optional, Protocol


PREVIEW_INTEREST_S = 5.0


class StationState:
    IDLE = "idle"  # nobody in view
    TRACKING = "tracking"  # athlete in view, side-on
    FAULT = "fault"  # a fault was just raised
    TURN_SIDEWAYS = "turn_sideways"  # facing the camera
    OUT_OF_FRAME = "out_of_frame"  # feet or head cut off
    ERROR = "error"  # camera lost, model failed
    STOPPED = "stopped"


@dataclass(frozen=True)
class LiveSnapshot:
    state: str = StationState.STOPPED
    cue: str = ""
    profile: str = "hinge"
    session_id: Optional[int] = None
    session_reps: int = 0
    phase: str = ""
    last_fault: Optional[str] = None
    last_fault_cue: str = ""
    last_fault_at: Optional[float] = None  # Unix seconds
    last_rep_id: Optional[int] = None
    fps: float = 0.0
    buzzer_enabled: bool = True
    voice_enabled: Optional[bool] = None  # spoken cues on or off; None: no voice set up on this station
    athlete: Optional[str] = None  # who is up: the name the running and the next sessions carry
    hub_link: str = ""  # the gym's broker as the station reaches it ('' when MQTT is off): see broker_link
    logging_paused: bool = False
    storage: str = ""  # what is wrong with the rep log, in a line ('' when reps reach it)
    error: str = ""
    updated_at: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class LiveState:
    """Thread-safe holder of the latest snapshot and the latest annotated preview (JPEG bytes)."""

    def __init__(self, snapshot: Optional[LiveSnapshot] = None):
        self._cond = threading.Condition()
        self._snapshot = snapshot or LiveSnapshot()
        self._version = 0
        self._preview: Optional[bytes] = None
        self._preview_version = 0
        self._preview_wanted_until = 0.0

    def update(self, **changes: Any) -> None:
        with self._cond:
            new = replace(self._snapshot, **changes, updated_at=time.time())
            if new != replace(self._snapshot, updated_at=new.updated_at):
                self._version += 1
            self._snapshot = new
            self._cond.notify_all()

    def mirror(self, snapshot: LiveSnapshot) -> None:
        """Take another process's snapshot as it is (the page's copy of the live loop's state)."""
        with self._cond:
            if snapshot != self._snapshot:
                self._version += 1
                self._snapshot = snapshot
                self._cond.notify_all()

    def snapshot(self) -> tuple[int, LiveSnapshot]:
        with self._cond:
            return self._version, self._snapshot

    def wait_for_change(self, seen_version: int, timeout: float) -> tuple[int, LiveSnapshot]:
        """Block until the snapshot changes past `seen_version` or the timeout passes."""
        with self._cond:
            self._cond.wait_for(lambda: self._version != seen_version, timeout)
            return self._version, self._snapshot

    def set_preview(self, jpeg: bytes) -> None:
        with self._cond:
            self._preview = jpeg
            self._preview_version += 1

    def preview(self) -> tuple[int, Optional[bytes]]:
        """The latest preview; asking for it keeps previews coming for a few seconds."""
        self.want_preview()
        with self._cond:
            return self._preview_version, self._preview

    def latest_preview(self) -> tuple[int, Optional[bytes]]:
        """The latest preview, without asking for more (to pass it on)."""
        with self._cond:
            return self._preview_version, self._preview

    def want_preview(self) -> None:
        """Someone is watching: keep previews coming for a few seconds."""
        with self._cond:
            self._preview_wanted_until = time.monotonic() + PREVIEW_INTEREST_S

    def preview_wanted(self) -> bool:
        """The live loop draws and encodes previews only while someone is watching."""
        with self._cond:
            return time.monotonic() < self._preview_wanted_until


class StationControls(Protocol):
    """What the trainer page may change on a running station (the Station in device/station/loop.py)."""

    def set_profile(self, name: str) -> None: ...

    def set_buzzer_enabled(self, enabled: bool) -> None: ...

    def set_athlete(self, label: Optional[str]) -> None: ...

    def set_voice_enabled(self, enabled: bool) -> None: ...

    def set_cues(self, drill: str, cues: dict[str, str]) -> None:
        """The coach's own cue words for a drill (fault name -> words, "" for the drill's own), kept
        already by the page in the station's settings: the station says them from the next fault."""
        ...


class UnknownDrill(ValueError):
    """A drill this station has no profile for: the change is refused, the running drill stays."""


def change_drill(controls: StationControls, drills: Collection[str], name: str) -> None:
    """The one way a running station's drill changes, from its page or from Home Assistant: a drill
    the station has (`drills`, its profiles: what its page offers), then the station's own
    set_profile, which ends the running session (a session records one drill), remembers the
    choice in the rep log's settings and shows it in the live state (and so in the MQTT state).
    Raises UnknownDrill, naming the drills there are; nothing has changed then."""
    if name not in drills:
        raise UnknownDrill(f"unknown drill profile {name[:64]!r}; choose one of: {', '.join(drills) or 'none installed'}")
    controls.set_profile(name)
