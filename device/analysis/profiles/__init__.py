"""Drill profiles: one TOML file per drill says which faults apply, their thresholds, cues and tempo.

`hinge.toml` is complete and is used when nobody chooses a drill; a drill file names `base = "hinge"`
and overrides only what differs. Every number lives in these files with the reason for it. Loading
validates the merged result with pydantic: unknown keys and bad values are errors naming the key.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from device.errors import ConfigError
from device.errors import format_validation_errors
from device.analysis.vocabulary import DEFAULT_CUES, Fault

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

PROFILES_DIR = Path(__file__).resolve().parent
DEFAULT_PROFILE = "hinge"


# A limit on a joint or segment angle: 0-180 degrees. Out of that range (or NaN, or infinite) a
# rule could never, or would always, fire: refused at load, naming the key.
Degrees = Annotated[float, Field(ge=0, le=180)]
# A distance in leg lengths (hands ahead of or below a landmark): within two leg lengths either way.
LegLengths = Annotated[float, Field(ge=-2, le=2)]


class Table(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class KinematicsTable(Table):
    min_visibility: float = Field(gt=0, lt=1)
    min_cutoff_hz: float = Field(gt=0)
    beta: float = Field(ge=0)
    d_cutoff_hz: float = Field(gt=0)
    side_switch_margin: float = Field(ge=0, le=1)
    side_switch_s: float = Field(ge=0)
    min_bone_fraction: float = Field(gt=0, lt=1)
    bone_window_s: float = Field(gt=0)
    noise_window_s: float = Field(gt=0, description="window over which each quantity's measurement noise is measured")


class FramingTable(Table):
    facing_shoulder_ratio: float = Field(gt=0)
    facing_hip_ratio: float = Field(gt=0)
    hold_s: float = Field(ge=0)
    oblique_hip_ratio: float = Field(gt=0, description="upright hip width / trunk length from which the view is oblique")
    side_hip_ratio: float = Field(gt=0, description="below this the view is side-on again (hysteresis)")
    view_window_s: float = Field(gt=0)

    @model_validator(mode="after")
    def _hysteresis(self) -> "FramingTable":
        if not self.side_hip_ratio <= self.oblique_hip_ratio:
            raise ValueError("need side_hip_ratio <= oblique_hip_ratio")
        return self


class RepsTable(Table):
    top_deg: float = Field(ge=-90, le=180, description="hip flexion at or below which the athlete is standing")
    start_deg: float = Field(ge=-90, le=180, description="hip flexion above which a rep has started")
    depth_deg: float = Field(ge=-90, le=180, description="hip flexion a rep must reach to count")
    rise_deg: float = Field(gt=0, description="drop from the deepest point that confirms the bottom")
    lockout_hip_deg: float = Field(ge=-90, le=180, description="hip flexion at or below which the hips are locked out")
    settle_s: float = Field(ge=0)
    finish_s: float = Field(gt=0, description="how long the finish is watched after reaching the top")
    lockout_hold_s: float = Field(ge=0, description="how long the hips must stay locked out for the lockout to count")
    max_gap_s: float = Field(gt=0)
    hidden_gap_s: float = Field(gt=0, description="how long the joints may be covered, the athlete still in view, before a rep is dropped")
    acquire_s: float = Field(ge=0, description="how long someone first seen at depth must stay there to start a rep")
    min_rep_s: float = Field(ge=0, description="a down-and-up quicker than this is a glitch, not a rep")
    trace_points: int = Field(ge=2, le=500)

    @model_validator(mode="after")
    def _ordered(self) -> "RepsTable":
        if not self.lockout_hip_deg <= self.top_deg < self.start_deg < self.depth_deg:
            raise ValueError("need lockout_hip_deg <= top_deg < start_deg < depth_deg")
        return self


class MovementTable(Table):
    """The per-rep verdict: did it look like a squat or a hinge, whatever the drill asked."""

    squat_max_hinge_ratio: float = Field(gt=0)
    squat_max_trunk_deg: Degrees
    squat_min_knee_deg: Degrees
    hips_at_knee_thigh_deg: Degrees
    load_hands_below_knee: LegLengths


class Rule(Table):
    enabled: bool = True
    cue: Optional[str] = None
    hold_s: Optional[float] = Field(None, ge=0)


class SquattingRule(Rule):
    check_from_hip_deg: Degrees
    max_thigh_deg: Degrees
    min_hinge_ratio: float = Field(gt=0)
    ratio_max_trunk_deg: Degrees
    ratio_min_knee_deg: Degrees
    max_knee_deg: Optional[Degrees] = None
    floor_hands_below_knee: LegLengths = Field(description="hands this far below the knees (leg lengths) mark a load taken from the floor")
    knee_led_hinge_ratio: float = Field(gt=0, description="on an oblique view, a bottom whose 3D hip/knee bend is under this is knee-led")


class LockedKneesRule(Rule):
    min_knee_deg: Degrees


class HeadRule(Rule):
    cue_dropped: Optional[str] = None
    min_trunk_deg: Degrees
    neutral_offset_deg: float = Field(ge=-90, le=90, description="where the model puts the ear on a neutral head, degrees off the hip-shoulder line (+ toward the floor)")
    max_dropped_deg: float = Field(gt=0, le=180)
    max_cranked_deg: float = Field(gt=0, le=180)


class RoundedBackRule(Rule):
    min_trunk_deg: Degrees = Field(description="the back's shape is judged once the trunk leans this far from upright")
    max_back_bend_deg: float = Field(gt=0, le=180, description="the back's outline may turn this much over a trunk length")


class IncompleteLockoutRule(Rule):
    pass


class OverextendedRule(Rule):
    max_extension_deg: float = Field(gt=0, le=90)


class TooFastRule(Rule):
    min_lowering_s: float = Field(gt=0, le=30)


class LoadAwayRule(Rule):
    check_from_hip_deg: Degrees
    min_hands_below_shoulder: LegLengths
    max_forward: float = Field(gt=0, le=2)


class FaultsTable(Table):
    hold_s: float = Field(ge=0, description="how long a fault must hold before it is raised")
    clear_margin_sigmas: float = Field(ge=0, description="a fault buzzes only when its value is past the limit by more than this many RMS of its own measurement noise")
    squatting_the_hinge: SquattingRule
    locked_knees: LockedKneesRule
    head_not_neutral: HeadRule
    rounded_back: RoundedBackRule
    incomplete_lockout: IncompleteLockoutRule
    overextended_lockout: OverextendedRule
    too_fast: TooFastRule
    load_away_from_body: LoadAwayRule

    def rule(self, fault: Fault) -> Rule:
        return getattr(self, fault.value)

    def enabled(self, fault: Fault) -> bool:
        return self.rule(fault).enabled

    def cue(self, fault: Fault) -> str:
        return self.rule(fault).cue or DEFAULT_CUES[fault]

    def hold(self, fault: Fault) -> float:
        rule = self.rule(fault)
        return self.hold_s if rule.hold_s is None else rule.hold_s


class Profile(Table):
    name: str
    title: str
    description: str = ""
    base: Optional[str] = None
    kinematics: KinematicsTable
    framing: FramingTable
    reps: RepsTable
    movement: MovementTable
    faults: FaultsTable


def _search_dirs(profiles_dir: Optional[Path]) -> list[Path]:
    dirs = [Path(profiles_dir)] if profiles_dir else []
    return dirs + [PROFILES_DIR]


def list_profiles(profiles_dir: Optional[Path] = None) -> list[str]:
    """Names of the profiles available (a profiles_dir file shadows a shipped one of the same name)."""
    names: set[str] = set()
    for d in _search_dirs(profiles_dir):
        if d.is_dir():
            names.update(p.stem for p in d.glob("*.toml"))
    return sorted(names)


def _find(name: str, profiles_dir: Optional[Path]) -> Path:
    for d in _search_dirs(profiles_dir):
        path = d / f"{name}.toml"
        if path.is_file():
            return path
    raise ConfigError(f"unknown drill profile {name!r}; available: {', '.join(list_profiles(profiles_dir))}")


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"cannot read profile {path}: {err}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"cannot read profile {path}: it is not UTF-8 text; save it as UTF-8") from None


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _raw(name: str, profiles_dir: Optional[Path], seen: tuple[str, ...] = ()) -> tuple[dict[str, Any], Path]:
    if name in seen:
        raise ConfigError(f"profile {name!r} names itself as a base ({' -> '.join(seen + (name,))})")
    path = _find(name, profiles_dir)
    data = _read(path)
    base = data.get("base")
    if base is not None:
        if not isinstance(base, str):
            raise ConfigError(f"profile {path}: base: must be a profile name (got {base!r})")
        parent, _ = _raw(base, profiles_dir, seen + (name,))
        parent.pop("name", None)
        parent.pop("title", None)
        parent.pop("description", None)
        data = _merge(parent, data)
    return data, path


def profile_titles(profiles_dir: Optional[Path] = None) -> dict[str, str]:
    """Each drill's title as a coach reads it ("Wall-tap hinge" for wall_tap_hinge): what the pages
    show instead of a file name. A profile without a title keeps its name."""
    titles = {}
    for name in list_profiles(profiles_dir):
        title = _read(_find(name, profiles_dir)).get("title")
        titles[name] = title if isinstance(title, str) and title.strip() else name
    return titles


def load_profile(name: str = DEFAULT_PROFILE, profiles_dir: Optional[Path] = None) -> Profile:
    """Load and validate a drill profile by name; a ConfigError names the file and the bad key."""
    data, path = _raw(name, profiles_dir)
    data.setdefault("name", name)
    try:
        return Profile.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_errors(err, f"invalid drill profile {path}:")) from None
