"""The rep counter: standing -> lowering -> bottom -> rising -> lockout, on the smoothed hip flexion.

Hysteresis everywhere: a rep starts only once the hips bend `start_deg` (above the `top_deg` that
counts as standing), counts only if it reaches `depth_deg`, and its bottom is confirmed only when the
hips come back `rise_deg` from the deepest point (a pause on the way down, at the knees say, is not
the bottom; a pause at the bottom shows as the BOTTOM phase). A dip that never reaches depth is a
half rep and is dropped; so is a rep during which the athlete is out of view for over `max_gap_s`
(`hidden_gap_s` when the athlete stays in view and a plate or bar covers the joints).
A rep that never returns to standing is not counted, but one whose hips come back up past
`start_deg` and bend again is a rep that turned back down short of standing: it closes there, its
lockout not reached, and the next rep starts.

Someone first seen already at depth (a clip that starts with the bar on the floor, or an athlete who
steps in and picks the load up) starts a rep at its bottom: their first lift counts.

The counter only keeps time and shape; the faults are judged elsewhere (device/faults.py) and the
analyzer attaches them to the finished rep.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Optional

import numpy as np

from device.analysis.vocabulary import Phase, Rep
from device.analysis.kinematics import Angles, hinge_ratio
from device.analysis.profiles import MovementTable, RepsTable
from device.stats import median

NAN = float("nan")
# The standard error of a median of n normal readings is sqrt(pi/2) = 1.2533 times a mean's.
MEDIAN_EFFICIENCY = math.sqrt(math.pi / 2)
# Held this long without going deeper, the athlete is shown as paused at the bottom.
PAUSE_S = 0.25
# Where the standing athlete's hips were at rest: the lowering began when they last left this band.
# The rest level is a leaky minimum, so a dip long before the rep does not hold it down.
ONSET_BAND_DEG = 5.0
REST_LEAK_DEG_PER_S = 5.0
# The bottom values are read over the deepest part of the rep: within this of the deepest point.
BOTTOM_WINDOW_DEG = 5.0
# Physics, not coaching: a bar let go at the hips hits the floor in about 0.3 s, so a "lowering"
# quicker than 0.2 s is a landmark glitch, not a movement; it is dropped before any fault is judged.
FASTEST_LOWERING_S = 0.2


class State(str, Enum):
    ACQUIRE = "acquire"  # no steady view of the athlete yet (start, or back after a long gap)
    STANDING = "standing"
    LOWERING = "lowering"
    BOTTOM = "bottom"
    RISING = "rising"
    TOP = "top"  # back up, closing the rep once the lockout settles

    @property
    def phase(self) -> Phase:
        return {
            State.ACQUIRE: Phase.STANDING, State.STANDING: Phase.STANDING, State.LOWERING: Phase.LOWERING,
            State.BOTTOM: Phase.BOTTOM, State.RISING: Phase.RISING, State.TOP: Phase.LOCKOUT,
        }[self]


@dataclass
class Sample:
    time: float
    hip: float
    knee: float
    trunk: float
    thigh: float
    hip_shift: float
    hands_below_knee: float
    back: float = NAN  # back_bend_deg: the back's outline, NaN without the person mask
    hip_3d: float = NAN  # the 3D bends (Angles' *_3d_deg), NaN without world landmarks
    knee_3d: float = NAN
    thigh_3d: float = NAN
    trunk_3d: float = NAN


@dataclass
class OpenRep:
    """The rep in progress, as far as the counter knows it."""

    index: int
    attempt: int  # unique per opened rep, also for attempts that are later dropped
    start_time: float
    side: str
    lowering_seen: bool  # False when the athlete was first seen already at depth
    peak: float = -math.inf
    peak_time: float = NAN
    reached_depth: bool = False
    rise_min: float = math.inf
    rise_progress: float = math.inf  # the hips' last clear step up (1 degree), and when
    rise_progress_time: float = NAN
    top_entered: float = NAN
    top_min: float = math.inf
    top_min_time: float = NAN
    lockout_since: float = NAN  # the current run of frames with the hips locked out began here
    lockout_time: float = NAN  # the lockout held long enough to count (lockout_hold_s)
    samples: list[Sample] = field(default_factory=list)

    @property
    def lockout_reached(self) -> bool:
        return math.isfinite(self.lockout_time)

    @property
    def lowering_s(self) -> float:
        return self.peak_time - self.start_time if self.lowering_seen else NAN


@dataclass(frozen=True)
class Started:
    time: float
    rep: OpenRep
    earlier: tuple[Angles, ...] = ()  # frames before this one that belong to the rep (a lift from the floor)


@dataclass(frozen=True)
class Bottomed:
    time: float
    rep: OpenRep


@dataclass(frozen=True)
class Finished:
    time: float
    rep: OpenRep
    lockout_judged: bool  # False when the athlete was not watched at the top long enough to say


@dataclass(frozen=True)
class Dropped:
    time: float
    rep: OpenRep
    reason: str


CounterEvent = Started | Bottomed | Finished | Dropped


class RepCounter:
    """Counts reps from the smoothed hip flexion of usable frames; see the module docstring."""

    def __init__(self, config: RepsTable):
        self.config = config
        self.reset()

    def reset(self) -> None:
        self.state = State.ACQUIRE
        self.rep: Optional[OpenRep] = None
        self.count = 0
        self._attempts = 0
        self._last_seen: Optional[float] = None
        self._last_present: Optional[float] = None  # last frame with the athlete in view, joints covered or not
        self._rest = math.inf
        self._rest_time = NAN
        self._onset_time = NAN
        self._deep: list[Angles] = []  # frames seen at depth while acquiring

    @property
    def phase(self) -> Phase:
        return self.state.phase

    def _open(self, time: float, start: float, side: str, lowering_seen: bool, earlier: tuple[Angles, ...] = ()) -> Started:
        self._attempts += 1
        self.rep = OpenRep(self.count + 1, self._attempts, start, side, lowering_seen)
        return Started(time, self.rep, earlier)

    def _drop(self, time: float, reason: str) -> list[CounterEvent]:
        rep, self.rep = self.rep, None
        return [Dropped(time, rep, reason)] if rep is not None else []

    def _reacquire(self) -> None:
        self.state, self._last_seen, self._deep = State.ACQUIRE, None, []

    def _stand(self, h: float, time: float) -> None:
        self.state = State.STANDING
        self._rest, self._rest_time, self._onset_time = h, time, time

    def _record(self, rep: OpenRep, a: Angles) -> None:
        h = a.hip_flexion_deg
        rep.samples.append(Sample(a.time, h, a.knee_flexion_deg, a.trunk_deg, a.thigh_deg, a.hip_shift, a.hands_below_knee,
                                  a.back_bend_deg, a.hip_flexion_3d_deg, a.knee_flexion_3d_deg, a.thigh_3d_deg,
                                  a.trunk_3d_deg))
        if h > rep.peak:
            rep.peak, rep.peak_time = h, a.time
        if h >= self.config.depth_deg:
            rep.reached_depth = True

    def update(self, angles: Angles, usable: bool, hidden: bool = False) -> list[CounterEvent]:
        """Feed one frame; `usable` is False for frames that must not count (framing not OK);
        `hidden`: not usable, but the athlete is in view with the joints covered (a plate, a bar)."""
        if not usable or math.isnan(angles.hip_flexion_deg):
            if hidden:
                self._last_present = angles.time
            if self.rep is not None:
                self.rep.lockout_since = NAN  # a frame with the hips unseen is no evidence of a lockout
            return self._while_unseen(angles.time)
        dropped = self._back_from_vanishing(angles)
        self._last_seen = self._last_present = angles.time
        if self.rep is not None:
            self._record(self.rep, angles)
        if dropped:
            return dropped + self._while_acquiring(angles)
        match self.state:
            case State.ACQUIRE:
                return self._while_acquiring(angles)
            case State.STANDING:
                return self._while_standing(angles)
            case State.LOWERING | State.BOTTOM:
                return self._while_lowering(angles)
            case State.RISING:
                return self._while_rising(angles)
            case State.TOP:
                return self._while_at_top(angles)
        raise AssertionError(f"unknown state {self.state}")

    def _while_unseen(self, time: float) -> list[CounterEvent]:
        """A frame that does not count. Out of sight `settle_s` after reaching the top, the rep is done;
        anywhere else, out of sight over `max_gap_s` drops it, and so do joints covered (the athlete
        in view) for over `hidden_gap_s` in all.

        Lowering or at the bottom, a vanished athlete gets `hidden_gap_s` too: bent over, nobody
        walks off without first standing up in view, so a body lost there is one the model lost
        behind the plates (it drops a squatter at depth for over a second when the image is merely
        mirrored), not one that left."""
        out: list[CounterEvent] = []
        if self.state is State.TOP and self._last_seen is not None and time - self._last_seen >= self.config.settle_s:
            # Back at the top and then out of sight (walked off, turned): the rep is done, and
            # what comes next is seen afresh.
            out = self._close_or_drop(time)
            self._reacquire()
        elif self._last_seen is not None and (
                time - self._last_seen > self.config.hidden_gap_s
                or (self.state not in (State.LOWERING, State.BOTTOM)
                    and time - max(self._last_seen, self._last_present or self._last_seen) > self.config.max_gap_s)):
            out = self._drop(time, "out of view")
            self._reacquire()
        return out

    def _back_from_vanishing(self, a: Angles) -> list[CounterEvent]:
        """Seen again after vanishing at the bottom for over `max_gap_s`: the same rep only if the
        athlete is still bent over where they were lost; risen meanwhile, the rise was never seen,
        so the rep is dropped rather than counted on a guess."""
        last = max(self._last_seen or -math.inf, self._last_present or -math.inf)
        if (self.rep is None or self.state not in (State.LOWERING, State.BOTTOM)
                or a.time - last <= self.config.max_gap_s or a.hip_flexion_deg >= self.config.depth_deg):
            return []
        out = self._drop(a.time, "out of view")
        self._reacquire()
        return out

    def _while_acquiring(self, a: Angles) -> list[CounterEvent]:
        """No steady view yet: wait for the athlete standing, or steady at depth."""
        c, h, time = self.config, a.hip_flexion_deg, a.time
        if h <= c.top_deg:
            self._stand(h, time)
        elif h < c.depth_deg:
            self._deep = []
        else:
            # First seen bent over: a lift from the floor, once the posture is steady.
            self._deep.append(a)
            if time - self._deep[0].time >= c.acquire_s:
                started = self._open(time, self._deep[0].time, a.side, False, tuple(self._deep[:-1]))
                for seen in self._deep:
                    self._record(started.rep, seen)
                self._deep = []
                self.state = State.LOWERING
                return [started]
        return []

    def _while_standing(self, a: Angles) -> list[CounterEvent]:
        """Standing: follow the hips' rest level (for when the lowering began) until they bend `start_deg`."""
        c, h, time = self.config, a.hip_flexion_deg, a.time
        self._rest = min(h, self._rest + REST_LEAK_DEG_PER_S * (time - self._rest_time))
        self._rest_time = time
        if h <= min(c.top_deg, self._rest + ONSET_BAND_DEG):
            self._onset_time = time
        if h <= c.start_deg:
            return []
        started = self._open(time, self._onset_time, a.side, lowering_seen=True)
        self._record(started.rep, a)
        self.state = State.LOWERING
        return [started]

    def _while_lowering(self, a: Angles) -> list[CounterEvent]:
        """On the way down, or paused at the bottom (LOWERING or BOTTOM)."""
        c, h, time = self.config, a.hip_flexion_deg, a.time
        rep = self.rep
        assert rep is not None
        if rep.reached_depth and h <= rep.peak - c.rise_deg:
            # Coming back up: the deepest point is the bottom. (A pause on the way down, at
            # the knees say, is not: only rising confirms it.)
            if rep.lowering_s < FASTEST_LOWERING_S:
                out = self._drop(time, "glitch")
                self._reacquire()
                self._last_seen = time
                return out
            self.state = State.RISING
            rep.rise_min, rep.rise_progress, rep.rise_progress_time = h, h, time
            return [Bottomed(time, rep)]
        if rep.reached_depth:
            paused = time - rep.peak_time >= PAUSE_S
            self.state = State.BOTTOM if paused else State.LOWERING
        elif h <= c.top_deg:
            out = self._drop(time, "half rep")
            self._stand(h, time)
            return out
        return []

    def _while_rising(self, a: Angles) -> list[CounterEvent]:
        """Standing up from the bottom: note the last clear step up, and arrive at the top."""
        c, h, time = self.config, a.hip_flexion_deg, a.time
        rep = self.rep
        assert rep is not None
        rep.rise_min = min(rep.rise_min, h)
        if h < rep.rise_progress - 1.0:
            rep.rise_progress, rep.rise_progress_time = h, time
        if h > rep.rise_min + c.rise_deg:
            if c.top_deg < rep.rise_min <= c.start_deg:
                return self._short_of_standing(h, time)
            self.state = State.LOWERING  # went back down: still the same rep, bottom already known
        elif h <= c.top_deg:
            self.state = State.TOP
            rep.top_entered, rep.top_min, rep.top_min_time = time, h, time
            self._follow_lockout(rep, h, time)
        return []

    def _short_of_standing(self, h: float, time: float) -> list[CounterEvent]:
        """The hips came back up past `start_deg`, the line a rep starts from, and are bending
        again without having reached standing (`top_deg`): the athlete turned back down short of
        the lockout (touch-and-go reps that never finish tall). That rep is over, its lockout judged
        and not reached, its finish read at the turnaround; the next one starts from there. Left in
        the rep, as a pause lower on the way up is, it would run two reps together and never be
        judged. (A top that reaches standing and bends again before its finish has been watched is
        not judged: within `top_deg` a quick top may be read short of its lockout; past it, the
        hips plainly never stood. A highest point at or under `top_deg` that never entered the top
        can only be the one reading that confirmed the bottom, a jump no body makes: a glitch, not
        a turnaround.)"""
        rep = self.rep
        assert rep is not None
        rep.top_entered = rep.rise_progress_time
        out = self._close_or_drop(time, finish_seen=True)
        self._stand(h, time)
        self._onset_time = rep.rise_progress_time  # the next lowering began at the turnaround
        return out

    def _follow_lockout(self, rep: OpenRep, h: float, time: float) -> None:
        """The lockout counts once the hips have stayed locked out for `lockout_hold_s` on frames
        that show them: one frame (a plate passing the hips, a misread) is no evidence."""
        c = self.config
        if h > c.lockout_hip_deg:
            rep.lockout_since = NAN
            return
        if math.isnan(rep.lockout_since):
            rep.lockout_since = time
        if not rep.lockout_reached and time - rep.lockout_since >= c.lockout_hold_s - 1e-9:
            rep.lockout_time = rep.lockout_since

    def _while_at_top(self, a: Angles) -> list[CounterEvent]:
        """Back at the top: the finish is watched for `finish_s` (the lockout, and a lean back that
        may follow it, belong to the rep) and until the hips have stopped extending for `settle_s`;
        the rep closes then, or as soon as the hips bend again."""
        c, h, time = self.config, a.hip_flexion_deg, a.time
        rep = self.rep
        assert rep is not None
        if h < rep.top_min - 1.0:
            rep.top_min, rep.top_min_time = h, time
        self._follow_lockout(rep, h, time)
        finished = time - rep.top_entered >= c.finish_s and time - rep.top_min_time >= c.settle_s
        bending = h > rep.top_min + c.rise_deg
        if not (finished or bending):
            return []
        out = self._close_or_drop(time)
        self._stand(h, time)
        return out

    def _close_or_drop(self, time: float, finish_seen: bool = False) -> list[CounterEvent]:
        rep = self.rep
        assert rep is not None
        up = rep.lockout_time if rep.lockout_reached else rep.top_entered
        if up - rep.start_time < self.config.min_rep_s:
            return self._drop(time, "too brief to be a rep")
        return [self._close(time, finish_seen)]

    def _close(self, time: float, finish_seen: bool) -> Finished:
        """Close the rep at the top. Its lockout counts as judged if it was reached, if the
        athlete was watched at the top for the whole finish, or if the finish was seen to end (the
        hips turned back down)."""
        rep = self.rep
        assert rep is not None
        judged = finish_seen or rep.lockout_reached or time - rep.top_entered >= self.config.finish_s
        return self._finish(time, judged)

    def _finish(self, time: float, lockout_judged: bool) -> Finished:
        rep, self.rep = self.rep, None
        assert rep is not None
        self.count += 1
        return Finished(time, rep, lockout_judged)

    def finish(self, time: float) -> list[CounterEvent]:
        """End of stream. A rep back at the top closes as it stands; anything else (still rising,
        however far, or on the way down) never reached standing and is not a rep."""
        rep = self.rep
        if rep is None:
            return []
        out = self._close_or_drop(time) if self.state is State.TOP else self._drop(time, "ended mid-rep")
        self._reacquire()
        return out


