"""The rep counter alone, fed exact hip readings (no smoothing, no model): for tests that need a
duration or a single frame pinned exactly."""
from __future__ import annotations

import numpy as np

from device.analysis.kinematics import Angles
from device.analysis.profiles import load_profile
from device.analysis.reps import Finished, RepCounter


class ExactCounter:
    """The plain hinge's `RepCounter` at `fps`, each reading a side-on frame with the knees at `knee`.
    `closed` holds (time, Finished) for each rep it closed."""

    def __init__(self, knee: float, fps: float = 100, profile: str = "hinge"):
        self.counter = RepCounter(load_profile(profile).reps)
        self.knee, self.fps, self.t = knee, fps, 0.0
        self.closed: list[tuple[float, Finished]] = []

    def reading(self, hip: float, usable: bool = True) -> None:
        """One frame; an unusable one has the joints hidden (a plate passing them)."""
        angles = Angles(self.t, usable, "left", 1, hip_flexion_deg=hip, knee_flexion_deg=self.knee)
        self.closed.extend((self.t, s) for s in self.counter.update(angles, usable=usable, hidden=not usable)
                           if isinstance(s, Finished))
        self.t += 1 / self.fps

    def feed(self, hip: float, seconds: float) -> None:
        for _ in range(round(seconds * self.fps)):
            self.reading(hip)

    def ramp(self, start: float, end: float, seconds: float) -> None:
        """The hips moving steadily from `start` to `end`, one reading per frame."""
        for hip in np.linspace(start, end, round(seconds * self.fps)):
            self.reading(float(hip))

    def down_and_up(self, top: float) -> None:
        """Standing (hips at 5) for a second, down to 90 in a second, held 0.5 s, up to `top` in a second."""
        self.feed(5, 1.0)
        self.ramp(5, 90, 1.0)
        self.feed(90, 0.5)
        self.ramp(90, top, 1.0)
