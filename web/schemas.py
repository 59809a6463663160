"""Request and response shapes of the trainer page's API (they are also its OpenAPI schema).

Measured values can be missing or non-finite (a hinge ratio with the knee at 0°); they travel as
null so no response ever fails to serialise.
"""
from __future__ import annotations

import math
import unicodedata
from typing import Annotated, Any, Literal, Optional

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, model_validator

from device.analysis.cues import clean_cue
from device.analysis.vocabulary import Fault
from device.contract.records import FaultName

CorrectionKind = Literal["not_a_rep", "false_alarm", "missed_fault"]
MAX_ID = 2**63 - 1  # SQLite INTEGER range


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isfinite(value):
        return None
    return value


def _plain_text(value: str) -> str:
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn") for ch in value):
        raise ValueError("must not contain control or unprintable characters")
    return value


def _finite_trace(points: Any) -> Any:
    """One pass over a whole trace (thousands of numbers per session page), not one call per number."""
    if not isinstance(points, list):
        return points
    return [[v if not isinstance(v, float) or math.isfinite(v) else None for v in p] if isinstance(p, (list, tuple)) else p
            for p in points]


Measure = Annotated[Optional[float], BeforeValidator(_finite_or_none)]
Trace = Annotated[list[tuple[Optional[float], Optional[float], Optional[float]]], BeforeValidator(_finite_trace)]
AthleteLabel = Annotated[
    Optional[Annotated[str, StringConstraints(max_length=60), AfterValidator(_plain_text)]],
    BeforeValidator(lambda v: (v.strip() or None) if isinstance(v, str) else v),
    Field(description="Who trained; empty or null clears the label."),
]
Note = Annotated[str, Field(max_length=300), AfterValidator(_plain_text)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- responses ------------------------------------------------------------------------------


class FaultOut(BaseModel):
    id: int
    name: str
    cue: str
    at: float = Field(description="Unix seconds when the fault was raised.")
    t_rel_s: Measure = Field(description="Seconds after the rep started.")
    value: Measure = Field(description="The deciding measurement, in the rule's unit.")
    threshold: Measure = Field(description="The limit it crossed.")
    margin: Measure = Field(None, description="How far past the limit (positive = past), in the rule's unit.")
    noise: Measure = Field(None, description="The measurement noise band the margin had to exceed to buzz; "
                                             "null when the noise was not known yet.")
    quantity: Optional[str] = Field(None, description="What `value` measures (e.g. knee_flexion_deg, hinge_ratio); "
                                                      "null for a fault logged before it was kept.")
    says: str = Field("", description="The evidence in the coach's words: what was seen, what the movement asks.")
    past: str = Field("", description="How far past the limit against the reading's noise, in words.")


class BorderlineOut(FaultOut):
    """A fault that crossed its limit by no more than the measurement noise: logged, never buzzed."""

    id: Optional[int] = None  # type: ignore[assignment]  # kept beside the rep, not a row of its own


class CorrectionOut(BaseModel):
    id: int
    rep_id: int
    kind: CorrectionKind
    fault: Optional[str]
    note: str
    created_at: float


class RepBrief(BaseModel):
    """What the live page shows of the rep that just landed."""

    id: int
    session_id: int
    rep_index: int
    duration_s: Measure
    peak_hip_flexion_deg: Measure
    knee_flexion_at_bottom_deg: Measure
    hinge_ratio: Measure
    lockout_reached: bool
    faults: list[FaultOut]
    judged: bool = Field(description="False when the camera was not side-on: only a squat was judged (in 3D).")
    verdict: Literal["not judged", "faults", "borderline", "clean"] = Field(
        description="The rep's one verdict: a rep that looked like a squat is never clean.")


class RepOut(RepBrief):
    started_at: float
    bottom_at: float
    ended_at: float
    lowering_s: Measure
    rising_s: Measure
    trunk_angle_at_bottom_deg: Measure
    hip_shift_at_bottom: Measure = Field(description="Hips behind the ankle at the bottom, in leg lengths.")
    side: str
    movement: str
    corrections: list[CorrectionOut]
    counted: bool = Field(description="False once a trainer marked it as not a rep.")
    corrected_faults: list[str] = Field(description="The station's faults less false alarms, plus missed faults.")
    trace: Trace = Field(description="[seconds after the rep started, hip flexion °, knee flexion °].")
    borderline: list[BorderlineOut] = Field(default_factory=list, description=(
        "Faults that crossed their limit by no more than the measurement noise on those frames: "
        "not buzzed, shown so a trainer can look."))


class SessionOut(BaseModel):
    id: int
    started_at: float
    ended_at: Optional[float]
    duration_s: Measure
    in_progress: bool
    profile: str
    athlete: Optional[str]
    athlete_id: Optional[int] = Field(None, description="The athlete's id (GET /api/athletes/{id}); null when anonymous.")
    source: str
    clip: Optional[str] = Field(description="The clip's file name when the session replayed a clip.")
    reps: int
    clean_reps: int
    clean_pct: Measure
    fault_counts: dict[str, int]
    station: Optional[str] = Field(None, description="The station it was trained at (the hub's page; null on a station's own).")


class SessionList(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[SessionOut]


class SessionStats(BaseModel):
    reps: int
    clean_reps: int
    clean_pct: Measure
    fault_counts: dict[str, int]
    most_common_fault: Optional[str]
    most_common_fault_cue: str
    mean_lowering_s: Measure
    mean_rising_s: Measure
    mean_rep_s: Measure


class SessionDetail(BaseModel):
    session: SessionOut
    verdict: SessionStats = Field(description="As the station judged it.")
    corrected: SessionStats = Field(description="After the trainer's corrections.")
    corrections: int
    reps: list[RepOut]


class LiveOut(BaseModel):
    version: int
    state: str
    state_label: str
    cue: str
    profile: str
    profile_title: str = Field("", description="The drill's title, as the page shows it.")
    session_id: Optional[int]
    session_reps: int
    phase: str
    last_fault: Optional[str]
    last_fault_label: str
    last_fault_cue: str
    last_fault_at: Optional[float]
    last_fault_clock: str
    last_rep_id: Optional[int]
    last_rep: Optional[RepBrief]
    fps: Measure
    buzzer_enabled: bool
    logging_paused: bool
    storage: str = Field("", description="What is wrong with the rep log ('' when every rep reaches it): "
                         "a damaged file moved aside at start, reps kept in the pending file, or held in memory.")
    hub_link: str = Field("", description="Whether reps reach the gym's MQTT broker ('' when MQTT is off), "
                          "and how many wait in the outbox.")
    error: str
    updated_at: float


class StationOnFloor(BaseModel):
    """One station as the hub sees it now (from its retained state and availability messages)."""

    station: str
    online: Optional[bool] = Field(description="From its availability topic; null before the hub heard it.")
    state: Optional[str] = Field(description="nobody, in_view, in_rep, turn_sideways or camera_lost; null before its first state.")
    state_label: str
    drill_title: str = Field("", description="The station's drill by its title, as the floor shows it.")
    athlete: Optional[str] = Field(None, description="Who is up at the station; null: nobody named.")
    drill: Optional[str]
    reps_this_session: Optional[int]
    reps_today: Optional[int]
    last_fault: Optional[str]
    last_fault_label: str
    clean_pct_today: Measure
    buzzer_on: Optional[bool]
    state_at: Optional[float] = Field(description="When the station sent its state (Unix s).")
    last_rep_id: Optional[int] = Field(description="The hub's id of its newest stored rep.")
    last_rep_at: Optional[float]
    reps_stored: int = Field(description="Reps this hub stored from it since the hub started.")
    reps_at_hub_today: int = Field(description="Reps started today (the gym's day) that this hub holds from it.")
    reps_not_at_hub: Optional[int] = Field(description="Reps the station says it made today that the hub does not "
                                           "hold (yet); null before its first state.")
    waiting: Optional[int] = Field(description="Reps and sessions in the station's outbox, not yet confirmed by the "
                                   "hub (from its state); null from a station that does not say.")
    hub_gap: str = Field(description="What the station made today against what the hub holds, in words.")


class HubLinkOut(BaseModel):
    """The hub's own link to the broker: when it is lost, the stations' states are as last heard."""

    broker: Literal["connecting", "connected", "lost"]
    since: float = Field(description="When it last changed (Unix s).")


class FloorOut(BaseModel):
    """Every station's live state on one screen, the hub's own link, and what the hub dropped."""

    version: int
    hub_link: HubLinkOut
    stations: list[StationOnFloor]
    dropped: dict[str, int] = Field(description="Messages dropped since the hub started, by reason.")
    backlog: int = Field(description="Messages received and not stored yet.")


class SettingsOut(BaseModel):
    station_running: bool = Field(description="Drill and buzzer can change only while `station run` serves the page.")
    profile: Optional[str]
    profiles: list[str]
    buzzer_enabled: Optional[bool]
    voice_enabled: Optional[bool] = Field(None, description="Spoken cues on or off; null: no voice set up on this station.")
    session_id: Optional[int]
    athlete: Optional[str]
    can_write: bool = Field(description="Whether this request carries a valid write token.")
    writes_enabled: bool = Field(description="Whether a write token is configured and the rep log is writable.")


class AthleteOut(BaseModel):
    session_id: int
    athlete: Optional[str]


class DbHealth(BaseModel):
    ok: bool
    path: str
    readonly: bool
    schema_version: Optional[int]
    sessions: Optional[int]
    reps: Optional[int]
    integrity: Optional[str] = Field(None, description="PRAGMA integrity_check, only with deep=true.")
    error: str = ""


class LiveHealth(BaseModel):
    state: str
    fps: Measure
    age_s: Measure = Field(description="Seconds since the live loop last changed its snapshot.")
    error: str
    storage: str = Field("", description="What is wrong with the rep log, as on the live page ('' when nothing).")
    hub_link: str = Field("", description="The gym's broker as on the live page ('' when MQTT is off).")


class HubHealth(BaseModel):
    """The hub's own work (`station hub`): whether it reads the broker and whether its writes go in."""

    broker: Literal["connecting", "connected", "lost"]
    write_error: str = Field(description="Why the database refuses the hub's writes ('' while they go in); the "
                             "messages wait at the broker and in the stations' outboxes meanwhile.")
    write_error_since: Optional[float] = None
    backlog: int = Field(description="Messages received and not stored yet.")
    dropped: dict[str, int]


class HealthOut(BaseModel):
    status: Literal["ok", "degraded", "error"]
    version: str
    time: float
    db: DbHealth
    live: Optional[LiveHealth]
    hub: Optional[HubHealth] = Field(None, description="The hub's page only.")
    checks: Optional[list[dict[str, Any]]] = Field(None, description="`station doctor` checks, only with deep=true.")


class Problem(BaseModel):
    detail: str


# --- requests -------------------------------------------------------------------------------


class CorrectionIn(Strict):
    kind: CorrectionKind = Field(
        description="not_a_rep: the station counted something that was not a rep; false_alarm: a fault it raised "
        "was not there; missed_fault: a fault it did not raise."
    )
    fault: Optional[Fault] = Field(None, description="Required for false_alarm and missed_fault.")
    note: Note = ""

    @model_validator(mode="after")
    def _fault_matches_kind(self) -> "CorrectionIn":
        if self.kind == "not_a_rep" and self.fault is not None:
            raise ValueError("a not_a_rep correction takes no fault")
        if self.kind != "not_a_rep" and self.fault is None:
            raise ValueError(f"a {self.kind} correction needs the fault it is about")
        return self


class AthleteIn(Strict):
    athlete: AthleteLabel = None


class SettingsIn(Strict):
    profile: Optional[str] = Field(None, max_length=64, description="A drill profile name from GET /api/settings.")
    buzzer_enabled: Optional[bool] = None
    voice_enabled: Optional[bool] = Field(None, description="Spoken cues on or off (where a voice is set up).")
    athlete: AthleteLabel = Field(None, description="Athlete label for the session running now.")

    @model_validator(mode="after")
    def _something_to_change(self) -> "SettingsIn":
        if not self.model_fields_set:
            raise ValueError("give at least one of profile, buzzer_enabled, voice_enabled, athlete")
        return self


CueText = Annotated[str, Field(max_length=400), AfterValidator(clean_cue)]


class CuesIn(Strict):
    cues: dict[FaultName, CueText] = Field(description="Fault name -> the coach's words; an empty string goes "
                                                        "back to the drill's own cue. Faults left out go back too.")


class CueOut(BaseModel):
    fault: str
    cue: str = Field(description="What the station shows and says for this fault under this drill.")
    own: bool = Field(description="Whether these are the coach's words (else the drill's own cue).")
    drill_cue: str = Field(description="The drill profile's own cue.")


class CuesOut(BaseModel):
    drill: str
    cues: list[CueOut]


# --- athletes and the drill ladder ----------------------------------------------------------

AthleteName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=60),
                        AfterValidator(_plain_text)]