# --- the finished rep's record ------------------------------------------------------------------


def _median(values: list[float]) -> float:
    """The station's median (device.stats) of the finite values; NaN when there are none."""
    m = median(values)
    return NAN if m is None else m


@dataclass(frozen=True)
class BottomShape:
    """The rep's deepest part, read as medians over the frames within a few degrees of the peak."""

    hip: float
    knee: float
    trunk: float
    thigh: float
    hip_shift: float
    hands_below_knee: float
    frames: int = 1  # how many frames the medians are over
    back: float = NAN  # the back's outline (back_bend_deg), median over the deep frames that read it
    back_frames: int = 0
    # The same bottom in 3D (world landmarks), for a view where the sagittal angles are foreshortened.
    hip_3d: float = NAN
    knee_3d: float = NAN
    thigh_3d: float = NAN
    trunk_3d: float = NAN

    @property
    def hinge_ratio(self) -> float:
        return hinge_ratio(self.hip, self.knee)

    @property
    def noise_factor(self) -> float:
        """A median of n noisy readings wanders 1.25/sqrt(n) as much as one reading does."""
        return median_noise_factor(self.frames)

    @property
    def back_noise_factor(self) -> float:
        return median_noise_factor(self.back_frames)


def median_noise_factor(frames: int) -> float:
    """How much a median of `frames` noisy readings wanders, relative to one reading: 1.25/sqrt(n)."""
    return MEDIAN_EFFICIENCY / math.sqrt(max(frames, 1))


