"""The hinge analyzer: one Pose in per frame, analysis events out, causal (never needs a future frame).

    analyzer = HingeAnalyzer(load_profile("dowel_hinge"))
    for pose in poses:
        for event in analyzer.update(pose):
            ...  # RepStarted, RepBottom, FaultRaised, RepFinished, FramingChanged
    analyzer.finish(last_time)

Per frame: kinematics (device/kinematics.py) -> framing (device/framing.py) -> rep counter
(device/reps.py) -> fault rules (device/faults.py). Only frames whose framing is OK count reps or
raise faults. A rep's `RepFinished` carries the complete `Rep`, with every fault raised during it,
as soon as the athlete is back at lockout.
"""
from __future__ import annotations

import logging
from dataclasses import replace
import math
import time as _time
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence, Union

from device.analysis.vocabulary import (
    AnalysisEvent,
    Fault,
    FaultEvent,
    FaultRaised,
    Framing,
    Phase,
    Rep,
    RepBottom,
    RepFinished,
    RepStarted,
    View,
)
from device.analysis.faults import FaultJudge, Moment
from device.analysis.framing import FramingMonitor, ViewMeter, classify
from device.analysis.kinematics import Angles, AngleTracker
from device.pose.landmarks import Pose
from device.analysis.profiles import Profile, load_profile
from device.analysis.reps import (Bottomed, CounterEvent, Dropped, Finished, RepCounter, Started, bottom_shape,
                                  build_rep, finish_shape)


log = logging.getLogger(__name__)


