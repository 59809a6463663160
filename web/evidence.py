"""A fault's evidence in the coach's words: "knees bent 105° — a hinge keeps them under 85°".

A stored fault carries the number that decided it (`value`), the limit it passed (`threshold`), how
far past (`margin`) and what the number measures (`quantity`, device/analysis/rules.py: Finding). One
fault can be decided by different quantities (a squat by the hips at knee height, the knees' bend or
the hinge ratio), so the words are looked up by fault and quantity together. Each row says what was
seen and what the movement asks, in the quantity's own unit.

A fault stored before its quantity was kept (quantity None) takes its fault's only quantity; a
squat's is told by its direction alone where that decides it (only the hinge ratio is a minimum),
else the line falls back to plain numbers rather than guess a unit.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional


def _deg(v: float) -> str:
    return f"{v:.0f}°"


def _times(v: float) -> str:
    return f"{v:.1f}×"


def _seconds(v: float) -> str:
    return f"{v:.1f} s"


def _legs(v: float) -> str:
    return f"{v:.0%} of a leg length"


UNITS: dict[str, Callable[[float], str]] = {  # each quantity's unit (device/analysis/kinematics.py: Angles)
    "thigh_deg": _deg, "knee_flexion_deg": _deg, "hip_flexion_deg": _deg, "head_offset_deg": _deg,
    "back_bend_deg": _deg, "hinge_ratio": _times, "lowering_s": _seconds, "load_forward": _legs,
}


@dataclass(frozen=True)
class Words:
    seen: str  # what was measured, "{v}" for the value
    asked: str  # what the movement asks, "{t}" for the limit


WORDS: dict[tuple[str, str], Words] = {
    ("squatting_the_hinge", "knee_flexion_deg"): Words("knees bent {v}", "a hinge keeps them under {t}"),
    ("squatting_the_hinge", "thigh_deg"): Words("thighs {v} off vertical, hips down at knee height",
                                                "a hinge keeps them under {t}"),
    ("squatting_the_hinge", "hinge_ratio"): Words("hips bent only {v} as much as the knees",
                                                  "a hinge bends them at least {t}"),
    ("head_not_neutral", "head_offset_deg"): Words("head {v} out of line with the back", "a long neck stays within {t}"),
    ("load_away_from_body", "load_forward"): Words("load {v} ahead of mid-foot", "keep it within {t}"),
    ("rounded_back", "back_bend_deg"): Words("back bent {v} at the bottom", "a long spine stays under {t}"),
    ("too_fast", "lowering_s"): Words("lowered in {v}", "this drill asks at least {t}"),
    ("locked_knees", "knee_flexion_deg"): Words("knees bent only {v} at the bottom", "soft knees bend at least {t}"),
    ("incomplete_lockout", "hip_flexion_deg"): Words("hips still bent {v} at the finish", "a lockout opens them to under {t}"),
    ("overextended_lockout", "hip_flexion_deg"): Words("leaning back {v} past straight at the finish",
                                                       "standing tall stays within {t}"),
}

# A fault with one quantity: what a fault stored without its quantity measured.
ONLY_QUANTITY = {fault: quantity for (fault, quantity) in WORDS
                 if sum(1 for (f, _) in WORDS if f == fault) == 1}


def _known(value: Optional[float]) -> bool:
    return value is not None and math.isfinite(value)


def quantity_of(name: str, quantity: Optional[str], value: Optional[float], threshold: Optional[float]) -> Optional[str]:
    """What a fault's value measures: as stored, else its fault's only quantity, else (a squat) the
    hinge ratio when the value is under its limit, the only squat sign that is a minimum."""
    if quantity and (name, quantity) in WORDS:
        return quantity
    if quantity:
        return None  # a quantity these words do not know: plain numbers, never a guessed unit
    if name in ONLY_QUANTITY:
        return ONLY_QUANTITY[name]
    if name == "squatting_the_hinge" and value is not None and threshold is not None and value < threshold:
        return "hinge_ratio"  # (NaN never compares true)
    return None


def evidence_line(name: str, quantity: Optional[str], value: Optional[float], threshold: Optional[float]) -> str:
    """One line: what was seen, and what the movement asks ("knees bent 105° — a hinge keeps them
    under 85°"); plain numbers where the quantity is not known; "" without a value."""
    if not (_known(value) and _known(threshold)):
        return ""
    assert value is not None and threshold is not None
    q = quantity_of(name, quantity, value, threshold)
    if q is None:
        return f"measured {value:.2f} — the limit is {threshold:.2f}"
    unit, words = UNITS[q], WORDS[(name, q)]
    return f"{words.seen.format(v=unit(value))} — {words.asked.format(t=unit(threshold))}"


def past_line(name: str, quantity: Optional[str], value: Optional[float], threshold: Optional[float],
              margin: Optional[float], noise: Optional[float]) -> str:
    """How far past the limit against the measurement's noise, in the quantity's unit: the detail
    behind a fault's line ("20° past it; the camera's own wobble is 6°")."""
    if not _known(margin):
        return ""
    assert margin is not None
    q = quantity_of(name, quantity, value, threshold)
    unit = UNITS[q] if q else (lambda v: f"{v:.2f}")
    said = f"{unit(abs(margin))} past the limit"
    if _known(noise):
        assert noise is not None
        said += f"; the reading's own noise is {unit(noise)}"
    else:
        said += "; the reading's noise was not measured yet"
    return said