def bottom_shape(rep: OpenRep) -> BottomShape:
    deep = [s for s in rep.samples if s.hip >= rep.peak - BOTTOM_WINDOW_DEG]
    return BottomShape(
        hip=_median([s.hip for s in deep]), knee=_median([s.knee for s in deep]),
        trunk=_median([s.trunk for s in deep]), thigh=_median([s.thigh for s in deep]),
        hip_shift=_median([s.hip_shift for s in deep]), hands_below_knee=_median([s.hands_below_knee for s in deep]),
        frames=len(deep), back=_median([s.back for s in deep]), back_frames=sum(math.isfinite(s.back) for s in deep),
        hip_3d=_median([s.hip_3d for s in deep]), knee_3d=_median([s.knee_3d for s in deep]),
        thigh_3d=_median([s.thigh_3d for s in deep]), trunk_3d=_median([s.trunk_3d for s in deep]),
    )


# The finish is read, like the bottom, over the frames within this of its extreme: the most extended
# hips at the top, as held.
FINISH_WINDOW_DEG = BOTTOM_WINDOW_DEG


@dataclass(frozen=True)
class FinishShape:
    """The rep's finish (from reaching standing to the close) as held: the median hip flexion over
    the frames within a few degrees of the most extended reading. Negative: the hips extended past
    straight (a lean back)."""

    hip: float
    frames: int = 0

    @property
    def noise_factor(self) -> float:
        return median_noise_factor(self.frames)