class HingeAnalyzer:
    """Counts hinge reps and raises faults, frame by frame, for one drill profile."""

    def __init__(self, profile: Union[Profile, str] = "hinge", profiles_dir: Optional[Path] = None,
                 cues: Optional[Mapping[Fault, str]] = None):
        self.profile = load_profile(profile, profiles_dir) if isinstance(profile, str) else profile
        self.tracker = AngleTracker(self.profile.kinematics)
        self.framing_monitor = FramingMonitor(self.profile.framing)
        self.view_meter = ViewMeter(self.profile.framing)
        self.counter = RepCounter(self.profile.reps)
        self.judge = FaultJudge(self.profile, cues)  # cues: the coach's own words (device/analysis/cues.py)
        self.angles: Optional[Angles] = None
        self.reps: list[Rep] = []
        self.faults: list[FaultEvent] = []  # every fault raised, also in reps later dropped
        self._rep_faults: list[FaultEvent] = []
        self._last_seen: Optional[float] = None
        self.frames = 0
        self.busy_s = 0.0  # time spent in update(), for the per-frame cost

    @property
    def phase(self) -> Phase:
        return self.counter.phase

    @property
    def framing(self) -> Framing:
        return self.framing_monitor.framing

    @property
    def view(self) -> View:
        """Where the camera stands for this athlete (side-on, oblique, or not known yet)."""
        return self.view_meter.view

    def reset(self) -> None:
        """Start over: a new session."""
        self.tracker.reset()
        self.framing_monitor.reset()
        self.view_meter.reset()
        self.counter.reset()
        self.judge.reset()
        self.angles, self._last_seen = None, None
        self.reps, self.faults, self._rep_faults = [], [], []

    def run(self, poses: Iterable[Pose]) -> list[AnalysisEvent]:
        """Analyse a whole recorded stream (a clip's poses, a synthetic motion) and finish it at its
        last frame, as a live run ends when the camera stops."""
        events: list[AnalysisEvent] = []
        last = 0.0
        for pose in poses:
            events += self.update(pose)
            last = pose.timestamp
        started = _time.perf_counter()
        events += self.finish(last)
        self.busy_s += _time.perf_counter() - started
        return events

    def update(self, pose: Pose) -> list[AnalysisEvent]:
        started = _time.perf_counter()
        try:
            return self._update(pose)
        finally:
            self.frames += 1
            self.busy_s += _time.perf_counter() - started

    def _update(self, pose: Pose) -> list[AnalysisEvent]:
        t = pose.timestamp
        events: list[AnalysisEvent] = []
        if pose.found:
            self._last_seen = t
        elif self._last_seen is not None and t - self._last_seen > self.profile.reps.max_gap_s:
            self.tracker.reset()  # gone: whoever comes next may stand on the other side
            self.view_meter.reset()
            self._last_seen = None
        self.angles = angles = self.tracker.update(pose)
        shown = classify(pose, angles, self.profile.framing)
        # The one guard on an oblique view (or one not yet known): the side-on rules buzz nothing
        # then; what held waits for a side-on view and is let go when the rep closes without one.
        # The sagittal angles they stand on are foreshortened there. Reps still count, and a known
        # oblique view is judged for a squat in 3D at each bottom (rules.SquatSeenObliquely).
        self.judge.view = self.view_meter.update(pose)
        changed = self.framing_monitor.update(shown, t)
        if changed is not None:
            events.append(changed)
        usable = shown.framing is Framing.OK
        signals = self.counter.update(angles, usable, hidden=shown.framing is Framing.UNRELIABLE)
        closing = [s for s in signals if isinstance(s, Finished)]
        events += self._route([s for s in signals if not isinstance(s, Finished)])
        if usable:
            # Judged before the rep closes, so a fault seen on its last frame still belongs to it.
            rep = self.counter.rep or (closing[0].rep if closing else None)
            phase = Phase.LOCKOUT if closing else self.counter.phase
            moment = Moment(angles, phase, rep.index if rep else None, rep.attempt if rep else 0)
            fresh = self.judge.observe(moment)
            self._record(fresh)
            events += [FaultRaised(f.time, f) for f in fresh]
        else:
            self.judge.interrupt()  # a frame the counter cannot use breaks every hold
        return events + self._route(closing)

    def finish(self, time: float) -> list[AnalysisEvent]:
        """End of stream: close a rep that is at the top (or nearly up), drop one mid-way."""
        return self._route(self.counter.finish(time))

    def _record(self, fresh: list[FaultEvent]) -> None:
        self.faults += fresh
        self._rep_faults += fresh

    def _route(self, signals: Sequence[CounterEvent]) -> list[AnalysisEvent]:
        out: list[AnalysisEvent] = []
        for s in signals:
            if isinstance(s, Started):
                self._rep_faults = []
                out.append(RepStarted(s.time, s.rep.index))
                # A lift from the floor is confirmed a moment after it was first seen: judge those
                # frames now, so a fault already showing then is not missed (it is raised late).
                for earlier in s.earlier:
                    # Those frames came before there were enough to measure the noise on: judge
                    # them with the noise measured now, over a window that holds them.
                    known = replace(earlier, noise={**self._current().noise, **earlier.noise})
                    fresh = self.judge.observe(Moment(known, Phase.LOWERING, s.rep.index, s.rep.attempt))
                    self._record(fresh)
                    out += [FaultRaised(s.time, f) for f in fresh]
            elif isinstance(s, Bottomed):
                out.append(RepBottom(s.time, s.rep.index))
                fresh = self.judge.at_bottom(s.rep.lowering_s, bottom_shape(s.rep), self._current(), s.time,
                                             s.rep.index, s.rep.attempt)
                self._record(fresh)
                out += [FaultRaised(f.time, f) for f in fresh]
            elif isinstance(s, Finished):
                if s.lockout_judged:
                    fresh = self.judge.at_close(s.rep.lockout_reached, finish_shape(s.rep), self._current(),
                                                s.time, s.rep.index, s.rep.attempt)
                    self._record(fresh)
                    out += [FaultRaised(f.time, f) for f in fresh]
                rep = build_rep(s, self.profile.reps, self.profile.movement)
                rep.faults = list(self._rep_faults)
                borderline = self.judge.take_borderline(s.rep.attempt)
                rep.judged = self.judge.view is View.SIDE_ON  # an oblique view judges nothing side-on
                rep.borderline = borderline if rep.judged else []
                self._rep_faults = []
                self.reps.append(rep)
                out.append(RepFinished(s.time, rep))
            elif isinstance(s, Dropped):
                log.debug("rep %d dropped at %.2f s: %s", s.rep.index, s.time, s.reason)
                self._rep_faults = []
                self.judge.take_borderline(s.rep.attempt)  # not a rep: nothing to log them with
        return out

    def _current(self) -> Angles:
        return self.angles if self.angles is not None else Angles(0.0, False, "", 0)

    @property
    def ms_per_frame(self) -> float:
        return 1000 * self.busy_s / self.frames if self.frames else math.nan
