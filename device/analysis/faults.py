"""The fault judge: when a rule's finding buzzes, is kept as borderline, or waits.

The rules themselves (device/analysis/rules.py) say whether a frame, a bottom or a close shows a
fault. The judge applies the same evidence standard to all of them: a frame rule must hold for the
fault's hold time (so a buzzer can fire mid-rep, and one noisy frame cannot), each fault is raised
once per rep, and only when its value is past the limit by more than its own measured noise.

What 2D landmarks can see is limited; see ANALYSIS.md.
"""
from __future__ import annotations

import math
from typing import Callable, Mapping, Optional

from device.analysis.kinematics import Angles
from device.analysis.profiles import Profile
from device.analysis.reps import BottomShape, FinishShape
from device.analysis.rules import (BOTTOM_RULES, CLOSE_RULES, AtBottom, AtClose, Finding, FrameRule, Moment,
                                   frame_rules)
from device.analysis.vocabulary import Fault, FaultEvent, View

__all__ = ["FaultJudge", "Finding", "Moment"]

Decide = Callable[[Angles], Optional[tuple[Finding, float]]]


class FaultJudge:
    """Raises each fault once per rep, after it has held for its hold time, and only when its
    evidence is clear: the deciding value past the limit by more than its noise band (the
    profile's `clear_margin_sigmas` times the value's own measured noise) on every frame of the
    hold. A fault that held but never clearly is kept as borderline for the rep: logged with its
    value, limit and margin, never buzzed. Prefer silence to a wrong buzz.

    Until a quantity's noise has been measured (the first frames of a clip, fewer at a Pi's
    10 fps) its band is the model's typical wander, a cautious stand-in. A fault that held only
    under that stand-in is judged again, within the same rep, as soon as the noise is measured on
    frames that include the hold: some hold-long stretch of it must clear the measured band on
    every frame. So a lift that starts at its bottom is judged the same at 10 fps as at 30, a
    little later.

    Likewise while the camera is not known to be side-on (`view`: not yet known in a clip that
    starts with the athlete bent over, before any upright frame has shown it, or oblique) nothing
    side-on buzzes: what held is judged again once the view is side-on, and let go if the rep
    closes first. The rules that judge in 3D (`MomentRule.oblique`: the squat at the bottom) run
    only on a known oblique view, and raise there at once."""

    def __init__(self, profile: Profile, cues: Optional[Mapping[Fault, str]] = None):
        self.profile = profile
        # The coach's own words for a fault (device/analysis/cues.py), read as each fault is raised:
        # they win over the rule's specific cue and the profile's.
        self.cues: Mapping[Fault, str] = cues if cues is not None else {}
        self.reset()

    def reset(self) -> None:
        self.rules: list[FrameRule] = frame_rules(self.profile)  # fresh: the squatting rule remembers floor pulls per attempt
        self.bottom_rules = [rule(self.profile) for rule in BOTTOM_RULES if self.profile.faults.enabled(rule.fault)]
        self.close_rules = [rule(self.profile) for rule in CLOSE_RULES if self.profile.faults.enabled(rule.fault)]
        self._clear_since: dict[Fault, float] = {}
        self._raised: set[tuple[int, Fault]] = set()
        self._borderline: dict[tuple[int, Fault], FaultEvent] = {}
        self._held: dict[Fault, list[tuple[float, Finding]]] = {}  # per fault, its current hold's frames (from its start)
        self._assumed: set[Fault] = set()  # faults whose current hold was judged on assumed noise
        # Held faults waiting for measured noise or a known view: (the hold's frames, decide, rep index),
        # where decide(angles) gives the clear (finding, band) on the angles of a later frame, or None.
        # The frames are the hold's own list, so a hold that goes on is judged on all of it.
        # Keyed by (attempt, fault, source): the frame rule's hold ("frames") and a moment rule's
        # finding ("moment") for the same fault wait side by side, so neither replaces the other.
        self._pending: dict[tuple[int, Fault, str], tuple[list[tuple[float, Finding]], Decide, int]] = {}
        self.view = View.SIDE_ON  # the camera, as the analyzer's ViewMeter says it
        self._last_time: Optional[float] = None
        self.frame_s = math.nan  # the usual time between frames, for the timing faults' resolution

    @property
    def side_on(self) -> bool:
        """The side-on rules may buzz: the camera is known to be side-on."""
        return self.view is View.SIDE_ON

    def _band(self, noise_rms: float) -> float:
        return self.profile.faults.clear_margin_sigmas * noise_rms

    def _event(self, fault: Fault, finding: Finding, time: float, rep_index: int, band: float,
               borderline: bool) -> FaultEvent:
        cue = self.cues.get(fault) or finding.cue or self.profile.faults.cue(fault)
        return FaultEvent(fault, cue, time, round(finding.value, 3), finding.threshold, rep_index,
                          margin=round(finding.margin, 3), noise=round(band, 3), borderline=borderline,
                          quantity=finding.quantity)

    def _keep_borderline(self, key: tuple[int, Fault], event: FaultEvent) -> None:
        kept = self._borderline.get(key)
        if kept is None or event.margin > kept.margin:
            self._borderline[key] = event

    def take_borderline(self, attempt: int) -> list[FaultEvent]:
        """The faults of a closing rep attempt that held but never clearly (and were not raised
        later); handed over once, so what is kept does not grow over a long session."""
        for key in [k for k in self._pending if k[0] == attempt]:
            del self._pending[key]
        keys = [key for key in self._borderline if key[0] == attempt]
        events = [self._borderline.pop(key) for key in keys]
        return sorted((e for key, e in zip(keys, events) if key not in self._raised), key=lambda e: e.time)

    def _tick(self, time: float) -> None:
        if self._last_time is not None and time > self._last_time:
            dt = time - self._last_time
            self.frame_s = dt if math.isnan(self.frame_s) else 0.9 * self.frame_s + 0.1 * dt
        self._last_time = time

    @staticmethod
    def _clear_stretch(held: list[tuple[float, Finding]], band_of: Callable[[str], float],
                       hold: float) -> Optional[tuple[Finding, float]]:
        """The weakest frame of the first hold-long stretch of `held` that is past its limit by
        more than its quantity's band on every frame, with that band; None when there is none.
        (One rule may decide on different quantities from frame to frame: the squat's thigh, knee
        or hinge ratio.)"""
        start: Optional[int] = None
        for i, (time, finding) in enumerate(held):
            if finding.margin <= band_of(finding.quantity):
                start = None
                continue
            start = i if start is None else start
            if time - held[start][0] >= hold:
                weakest = min((f for _, f in held[start:i + 1]), key=lambda f: f.margin / band_of(f.quantity))
                return weakest, band_of(weakest.quantity)
        return None

    def _hold_decider(self, held: list[tuple[float, Finding]], hold: float) -> Decide:
        def decide(angles: Angles) -> Optional[tuple[Finding, float]]:
            return self._clear_stretch(held, lambda quantity: self._band(angles.noise_of(quantity)), hold)
        return decide

    def _judge_pending(self, m: Moment) -> list[FaultEvent]:
        """Faults held on assumed noise or an unknown view, judged again once the noise is measured
        and the view is known."""
        out = []
        for key in [k for k in self._pending if k[0] == m.attempt]:
            held, decide, rep_index = self._pending[key]
            fault_key = (key[0], key[1])
            if fault_key in self._raised:
                del self._pending[key]
            elif self.side_on and all(m.angles.noise_measured(f.quantity) for _, f in held):
                del self._pending[key]
                clear = decide(m.angles)
                if clear is not None:
                    self._raised.add(fault_key)
                    out.append(self._event(key[1], clear[0], m.angles.time, rep_index, clear[1], borderline=False))
        return out

    def _end_hold(self, fault: Fault) -> None:
        self._clear_since.pop(fault, None)
        self._held.pop(fault, None)
        self._assumed.discard(fault)

    def observe(self, m: Moment) -> list[FaultEvent]:
        """Judge one usable frame."""
        self._tick(m.angles.time)
        out = self._judge_pending(m)
        for rule in self.rules:
            fault = rule.fault
            if m.rep_index is None or (finding := rule.check(m)) is None:  # between reps nothing is judged
                self._end_hold(fault)
                continue
            now = m.angles.time
            band = self._band(m.angles.noise_of(finding.quantity))
            held = self._held.setdefault(fault, [])
            held.append((now, finding))
            since = held[0][0]
            if not (self.side_on and m.angles.noise_measured(finding.quantity)):
                self._assumed.add(fault)
            if finding.margin > band and self.side_on:
                clear_since = self._clear_since.setdefault(fault, now)
            else:
                self._clear_since.pop(fault, None)
                clear_since = None
            key = (m.attempt, fault)
            if key in self._raised:
                continue
            hold = self.profile.faults.hold(fault) - 1e-9
            if clear_since is not None and now - clear_since >= hold:
                self._raised.add(key)
                out.append(self._event(fault, finding, now, m.rep_index, band, borderline=False))
            elif now - since >= hold:
                self._keep_borderline(key, self._event(fault, finding, now, m.rep_index, band, borderline=True))
                waiting = (m.attempt, fault, "frames")
                if fault in self._assumed and (waiting not in self._pending or self._pending[waiting][0] is not held):
                    self._pending[waiting] = (held, self._hold_decider(held, hold), m.rep_index)
        return out

    def interrupt(self) -> None:
        """A frame that could not be judged breaks every fault's hold."""
        for fault in list(self._held):
            self._end_hold(fault)

    def _once(self, fault: Fault, finding: Finding, band: float, time: float, rep_index: int, attempt: int,
              oblique: bool = False) -> list[FaultEvent]:
        """`oblique`: the finding is a 3D rule's, judged on a known oblique view (never pending)."""
        key = (attempt, fault)
        if not self.profile.faults.enabled(fault) or key in self._raised:
            return []
        if finding.margin > band and (oblique or self.side_on):
            self._raised.add(key)
            return [self._event(fault, finding, time, rep_index, band, borderline=False)]
        self._keep_borderline(key, self._event(fault, finding, time, rep_index, band, borderline=True))
        if not (oblique or self.side_on) and finding.margin > band:
            # Clear, but on a view not yet known to be side-on: raised once it is (same evidence).
            self._pending[(attempt, fault, "moment")] = ([], lambda angles: (finding, band), rep_index)
        return []

    def at_bottom(self, lowering_s: float, shape: BottomShape, angles: Angles, time: float, rep_index: int,
                  attempt: int) -> list[FaultEvent]:
        """The faults judged once per rep at its bottom (device/analysis/rules.py's bottom rules): the
        lowering's tempo, locked knees over the deepest part, and a bottom that looked like a squat
        (which a frame rule can miss where plates hide the knees for most frames)."""
        bottom = AtBottom(shape, lowering_s, angles, self.frame_s)
        out = []
        for rule in self.bottom_rules:
            if rule.oblique and self.view is not View.OBLIQUE:
                continue  # a 3D rule judges only the view it is for; the side-on ones wait for a side-on view
            if (judged := rule.judge(bottom)) is not None:
                out += self._once(rule.fault, judged[0], judged[1], time, rep_index, attempt, rule.oblique)
        return out

    def at_close(self, lockout_reached: bool, finish: FinishShape, angles: Angles, time: float, rep_index: int,
                 attempt: int) -> list[FaultEvent]:
        """The faults judged once per rep as it closes: its finish, as held."""
        close = AtClose(lockout_reached, finish, angles)
        out = []
        for rule in self.close_rules:
            if (judged := rule.judge(close)) is not None:
                out += self._once(rule.fault, judged[0], judged[1], time, rep_index, attempt)
        return out