# Standing height: 50-250 cm covers every athlete a station will see; outside that it is a typo.
HeightCm = Annotated[Optional[float], Field(ge=50, le=250, description="Standing height in cm (turns hip travel into cm).")]


class NewAthlete(Strict):
    name: AthleteName
    notes: Note = ""
    height_cm: HeightCm = None


class AthleteChange(Strict):
    """Any of the fields; height_cm null clears it."""

    name: Optional[AthleteName] = None
    notes: Optional[Note] = None
    height_cm: HeightCm = None

    @model_validator(mode="after")
    def _something_to_change(self) -> "AthleteChange":
        if not self.model_fields_set:
            raise ValueError("give at least one of name, notes, height_cm")
        if "name" in self.model_fields_set and self.name is None:
            raise ValueError("an athlete needs a name")
        if "notes" in self.model_fields_set and self.notes is None:
            raise ValueError("notes must be text (empty clears them)")
        return self


class AthleteSummary(BaseModel):
    id: int
    name: str
    notes: str
    height_cm: Optional[float]
    created_at: float
    sessions: int
    reps: int
    last_session_at: Optional[float]


class AthleteList(BaseModel):
    items: list[AthleteSummary]


StepDecisionKind = Literal["accepted", "dismissed"]


class StepDecisionIn(Strict):
    drill: str = Field(max_length=64, description="The step the suggestion is about (its mastered drill).")
    next_drill: str = Field(max_length=64, description="The step suggested next.")
    decision: StepDecisionKind


