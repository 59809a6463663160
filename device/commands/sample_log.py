"""A synthetic rep log shaped like the real one, for the page benchmark (`station bench`) and the
trainer page's test fixtures.

Hinge traces (hips travel far, knees little), squatted reps, rounded backs, rushed lowering, soft or
overdone lockouts, faults at the moments the rules would raise them, written through RepStore as
the station writes them.
"""
from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

from device.analysis.vocabulary import DEFAULT_CUES, Fault, FaultEvent, Rep
from device.station.store import RepStore

PROFILES = ("hinge", "dowel_hinge", "wall_tap_hinge", "romanian_deadlift")
ATHLETES = (None, None, "Sam", "Alex R.", "Jo")
SOURCES = ("picamera", "picamera", "webcam:0", "file:bichraix_deadlift_side_good014.mp4")


@dataclass(frozen=True)
class RepStyle:
    """How a kind of rep moves: peak flexions (°), lowering time (s), and the faults it earns."""

    hip_peak: tuple[float, float]
    knee_peak: tuple[float, float]
    lowering_s: tuple[float, float]
    top_hip: tuple[float, float]  # hip flexion at the finish: ~0 tall, >15 soft, <0 leaning back
    faults: tuple[Fault, ...] = ()
    movement: str = "hinge"


STYLES: dict[str, tuple[float, RepStyle]] = {  # name: (share of reps, style)
    "clean": (0.55, RepStyle((85, 110), (15, 32), (1.4, 2.4), (0, 6))),
    "squatted": (0.12, RepStyle((95, 120), (70, 105), (1.3, 2.2), (0, 6), (Fault.SQUATTING_THE_HINGE,), "squat")),
    "rounded": (0.08, RepStyle((95, 125), (15, 30), (1.3, 2.2), (0, 6), (Fault.ROUNDED_BACK, Fault.HEAD_NOT_NEUTRAL))),
    "rushed": (0.08, RepStyle((80, 100), (15, 30), (0.45, 0.8), (0, 6), (Fault.TOO_FAST,))),
    "soft_top": (0.07, RepStyle((85, 105), (15, 30), (1.4, 2.2), (16, 28), (Fault.INCOMPLETE_LOCKOUT,))),
    "leaning_back": (0.05, RepStyle((85, 105), (15, 30), (1.4, 2.2), (-14, -8), (Fault.OVEREXTENDED_LOCKOUT,))),
    "locked_knees": (0.05, RepStyle((80, 100), (1, 5), (1.4, 2.2), (0, 6), (Fault.LOCKED_KNEES,))),
}


def _ease(a: float, b: float, u: float) -> float:
    return a + (b - a) * (1 - math.cos(math.pi * min(max(u, 0.0), 1.0))) / 2


