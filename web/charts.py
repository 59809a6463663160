"""Per-rep angle charts as plain geometry for an inline SVG: hip and knee flexion through the rep,
the bottom, and the moments faults were raised. No JavaScript, so they draw at once on a phone.

All reps of a session share one scale, so a rushed rep looks shorter and a squatted rep's knee
line sits visibly higher than its neighbours'.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

from web.models import RepOut

WIDTH, HEIGHT = 320, 150
LEFT, RIGHT, TOP, BOTTOM = 30, 8, 8, 20  # plot margins in SVG units
MAX_POINTS = 80  # plenty for a 300-unit-wide line; keeps a 50-rep page small


@dataclass(frozen=True)
class Marker:
    x: float
    name: str
    cue: str
    number: int  # 1-based, matches the fault list under the chart


@dataclass(frozen=True)
class Tick:
    at: float  # SVG coordinate
    label: str


@dataclass(frozen=True)
class RepChart:
    width: int
    height: int
    plot_left: float
    plot_right: float
    plot_top: float
    plot_bottom: float
    hip: str  # SVG polyline points
    knee: str
    bottom_x: Optional[float]
    faults: tuple[Marker, ...]
    x_ticks: tuple[Tick, ...]
    y_ticks: tuple[Tick, ...]


@dataclass(frozen=True)
class Scale:
    """The session-wide axes: seconds 0..t_max, degrees 0..deg_max."""

    t_max: float
    deg_max: float

    @classmethod
    def for_reps(cls, reps: Sequence[RepOut]) -> "Scale":
        t_max, deg_max = 1.0, 90.0
        for rep in reps:
            for t, hip, knee in rep.trace:
                if t is not None:
                    t_max = max(t_max, t)
                deg_max = max(deg_max, *(v for v in (hip, knee) if v is not None), 0.0)
            if rep.duration_s is not None:
                t_max = max(t_max, rep.duration_s)
        return cls(t_max=_nice_ceiling(t_max, 1.0), deg_max=min(_nice_ceiling(deg_max, 30.0), 180.0))


def _nice_ceiling(value: float, step: float) -> float:
    return max(step, math.ceil(value / step) * step)


def _thin(points: list[tuple[float, float, float]]) -> list[tuple[float, float, float]]:
    if len(points) <= MAX_POINTS:
        return points
    last = len(points) - 1
    return [points[round(i * last / (MAX_POINTS - 1))] for i in range(MAX_POINTS)]


def rep_chart(rep: RepOut, scale: Scale) -> RepChart:
    x0, x1, y0, y1 = LEFT, WIDTH - RIGHT, TOP, HEIGHT - BOTTOM

    def x(t: float) -> float:
        return round(x0 + (x1 - x0) * min(max(t / scale.t_max, 0.0), 1.0), 1)

    def y(deg: float) -> float:
        return round(y1 - (y1 - y0) * min(max(deg / scale.deg_max, 0.0), 1.0), 1)

    points = _thin([p for p in rep.trace if None not in p])  # type: ignore[misc]
    hip = " ".join(f"{x(t)},{y(h)}" for t, h, _ in points)
    knee = " ".join(f"{x(t)},{y(k)}" for t, _, k in points)
    markers = tuple(
        Marker(x=x(f.t_rel_s), name=f.name, cue=f.cue, number=i + 1)
        for i, f in enumerate(rep.faults) if f.t_rel_s is not None
    )
    step = 1.0 if scale.t_max <= 6 else 2.0 if scale.t_max <= 12 else 5.0
    x_ticks = tuple(Tick(x(i * step), f"{i * step:g}s") for i in range(int(scale.t_max / step) + 1))
    y_ticks = tuple(Tick(y(d), f"{d:g}°") for d in range(0, int(scale.deg_max) + 1, 30))
    return RepChart(
        width=WIDTH, height=HEIGHT, plot_left=x0, plot_right=x1, plot_top=y0, plot_bottom=y1,
        hip=hip, knee=knee, bottom_x=x(rep.bottom_at - rep.started_at), faults=markers,
        x_ticks=x_ticks, y_ticks=y_ticks,
    )
