"""Jinja templates and the few filters that put numbers in the coach's words."""
from __future__ import annotations

import hashlib
import math
import time
from pathlib import Path
from functools import partial
from types import MappingProxyType
from typing import Mapping, Optional
from urllib.parse import quote

from fastapi.templating import Jinja2Templates

from web.views import default_cue, drill_title, fault_label

TEMPLATES = Path(__file__).parent / "templates"


def safe_next(target: Optional[str], fallback: str = "/") -> str:
    """Only same-site paths: a sign-in link must never bounce the trainer to another host."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target or any(ord(c) < 32 for c in target):
        return fallback
    return target


def quote_next(target: str) -> str:
    return quote(safe_next(target), safe="/")


def _finite(value: Optional[float]) -> bool:
    return value is not None and math.isfinite(value)


def when(ts: Optional[float]) -> str:
    return time.strftime("%a %d %b %H:%M", time.localtime(ts)) if _finite(ts) else "–"


def clock(ts: Optional[float]) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts)) if _finite(ts) else "–"


def duration(seconds: Optional[float]) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "–"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def deg(value: Optional[float]) -> str:
    return f"{value:.0f}°" if _finite(value) else "–"


def num(value: Optional[float], digits: int = 1) -> str:
    return f"{value:.{digits}f}" if _finite(value) else "–"


def times(value: Optional[float]) -> str:
    """A ratio, as a coach says it: "3.3×" (the hips bent 3.3 times as much as the knees)."""
    return f"{value:.1f}×" if _finite(value) else "–"


def pct(value: Optional[float]) -> str:
    return f"{value:.0f}%" if _finite(value) else "–"


def make_templates(static_dir: Path, drill_titles: Mapping[str, str] = MappingProxyType({})) -> Jinja2Templates:
    templates = Jinja2Templates(directory=TEMPLATES)
    env = templates.env
    env.filters.update(when=when, clock=clock, duration=duration, deg=deg, num=num, pct=pct, times=times,
                       fault_label=fault_label, cue=default_cue, drill=partial(drill_title, drill_titles))
    digests = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()[:10] for p in static_dir.iterdir() if p.is_file()}
    env.globals["static_url"] = lambda name: f"/static/{name}?v={digests.get(name, '0')}"
    env.globals["quote_next"] = quote_next
    env.trim_blocks = env.lstrip_blocks = True
    return templates
