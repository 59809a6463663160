"""The page's collaborators, handed in by whoever builds the app (`station run`, `station serve`,
tests), and the FastAPI dependencies that give routes their share of them."""
from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Annotated, Any, Callable, Mapping, Optional, Sequence

from pathlib import Path as PathType

from fastapi import Depends, HTTPException, Path, Request

from device.hub.floor import Floor
from device.analysis.ladder import Ladder, load_ladder
from device.station.live import LiveState, StationControls
from device.contract.records import RepReader
from device.station.store import RepStore
from web.auth import TokenGate
from web.schemas import MAX_ID

Checks = Callable[[], list[dict[str, Any]]]


@dataclass
class WebContext:
    store: RepReader  # a station's rep log (RepStore) or the hub's database (HubStore): what every page reads
    gate: TokenGate
    live: Optional[LiveState] = None
    controls: Optional[StationControls] = None
    profiles: Sequence[str] = ()
    checks: Optional[Checks] = None
    preview_fps: float = 3.0
    version: str = "dev"
    closing: threading.Event = field(default_factory=threading.Event)
    live_streams: int = 0  # open /api/live/events and /api/floor/events streams (the event loop's thread only)
    stream_clients: Counter[str] = field(default_factory=Counter)  # the same, per client address
    floor: Optional[Floor] = None  # the hub's page (gym mode): every station's live state
    ladder: Ladder = field(default_factory=load_ladder)  # the drill ladder mastery is judged on
    drill_titles: Mapping[str, str] = field(default_factory=dict)  # drill name -> its title, for the pages
    profiles_dir: Optional[PathType] = None  # the station's own drill profiles (analysis.profiles_dir)

    @property
    def gym(self) -> bool:
        return self.floor is not None

    @property
    def live_session_id(self) -> Optional[int]:
        return self.live.snapshot()[1].session_id if self.live is not None else None

    def require_live(self) -> LiveState:
        if self.live is None:
            raise HTTPException(409, "no station is running here: this page serves the rep log only (station serve)")
        return self.live

    @property
    def log(self) -> Optional[RepStore]:
        """The station's own rep log, where athletes, their ladder and corrections live; None on the hub's page."""
        return self.store if isinstance(self.store, RepStore) else None

    def require_log(self) -> RepStore:
        if self.log is None:
            raise HTTPException(409, "this is the hub's page: athletes, corrections and labels are made on a station's own page")
        return self.log

    def require_writable(self) -> RepStore:
        log = self.require_log()
        if log.readonly:
            raise HTTPException(409, "this page opened the rep log read-only (station serve); run `station serve --writable` "
                                     "or use the page of `station run` to make changes")
        return log


def get_context(request: Request) -> WebContext:
    return request.app.state.context


def readable(request: Request) -> WebContext:
    ctx = get_context(request)
    ctx.gate.check_read(request)
    return ctx


def writable(request: Request) -> WebContext:
    ctx = get_context(request)
    ctx.gate.check_write(request)
    ctx.require_writable()
    return ctx


Reader = Annotated[WebContext, Depends(readable)]
Writer = Annotated[WebContext, Depends(writable)]
SessionId = Annotated[int, Path(ge=1, le=MAX_ID, description="Session id.")]
RepId = Annotated[int, Path(ge=1, le=MAX_ID, description="Rep id.")]
CorrectionId = Annotated[int, Path(ge=1, le=MAX_ID, description="Correction id.")]
AthleteId = Annotated[int, Path(ge=1, le=MAX_ID, description="Athlete id.")]
