"""Fixtures for the trainer page tests: a real SQLite rep log, the app built on it, and the page
served on loopback with a real LiveState, as `station run` will serve it.

Test files import what they use: `from support.web import ...`.
"""
from __future__ import annotations

import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional

import pytest

from device.analysis.vocabulary import DEFAULT_CUES, Fault, FaultEvent
from device.commands.sample_log import PROFILES, fill_rep_log, synthetic_rep
from device.config import WebSettings
from device.station.live import LiveState, StationState
from device.station.store import RepStore
from web.app import create_app

TOKEN = "trainer-token-123"
CLIP = "bichraix_deadlift_side_good016.mp4"


@dataclass
class RecordingControls:
    """Stands in for the running station's controls: records calls and updates the live state
    the way the station does."""

    live: LiveState
    calls: list[tuple[str, object]] = field(default_factory=list)

    def set_profile(self, name: str) -> None:
        self.calls.append(("profile", name))
        self.live.update(profile=name)

    def set_buzzer_enabled(self, enabled: bool) -> None:
        self.calls.append(("buzzer", enabled))
        self.live.update(buzzer_enabled=enabled)

    def set_athlete(self, label: Optional[str]) -> None:
        self.calls.append(("athlete", label))
        self.live.update(athlete=label)

    def set_voice_enabled(self, enabled: bool) -> None:
        self.calls.append(("voice", enabled))
        self.live.update(voice_enabled=enabled)

    def set_cues(self, drill: str, cues: dict[str, str]) -> None:
        self.calls.append(("cues", (drill, dict(cues))))


def _fill(path: Path) -> None:
    # Synthetic on purpose: a month of history and edge cases (a non-finite ratio, an empty session) that
    # no clip produces on demand. The rep log the real pipeline writes from real clips is pipeline_db
    # (tests/support/pipeline.py), used by test_web_pipeline.py and the browser tests.
    rng = random.Random(20240611)
    now = time.time()
    with RepStore(path) as store:
        fill_rep_log(store, rng, sessions=23, reps_per_session=(3, 9), first_start=now - 30 * 86400, spacing_s=30 * 3600)
        walked_by = store.start_session(now - 3 * 3600, "hinge", "picamera")  # nobody did a rep
        store.end_session(walked_by, now - 3 * 3600 + 40)
        clip = store.start_session(now - 2 * 3600, "hinge", f"file:{CLIP}", "Sam")
        for i, style in enumerate(("clean", "squatted", "rounded", "clean"), start=1):
            store.add_rep(clip, synthetic_rep(rng, i, 2.0 + 6 * i, style), wall_offset=now - 2 * 3600)
        locked = synthetic_rep(rng, 5, 40.0, "locked_knees")
        locked.knee_flexion_at_bottom_deg, locked.hinge_ratio = 0.0, float("inf")  # knees dead straight
        store.add_rep(clip, locked, wall_offset=now - 2 * 3600)
        store.end_session(clip, now - 2 * 3600 + 60)
        live = store.start_session(now - 300, "dowel_hinge", "picamera")
        for i in (1, 2):
            store.add_rep(live, synthetic_rep(rng, i, 5.0 * i, "clean"), wall_offset=now - 300)


@pytest.fixture(scope="session")
def _filled_template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("replog") / "station.db"
    _fill(path)
    return path


@pytest.fixture
def filled_db(_filled_template: Path, tmp_path: Path) -> Path:
    """A rep log with many sessions over a month: hinges, squatted and rounded reps, a replayed
    clip, an empty session, a rep with a non-finite hinge ratio, and a session still running.
    Each test gets its own copy."""
    path = tmp_path / "station.db"
    shutil.copy(_filled_template, path)
    return path


def live_session_id(db: Path) -> int:
    with RepStore(db, readonly=True) as store:
        return max(s["id"] for s in store.list_sessions(limit=5) if s["ended_at"] is None)


def clip_session_id(db: Path) -> int:
    with RepStore(db, readonly=True) as store:
        return next(s["id"] for s in store.list_sessions(limit=10) if s["source"] == f"file:{CLIP}")


@dataclass
class Station:
    """The page as `station run` wires it: a writable store, a live state and the controls."""

    store: RepStore
    live: LiveState
    controls: RecordingControls
    session_id: int


@pytest.fixture
def station(filled_db: Path) -> Iterator[Station]:
    store = RepStore(filled_db)
    sid = live_session_id(filled_db)
    live = LiveState()
    live.update(state=StationState.TRACKING, profile="dowel_hinge", session_id=sid, session_reps=store.rep_count(sid),
                last_rep_id=store.session_reps(sid)[-1]["id"], fps=14.8)
    yield Station(store, live, RecordingControls(live), sid)
    store.close()


def make_app(store: RepStore, token: Optional[str] = TOKEN, read_requires_token: bool = False,
             live: Optional[LiveState] = None, controls=None, checks=None, page_cpu_share: Optional[float] = 0.25,
             ladder=None):
    web = WebSettings(token=token, read_requires_token=read_requires_token, allowed_hosts=["testserver"])
    return create_app(store, web, live=live, controls=controls, profiles=PROFILES, checks=checks,
                      page_cpu_share=page_cpu_share, ladder=ladder)


def add_live_rep(station: Station, style: str = "squatted") -> int:
    """What the station does when a rep lands: commit it, then bump the live state."""
    rng = random.Random(5)
    session = station.store.get_session(station.session_id)
    assert session is not None
    index = station.store.rep_count(station.session_id) + 1
    rep = synthetic_rep(rng, index, time.time() - session["started_at"] - 3.0, style)
    rep_id = station.store.add_rep(station.session_id, rep, wall_offset=session["started_at"])
    fault: Optional[FaultEvent] = rep.faults[0] if rep.faults else None
    station.live.update(
        session_reps=index, last_rep_id=rep_id, state=StationState.FAULT if fault else StationState.TRACKING,
        last_fault=fault.fault.value if fault else None, last_fault_cue=DEFAULT_CUES[fault.fault] if fault else "",
        last_fault_at=time.time() if fault else None, cue=DEFAULT_CUES[fault.fault] if fault else "",
    )
    return rep_id


AUTH = {"Authorization": f"Bearer {TOKEN}"}
ALL_FAULTS = [f.value for f in Fault]
