"""The truth of a rendered frame: the angles as posed and as the station's kinematics defines them.

Two kinds of truth, because they answer different questions:
- **As posed** (the parameters the body was put in): anatomical hip flexion (pelvis on thigh),
  lumbar, thoracic and neck flexion, the load's distance ahead of mid-foot. These are what a coach
  means by the fault, and what the fault definitions below are written in.
- **As the station defines them**, computed from the body's true 3D keypoints projected on the
  athlete's sagittal plane (left and right averaged): the shoulder-hip-knee hip flexion, knee
  flexion, trunk, thigh and shin angles, the head offset, hip shift and load forward, with the
  same formulas as device/analysis/kinematics.py. The station's measured angle minus these is the
  pose model's error (and the camera's, off side-on); the gap between the two kinds is what a 2D
  proxy cannot see (a rounded back that leaves the shoulder-hip line where it was).

World axes as in camera.py: x the athlete's left, y their back, z up; "forward" is -y.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from models.synth.motion import Posture

NAN = float("nan")


def _fwd_up(v: np.ndarray) -> tuple[float, float]:
    return float(-v[1]), float(v[2])


def _angle(forward: float, along: float) -> float:
    return math.degrees(math.atan2(forward, along))


def sagittal_angles(k: dict[str, np.ndarray]) -> dict[str, float]:
    """The station's kinematics on true 3D keypoints (world), in the sagittal plane."""
    def mid(name: str) -> np.ndarray:
        return (k[f"left_{name}"] + k[f"right_{name}"]) / 2

    hip, shoulder, knee, ankle = mid("hip"), mid("shoulder"), mid("knee"), mid("ankle")
    ear, wrist = mid("ear"), mid("wrist")
    midfoot = (mid("heel") + mid("foot_index")) / 2
    f, u = _fwd_up(shoulder - hip)
    trunk = _angle(f, u)
    f, u = _fwd_up(knee - hip)
    thigh = _angle(f, -u)
    f, u = _fwd_up(knee - ankle)
    shin = _angle(f, u)
    leg = float(np.hypot(*_fwd_up(knee - hip)) + np.hypot(*_fwd_up(ankle - knee)))
    out = {"trunk_deg": trunk, "thigh_deg": thigh, "shin_deg": shin, "hip_flexion_deg": trunk + thigh,
           "knee_flexion_deg": thigh + shin}
    out["hip_shift"] = _fwd_up(ankle - hip)[0] / leg
    # head offset: the ear off the hip->shoulder line, toward the floor positive (kinematics.measure)
    tf, tu = _fwd_up(shoulder - hip)
    n = math.hypot(tf, tu)
    uf, uu = tf / n, tu / n
    nf, nu = uu, -uf
    ef, eu = _fwd_up(ear - shoulder)
    out["head_offset_deg"] = _angle(ef * nf + eu * nu, ef * uf + eu * uu)
    out["load_forward"] = _fwd_up(wrist - midfoot)[0] / leg
    out["leg_m"] = leg
    return out


@dataclass(frozen=True)
class FaultDefinition:
    """When the truth says a fault is present: its severity quantity past a coaching limit, and
    where that limit comes from. The bench's labels use these, never the station's own rules."""

    fault: str
    quantity: str  # the swept severity it is judged on
    unit: str
    limit: float
    worse: int  # +1: larger is worse; -1: smaller is worse
    source: str
    floor_limit: Optional[float] = None  # the limit for a pull from the floor, where it differs

    def limit_for(self, floor_pull: bool) -> float:
        return self.floor_limit if (floor_pull and self.floor_limit is not None) else self.limit

    def present(self, severity: Optional[float], floor_pull: bool = False) -> bool:
        if severity is None or math.isnan(severity):
            return False
        limit = self.limit_for(floor_pull)
        return severity >= limit if self.worse > 0 else severity <= limit


