"""The analysis vocabulary shared by every consumer: fault names and cues, framing states, the
finished `Rep` record and the events the analysis emits frame by frame.

Signals, the rep log, the page and the evaluation all speak these names; they match the labels in
../shared/README.md.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any, Optional, Union


class Fault(str, Enum):
    SQUATTING_THE_HINGE = "squatting_the_hinge"
    ROUNDED_BACK = "rounded_back"
    HEAD_NOT_NEUTRAL = "head_not_neutral"
    LOCKED_KNEES = "locked_knees"
    INCOMPLETE_LOCKOUT = "incomplete_lockout"
    OVEREXTENDED_LOCKOUT = "overextended_lockout"
    LOAD_AWAY_FROM_BODY = "load_away_from_body"
    TOO_FAST = "too_fast"


DEFAULT_CUES: dict[Fault, str] = {
    Fault.SQUATTING_THE_HINGE: "push the hips back, keep the shins vertical",
    Fault.ROUNDED_BACK: "long spine, chest proud",
    Fault.HEAD_NOT_NEUTRAL: "tuck the chin, long neck",
    Fault.LOCKED_KNEES: "soft knees",
    Fault.INCOMPLETE_LOCKOUT: "finish tall, squeeze the glutes",
    Fault.OVEREXTENDED_LOCKOUT: "stand tall, ribs down",
    Fault.LOAD_AWAY_FROM_BODY: "keep it close to your legs",
    Fault.TOO_FAST: "slow the lowering down",
}


class Framing(str, Enum):
    """Whether the athlete can be analysed at all. Only OK frames count reps or raise faults."""

    NOBODY = "nobody"
    OK = "ok"
    FACING_CAMERA = "facing_camera"
    OUT_OF_FRAME = "out_of_frame"
    UNRELIABLE = "unreliable"


FRAMING_CUES: dict[Framing, str] = {
    Framing.NOBODY: "step into view",
    Framing.OK: "",
    Framing.FACING_CAMERA: "turn sideways",
    Framing.OUT_OF_FRAME: "step back so your feet are in view",
    Framing.UNRELIABLE: "move into better light, side-on",
}


class View(str, Enum):
    """Where the camera stands for this athlete, as far as the upright frames have shown it: side-on
    (every rule judges), front- or rear-oblique (reps count; only the squat is judged, in 3D), or not
    known yet (a clip that starts with the athlete bent over: nothing buzzes until it is)."""

    UNKNOWN = "unknown"
    SIDE_ON = "side_on"
    OBLIQUE = "oblique"


class Phase(str, Enum):
    STANDING = "standing"
    LOWERING = "lowering"
    BOTTOM = "bottom"
    RISING = "rising"
    LOCKOUT = "lockout"


@dataclass(frozen=True)
class FaultEvent:
    """A fault seen on a rep, with the evidence: the deciding value, the limit, how far past it
    (margin, in the rule's unit, positive = past the limit) and the measurement noise of that
    value on those frames. A clear fault (margin over the noise band for the hold time) buzzes; a
    borderline one crossed the limit but not clearly, and is only logged."""

    fault: Fault
    cue: str
    time: float  # seconds on the frame clock, when the fault had held long enough to be sure
    value: float  # the measured quantity, in the rule's unit
    threshold: float  # the limit it crossed
    rep_index: int
    margin: float = float("nan")  # how far past the limit, in the rule's unit
    noise: float = float("nan")  # the clear-margin band the margin had to exceed (inf: not known)
    borderline: bool = False
    # What `value` measures (rules.Finding.quantity: an Angles field, "hinge_ratio", "lowering_s"), so
    # the page can say it in words: one fault may be decided by different quantities (a squat by the
    # hips at knee height, the knees' bend or the hinge ratio). "" where it is not known.
    quantity: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"fault": self.fault.value, "cue": self.cue, "time": self.time, "value": self.value,
                "threshold": self.threshold, "margin": self.margin, "noise": self.noise,
                "borderline": self.borderline, "rep_index": self.rep_index, "quantity": self.quantity}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "FaultEvent":
        """The inverse of to_dict, also after JSON (where NaN was written as null)."""
        return cls(Fault(data["fault"]), data["cue"], _real(data["time"]), _real(data["value"]), _real(data["threshold"]),
                   int(data["rep_index"]), _real(data.get("margin")), _real(data.get("noise")), bool(data.get("borderline")),
                   str(data.get("quantity") or ""))


VERDICTS = ("not judged", "faults", "borderline", "clean")


def rep_verdict(judged: bool, has_faults: bool, has_borderline: bool, movement: str) -> str:
    """A rep's one verdict, defined once for the live station and for a stored rep alike: "faults"
    (a fault buzzed: also on an oblique view, where only a squat is judged, in 3D), "not judged" (the
    camera was not side-on, so most faults could not be), "borderline" (only limits crossed within
    the noise, or a rep that looked like a squat), or "clean". A rep that looked like a squat is
    never clean: on a judged view its bottom raises squatting_the_hinge, or keeps it as borderline."""
    if has_faults:
        return "faults"
    if not judged:
        return "not judged"
    if has_borderline or movement == "squat":
        return "borderline"
    return "clean"


@dataclass
class Rep:
    """One finished rep (a rep ends at lockout, when the athlete stops at the top, or where the hips
    turn back down short of standing)."""

    index: int  # 1-based within the analysis run
    start_time: float
    bottom_time: float
    end_time: float
    lowering_s: float
    rising_s: float
    peak_hip_flexion_deg: float
    knee_flexion_at_bottom_deg: float
    trunk_angle_at_bottom_deg: float
    hip_shift_at_bottom: float  # hips behind the ankle, in leg lengths
    hinge_ratio: float  # hip flexion / knee flexion at the bottom
    lockout_reached: bool
    side: str  # "left" or "right": the side nearer the camera
    movement: str = "hinge"  # "hinge" or "squat": what the rep looked like, whatever the drill asked
    # Whether the faults were judged: False when the camera was not side-on (an oblique view, or one
    # not yet known), where the sagittal angles every fault stands on are foreshortened. Such a rep
    # is counted, but it is neither clean nor faulty: it was not judged.
    judged: bool = True
    faults: list[FaultEvent] = field(default_factory=list)  # clear faults: these buzzed
    borderline: list[FaultEvent] = field(default_factory=list)  # crossed a limit within its noise: logged only
    # (time, hip_flexion_deg, knee_flexion_deg), downsampled for charts
    trace: list[tuple[float, float, float]] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """Judged, no fault buzzed, nothing borderline, and not a squat: the verdict "clean"."""
        return self.verdict == "clean"

    @property
    def verdict(self) -> str:
        """The rep's one verdict, as the page and the log state it (see rep_verdict)."""
        return rep_verdict(self.judged, bool(self.faults), bool(self.borderline), self.movement)

    @property
    def fault_names(self) -> list[str]:
        return [f.fault.value for f in self.faults]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["faults"] = [f.to_dict() for f in self.faults]
        data["borderline"] = [f.to_dict() for f in self.borderline]
        data["trace"] = [list(p) for p in self.trace]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Rep":
        """The inverse of to_dict, also after JSON (NaN written as null): how a rep kept in the
        rep log's pending file comes back."""
        reals = {name: _real(data[name]) for name in (
            "start_time", "bottom_time", "end_time", "lowering_s", "rising_s", "peak_hip_flexion_deg",
            "knee_flexion_at_bottom_deg", "trunk_angle_at_bottom_deg", "hip_shift_at_bottom", "hinge_ratio")}
        return cls(int(data["index"]), **reals, lockout_reached=bool(data["lockout_reached"]), side=str(data["side"]),
                   movement=str(data.get("movement", "hinge")), judged=bool(data.get("judged", True)),
                   faults=[FaultEvent.from_dict(f) for f in data.get("faults", [])],
                   borderline=[FaultEvent.from_dict(f) for f in data.get("borderline", [])],
                   trace=[(_real(t), _real(h), _real(k)) for t, h, k in data.get("trace", [])])


def _real(value: Any) -> float:
    return float("nan") if value is None else float(value)


@dataclass(frozen=True)
class RepStarted:
    time: float
    rep_index: int


@dataclass(frozen=True)
class RepBottom:
    time: float
    rep_index: int


@dataclass(frozen=True)
class RepFinished:
    time: float
    rep: Rep


@dataclass(frozen=True)
class FaultRaised:
    time: float
    event: FaultEvent


@dataclass(frozen=True)
class FramingChanged:
    time: float
    framing: Framing
    cue: str


AnalysisEvent = Union[RepStarted, RepBottom, RepFinished, FaultRaised, FramingChanged]


def fault_from_name(name: str) -> Optional[Fault]:
    try:
        return Fault(name)
    except ValueError:
        return None