def synthetic_rep(rng: random.Random, index: int, start: float, style_name: Optional[str] = None) -> Rep:
    """One rep starting at `start` seconds on the frame clock, traced at 10 Hz."""
    if style_name is None:
        names = list(STYLES)
        style_name = rng.choices(names, weights=[STYLES[n][0] for n in names])[0]
    style = STYLES[style_name][1]
    hip_peak, knee_peak = rng.uniform(*style.hip_peak), rng.uniform(*style.knee_peak)
    lowering = rng.uniform(*style.lowering_s)
    rising = lowering * rng.uniform(0.55, 0.85)
    start_hip, top_hip = rng.uniform(0, 5), rng.uniform(*style.top_hip)
    start_knee, top_knee = rng.uniform(3, 8), rng.uniform(3, 8)
    duration = lowering + rising
    trace = []
    steps = [i * 0.1 for i in range(int(duration / 0.1) + 1)]
    for t in steps + ([duration] if duration - steps[-1] > 1e-6 else []):
        if t <= lowering:
            hip, knee = _ease(start_hip, hip_peak, t / lowering), _ease(start_knee, knee_peak, t / lowering)
        else:
            hip, knee = _ease(hip_peak, top_hip, (t - lowering) / rising), _ease(knee_peak, top_knee, (t - lowering) / rising)
        trace.append((start + t, hip + rng.gauss(0, 0.8), knee + rng.gauss(0, 0.6)))
    moments = {  # when each rule would be sure: (seconds after the start, measured value, threshold)
        Fault.SQUATTING_THE_HINGE: (lowering * 0.85, hip_peak / knee_peak, 1.6),
        Fault.ROUNDED_BACK: (lowering * 0.9, rng.uniform(18, 30), 15.0),
        Fault.HEAD_NOT_NEUTRAL: (lowering * 0.7, rng.uniform(22, 35), 20.0),
        Fault.TOO_FAST: (lowering * 0.6, lowering, 1.0),
        Fault.INCOMPLETE_LOCKOUT: (duration - 0.05, top_hip, 15.0),
        Fault.OVEREXTENDED_LOCKOUT: (duration - 0.1, -top_hip, 5.0),
        Fault.LOCKED_KNEES: (lowering * 0.5, knee_peak, 6.0),
    }
    faults = [FaultEvent(f, DEFAULT_CUES[f], start + moments[f][0], round(moments[f][1], 2), moments[f][2], index)
              for f in style.faults if f is not Fault.HEAD_NOT_NEUTRAL or rng.random() < 0.5]
    return Rep(
        index=index, start_time=start, bottom_time=start + lowering, end_time=start + duration,
        lowering_s=lowering, rising_s=rising, peak_hip_flexion_deg=hip_peak, knee_flexion_at_bottom_deg=knee_peak,
        trunk_angle_at_bottom_deg=min(90.0, hip_peak * rng.uniform(0.6, 0.75)), hip_shift_at_bottom=rng.uniform(0.15, 0.4),
        hinge_ratio=hip_peak / knee_peak, lockout_reached=style_name != "soft_top", side=rng.choice(("left", "right")),
        movement=style.movement, faults=faults, trace=trace,
    )


def fill_rep_log(store: RepStore, rng: random.Random, sessions: int, reps_per_session: Union[int, tuple[int, int]],
                 first_start: float, spacing_s: float = 6 * 3600, profiles: Sequence[str] = PROFILES,
                 athletes: Sequence[Optional[str]] = ATHLETES) -> list[int]:
    """Write `sessions` finished sessions, oldest first, `spacing_s` apart, each by one of
    `athletes` (None: anonymous); returns their ids."""
    ids = []
    for s in range(sessions):
        started = first_start + s * spacing_s + rng.uniform(0, 600)
        count = reps_per_session if isinstance(reps_per_session, int) else rng.randint(*reps_per_session)
        sid = store.start_session(started, rng.choice(profiles), rng.choice(SOURCES), rng.choice(athletes))
        clock = rng.uniform(3, 10)
        for i in range(1, count + 1):
            rep = synthetic_rep(rng, i, clock)
            store.add_rep(sid, rep, wall_offset=started)
            clock = rep.end_time + rng.uniform(1.0, 4.0)
        store.end_session(sid, started + clock + 20.0)
        ids.append(sid)
    return ids


@dataclass(frozen=True)
class BenchLog:
    path: Path
    session_ids: tuple[int, ...]
    reps: int
    athlete_ids: tuple[int, ...] = ()


def build_bench_db(path: Path, reps: int = 10_000, reps_per_session: int = 40, seed: int = 7,
                   athletes: int = 0) -> BenchLog:
    """A rep log of `reps` reps in sessions of `reps_per_session`, ending about now; with
    `athletes`, every session belongs to one of that many named athletes, else to the few of ATHLETES."""
    rng = random.Random(seed)
    sessions = max(1, math.ceil(reps / reps_per_session))
    spacing = 8 * 3600.0
    names: Sequence[Optional[str]] = [f"Athlete {i:03d}" for i in range(1, athletes + 1)] if athletes else ATHLETES
    with RepStore(Path(path)) as store:
        ids = fill_rep_log(store, rng, sessions, reps_per_session, time.time() - sessions * spacing, spacing,
                           athletes=names)
        total = store.rep_count()
        athlete_ids = tuple(a["id"] for a in store.list_athletes())
    return BenchLog(Path(path), tuple(ids), total, athlete_ids)