# Severity quantities (the swept parameters) and the coaching definition of the fault each one grades.
FAULT_DEFINITIONS: dict[str, FaultDefinition] = {d.quantity: d for d in (
    FaultDefinition("rounded_back", "spine_flexion", "deg", 30.0, +1,
                    "issue 22's bar for this project: 30 degrees of spine flexion (lumbar + thoracic, from the "
                    "neutral standing curve) is a rounded back; a flat-back hinge holds the spine near its standing shape"),
    FaultDefinition("rounded_back", "lumbar_flexion", "deg", 30.0, +1, "as spine_flexion (the lumbar part alone)"),
    FaultDefinition("rounded_back", "thoracic_flexion", "deg", 30.0, +1, "as spine_flexion (the thoracic part alone)"),
    FaultDefinition("squatting_the_hinge", "knee_share", "share", 0.40, +1,
                    "this bench's line: knee flexion / (hip + knee flexion) at the bottom, both from standing. A hinge's "
                    "knees stay soft (15-30 degrees at 80-90 degrees of hip flexion: share 0.15-0.25, the profiles' own "
                    "coaching note); a squat bends both alike (0.5). At 0.4 the knees bend two thirds as much as the hips. "
                    "A pull from the floor needs its knees (a deadlift sets up at 60-80 degrees of knee flexion: share "
                    "0.35-0.4), so there the line is 0.5: the knees bending as much as the hips",
                    floor_limit=0.5),
    FaultDefinition("head_not_neutral", "neck_flexion", "deg", 30.0, +1,
                    "this bench's line: 30 degrees of neck flexion off the line of the upper back, about half the neck's "
                    "range (roughly 50-60 degrees each way in adults): the chin clearly dropped to the chest"),
    FaultDefinition("head_not_neutral", "neck_extension", "deg", 30.0, +1,
                    "as neck_flexion, the other way: the head cranked up 30 degrees (looking at a mirror ahead)"),
    FaultDefinition("incomplete_lockout", "lockout_short", "deg", 15.0, +1,
                    "this bench's line: the hips still bent 15 degrees when the rep ends, visibly short of standing tall"),
    FaultDefinition("overextended_lockout", "lockout_over", "deg", 15.0, +1,
                    "this bench's line: shoulders 15 degrees behind the hip-knee line at the top; the hip itself extends "
                    "about 10-20 degrees, so past 15 the lean-back comes from arching the lower back"),
    FaultDefinition("load_away_from_body", "load_forward", "leg lengths", 0.15, +1,
                    "the bar-over-mid-foot rule of barbell coaching (the load's centre of mass over mid-foot): 0.15 leg "
                    "lengths (about 13 cm) ahead of mid-foot, the load a hand's width off the legs"),
    FaultDefinition("too_fast", "lowering_s", "s", 0.0, -1,
                    "the drill's prescribed tempo: lowering quicker than its profile's too_fast.min_lowering_s (the "
                    "drill's prescription; drills without a tempo never have this fault)"),
)}


def rep_severities(lumbar: float, thoracic: float, neck: float, knee_share: float, lockout: float,
                   load_forward: float, lowering_s: float) -> dict[str, float]:
    """Every severity quantity of one rep, from its posed parameters (see FAULT_DEFINITIONS)."""
    return {
        "spine_flexion": lumbar + thoracic, "lumbar_flexion": lumbar, "thoracic_flexion": thoracic,
        "neck_flexion": max(neck, 0.0), "neck_extension": max(-neck, 0.0), "knee_share": knee_share,
        "lockout_short": max(-lockout, 0.0), "lockout_over": max(lockout, 0.0), "load_forward": load_forward,
        "lowering_s": lowering_s,
    }


def faults_present(severities: dict[str, float], tempo_s: Optional[float], floor_pull: bool = False) -> list[str]:
    """Fault names present by definition in one rep (too_fast only where the drill has a tempo)."""
    found = set()
    for quantity, value in severities.items():
        definition = FAULT_DEFINITIONS[quantity]
        if quantity == "lowering_s":
            if tempo_s is not None and value is not None and not math.isnan(value) and value < tempo_s:
                found.add(definition.fault)
            continue
        if quantity in ("lumbar_flexion", "thoracic_flexion"):
            continue  # judged on their sum, spine_flexion
        if definition.present(value, floor_pull):
            found.add(definition.fault)
    return sorted(found)


def knee_share(posture: Posture) -> float:
    total = posture.hip + posture.knee
    return posture.knee / total if total > 0 else 0.0


def posed_truth(posture: Posture) -> dict[str, float]:
    """The as-posed angles of a frame."""
    return {
        "hip_flexion_anatomical_deg": posture.hip, "knee_flexion_anatomical_deg": posture.knee,
        "lumbar_flexion_deg": posture.lumbar, "thoracic_flexion_deg": posture.thoracic,
        "spine_flexion_deg": posture.lumbar + posture.thoracic, "neck_flexion_deg": posture.neck,
    }