def finish_shape(rep: OpenRep) -> FinishShape:
    finish = [s.hip for s in rep.samples if math.isfinite(rep.top_entered) and s.time >= rep.top_entered]
    finish = [h for h in finish if math.isfinite(h)]
    if not finish:
        return FinishShape(NAN, 0)
    extreme = min(finish)
    held = [h for h in finish if h <= extreme + FINISH_WINDOW_DEG]
    return FinishShape(_median(held), len(held))


def movement_verdict(shape: BottomShape, config: MovementTable) -> str:
    """"squat" or "hinge": what the rep looked like at the bottom, whatever the drill asked.

    Squat: knees bent about as much as the hips with the trunk upright, or the hips down at knee
    height. Hands hanging at or below the knees hold a load off the floor: a (badly done) deadlift,
    which stays a hinge.
    """
    squat_pattern = (
        shape.hinge_ratio <= config.squat_max_hinge_ratio
        and shape.trunk <= config.squat_max_trunk_deg
        and shape.knee >= config.squat_min_knee_deg
    )
    hips_at_knees = shape.thigh >= config.hips_at_knee_thigh_deg
    holding_floor_load = shape.hands_below_knee >= config.load_hands_below_knee
    return "squat" if (squat_pattern or hips_at_knees) and not holding_floor_load else "hinge"