class StepDecisionOut(BaseModel):
    id: int
    drill: str
    next_drill: str
    decision: StepDecisionKind
    evidence: list[int] = Field(description="The sessions that met the rule when the trainer answered.")
    decided_at: float


class MasteryRuleOut(BaseModel):
    min_clean_reps: int
    min_days: int
    min_clean_share: float
    recent_sessions: int
    none_in_last_session: list[str]


class MasteryOut(BaseModel):
    met: bool
    evidence: list[int] = Field(description="Session ids judged: the drill's most recent sessions, oldest first.")
    clean_reps: int
    reps: int
    clean_share: Measure
    days: int
    missing: list[str] = Field(description="What is not met yet.")


class StepOut(BaseModel):
    index: int
    drill: str
    also: list[str] = Field(default_factory=list, description="Other drills whose sessions count as this step.")
    why: str
    tried: bool
    rule: MasteryRuleOut
    mastery: MasteryOut


class LadderOut(BaseModel):
    steps: list[StepOut]


class SuggestionOut(BaseModel):
    drill: str
    next_drill: str
    evidence: list[int]


class DrillSession(BaseModel):
    """One session of the athlete, as progress reads it (counted reps, corrections applied)."""

    session_id: int
    started_at: float
    drill: str
    reps: int
    clean_reps: int
    clean_pct: Measure
    mean_depth_deg: Measure = Field(description="Mean peak hip flexion of the counted reps.")
    mean_lowering_s: Measure
    mean_rep_s: Measure
    hip_travel: Measure = Field(description="Median hips behind the ankle at the bottom, in leg lengths.")
    hip_travel_cm: Measure = Field(description="The same in cm (null without the athlete's height).")
    ahead: bool = Field(False, description="A drill beyond the athlete's current step: trained ahead of the ladder.")


