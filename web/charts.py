"""Per-rep angle charts as plain geometry for an inline SVG: hip and knee flexion through the rep,
the bottom, and the moments faults were raised. No JavaScript, so they draw at once on a phone.

All reps of a session share one scale, so a rushed rep looks shorter and a squatted rep's knee
line sits visibly higher than its neighbours'.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

from markupsafe import Markup, escape

from web.schemas import RepOut

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

    def svg(self, rep_index: int) -> Markup:
        """The chart as inline SVG; styled by the page's CSS (classes), no inline styles."""
        left, right, top, bottom = self.plot_left, self.plot_right, self.plot_top, self.plot_bottom
        parts = [f'<svg class="chart" viewBox="0 0 {self.width} {self.height}" role="img" '
                 f'aria-label="Hip and knee flexion through rep {rep_index}"><g class="axes">']
        parts += [f'<line x1="{left}" x2="{right}" y1="{t.at}" y2="{t.at}"/><text class="ylab" x="{left - 4}" '
                  f'y="{t.at + 3}">{t.label}</text>' for t in self.y_ticks]
        parts += [f'<text class="xlab" x="{t.at}" y="{self.height - 5}">{t.label}</text>' for t in self.x_ticks]
        parts.append("</g>")
        if self.bottom_x is not None:
            parts.append(f'<line class="bottom" x1="{self.bottom_x}" x2="{self.bottom_x}" y1="{top}" y2="{bottom}">'
                         "<title>bottom of the rep</title></line>")
        parts.append(f'<polyline class="hip" points="{self.hip}"><title>hip flexion</title></polyline>')
        parts.append(f'<polyline class="knee" points="{self.knee}"><title>knee flexion</title></polyline>')
        for m in self.faults:
            label = escape(f"{m.number}: {m.name.replace('_', ' ')} — {m.cue}")
            parts.append(f'<g class="fault-mark" data-fault="{escape(m.name)}"><title>{label}</title>'
                         f'<line x1="{m.x}" x2="{m.x}" y1="{top + 12}" y2="{bottom}"/>'
                         f'<circle cx="{m.x}" cy="{top + 6}" r="6"/><text x="{m.x}" y="{top + 9}">{m.number}</text></g>')
        parts.append("</svg>")
        return Markup("".join(parts))


@dataclass(frozen=True)
class Scale:
    """The session-wide axes: seconds 0..t_max, degrees 0..deg_max."""

    t_max: float
    deg_max: float

    @classmethod
    def for_reps(cls, reps: Sequence[RepOut]) -> "Scale":
        t_max = max((t for rep in reps for t in (rep.trace[-1][0] if rep.trace else None, rep.duration_s) if t is not None),
                    default=1.0)
        deg_max = max((v for rep in reps for p in rep.trace for v in p[1:] if v is not None), default=90.0)
        t_max, deg_max = max(t_max, 1.0), max(deg_max, 90.0)
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
    kx, ky = (x1 - x0) / scale.t_max, (y1 - y0) / scale.deg_max

    def x(t: float) -> float:
        return round(min(max(x0 + kx * t, x0), x1), 1)

    def y(deg: float) -> float:
        return round(min(max(y1 - ky * deg, y0), y1), 1)

    points = _thin([(t, h, k) for t, h, k in rep.trace if t is not None and h is not None and k is not None])
    xs = [f"{min(max(x0 + kx * t, x0), x1):.1f}" for t, _, _ in points]
    hip = " ".join(f"{px},{min(max(y1 - ky * h, y0), y1):.1f}" for px, (_, h, _) in zip(xs, points))
    knee = " ".join(f"{px},{min(max(y1 - ky * k, y0), y1):.1f}" for px, (_, _, k) in zip(xs, points))
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


def series_chart(values: Sequence[Optional[float]], label: str, unit: str, floor: Optional[float] = None,
                 ceiling: Optional[float] = None, marks: Sequence[bool] = ()) -> Markup:
    """A measure over time (one point per session or per rep, oldest on the left) as inline SVG.

    The y axis spans the values (or `floor`..`ceiling` when given, e.g. 0-100 %); `marks[i]` draws
    point i as faulty. Gaps (None) break nothing: the line joins the known points."""
    x0, x1, y0, y1 = LEFT, WIDTH - RIGHT, TOP, HEIGHT - BOTTOM
    known = [(i, v) for i, v in enumerate(values) if v is not None and math.isfinite(v)]
    lo = floor if floor is not None else min((v for _, v in known), default=0.0)
    hi = ceiling if ceiling is not None else max((v for _, v in known), default=1.0)
    if hi - lo < 1e-9:
        lo, hi = lo - 1.0, hi + 1.0
    span = max(len(values) - 1, 1)

    def x(i: int) -> float:
        return round(x0 + (x1 - x0) * i / span, 1)

    def y(v: float) -> float:
        return round(y1 - (y1 - y0) * (min(max(v, lo), hi) - lo) / (hi - lo), 1)

    parts = [f'<svg class="chart series" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(label)}"><g class="axes">']
    for v in (lo, (lo + hi) / 2, hi):
        parts.append(f'<line x1="{x0}" x2="{x1}" y1="{y(v)}" y2="{y(v)}"/><text class="ylab" x="{x0 - 4}" y="{y(v) + 3}">'
                     f'{v:.3g}{escape(unit)}</text>')
    parts.append(f'<text class="xlab" x="{x0}" y="{HEIGHT - 5}">first</text>'
                 f'<text class="xlab" x="{x1 - 10}" y="{HEIGHT - 5}">latest</text></g>')
    if known:
        parts.append(f'<polyline class="hip" points="{" ".join(f"{x(i)},{y(v)}" for i, v in known)}"/>')
        for i, v in known:
            bad = i < len(marks) and marks[i]
            parts.append(f'<circle class="{"point bad" if bad else "point"}" cx="{x(i)}" cy="{y(v)}" r="2.5">'
                         f'<title>{v:.3g}{escape(unit)}</title></circle>')
    parts.append("</svg>")
    return Markup("".join(parts))