def downsample(samples: list[Sample], points: int) -> list[tuple[float, float, float]]:
    if not samples:
        return []
    idx = np.unique(np.linspace(0, len(samples) - 1, min(points, len(samples))).round().astype(int))
    return [(round(samples[i].time, 3), round(samples[i].hip, 1), round(samples[i].knee, 1)) for i in idx]


def build_rep(done: Finished, config: RepsTable, movement: MovementTable) -> Rep:
    """The `Rep` record of a finished rep (faults are attached by the analyzer)."""
    rep = done.rep
    shape = bottom_shape(rep)
    bottom = rep.peak_time
    end = rep.lockout_time if rep.lockout_reached else (rep.top_entered if math.isfinite(rep.top_entered) else done.time)
    return Rep(
        index=rep.index,
        start_time=rep.start_time,
        bottom_time=bottom,
        end_time=end,
        lowering_s=rep.lowering_s,
        rising_s=end - bottom,
        peak_hip_flexion_deg=rep.peak,
        knee_flexion_at_bottom_deg=shape.knee,
        trunk_angle_at_bottom_deg=shape.trunk,
        hip_shift_at_bottom=shape.hip_shift,
        hinge_ratio=shape.hinge_ratio,
        lockout_reached=rep.lockout_reached,
        side=rep.side,
        movement=movement_verdict(shape, movement),
        trace=downsample(rep.samples, config.trace_points),
    )