class RepPoint(BaseModel):
    rep_id: int
    session_id: int
    started_at: float
    drill: str
    clean: bool
    depth_deg: Measure = Field(description="Peak hip flexion.")
    lowering_s: Measure
    rep_s: Measure
    hip_travel: Measure = Field(description="Hips behind the ankle at the bottom, in leg lengths.")
    hip_travel_cm: Measure


class FaultTally(BaseModel):
    name: str
    count: int
    cue: str


class HipTravelTrend(BaseModel):
    """Wall-tap progress: how far back the hips go per rep, session by session."""

    unit: Literal["leg lengths", "cm"]
    first: Measure = Field(description="The first wall-tap session's median, in `unit`.")
    last: Measure = Field(description="The latest wall-tap session's median, in `unit`.")
    per_session: Measure = Field(description="Least-squares change per session, in `unit` (positive: further back).")
    sessions: int


class AthleteProgress(BaseModel):
    athlete: AthleteSummary
    current_step: str
    current_index: int
    ready_for: Optional[str] = Field(description="The next drill when the current step's rule is met and not yet answered.")
    suggestion: Optional[SuggestionOut]
    steps: list[StepOut]
    other_drills: list[str] = Field(description="Drills trained that are not on the ladder.")
    faults: list[FaultTally] = Field(description="Most frequent faults (after corrections), with their cues.")
    hip_travel: Optional[HipTravelTrend]
    sessions: list[DrillSession]
    decisions: list[StepDecisionOut]
    reps: list[RepPoint]
