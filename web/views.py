"""Turn rep-log rows into what the trainer reads: sessions, reps with their corrections applied
beside the verdict, and the session summary (reps, clean-rep %, most common fault, tempo)."""
from __future__ import annotations

import math
import time
from collections import Counter
from typing import Any, Iterable, Mapping, Optional

from device.analysis.ladder import clean_after_corrections, corrected_faults, is_counted
from device.analysis.vocabulary import DEFAULT_CUES, Fault, fault_from_name, rep_verdict
from device.hub.floor import FloorSnapshot, StationView
from device.station.live import LiveSnapshot, StationState
from web.evidence import evidence_line, past_line
from web.schemas import (BorderlineOut, FaultOut, FloorOut, HubLinkOut, LiveOut, RepBrief, RepOut, SessionOut,
                         SessionStats, StationOnFloor)

STATE_LABELS = {
    StationState.IDLE: "Waiting for an athlete",
    StationState.TRACKING: "Tracking",
    StationState.FAULT: "Fault",
    StationState.TURN_SIDEWAYS: "Turn sideways",
    StationState.OUT_OF_FRAME: "Step back into frame",
    StationState.ERROR: "Error",
    StationState.STOPPED: "Stopped",
}


def fault_label(name: Optional[str]) -> str:
    return name.replace("_", " ") if name else ""


def default_cue(name: Optional[str]) -> str:
    fault = fault_from_name(name or "")
    return DEFAULT_CUES[fault] if fault else ""


def clip_name(source: str) -> Optional[str]:
    """`file:NAME.mp4` (a replayed clip) → NAME.mp4; cameras have no clip."""
    if not source.startswith("file:"):
        return None
    return source[len("file:"):] or None


def _mean(values: Iterable[Optional[float]]) -> Optional[float]:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return sum(finite) / len(finite) if finite else None


def _pct(part: int, whole: int) -> Optional[float]:
    return round(100.0 * part / whole, 1) if whole else None


def fault_out(row: dict[str, Any], rep_started_at: float, shape: type[FaultOut] = FaultOut) -> FaultOut:
    """A fault row, or (shape=BorderlineOut) a borderline fault kept beside its rep, which has no id."""
    name, quantity, value, threshold = row["name"], row.get("quantity"), row["value"], row["threshold"]
    return shape(id=row.get("id"), name=name, cue=row["cue"], at=row["at"], t_rel_s=row["at"] - rep_started_at,
                 value=value, threshold=threshold, margin=row.get("margin"), noise=row.get("noise"), quantity=quantity,
                 says=evidence_line(name, quantity, value, threshold),
                 past=past_line(name, quantity, value, threshold, row.get("margin"), row.get("noise")))


def stored_verdict(rep: dict[str, Any]) -> str:
    """A stored rep's one verdict, as the station gave it (rep_verdict)."""
    return rep_verdict(bool(rep.get("judged", True)), bool(rep["faults"]), bool(rep.get("borderline")), rep["movement"])


def rep_brief(rep: dict[str, Any]) -> RepBrief:
    return RepBrief(
        id=rep["id"], session_id=rep["session_id"], rep_index=rep["rep_index"],
        duration_s=rep["ended_at"] - rep["started_at"], peak_hip_flexion_deg=rep["peak_hip_flexion_deg"],
        knee_flexion_at_bottom_deg=rep["knee_flexion_at_bottom_deg"], hinge_ratio=rep["hinge_ratio"],
        lockout_reached=rep["lockout_reached"], faults=[fault_out(f, rep["started_at"]) for f in rep["faults"]],
        judged=bool(rep.get("judged", True)), verdict=stored_verdict(rep),
    )


def rep_out(rep: dict[str, Any]) -> RepOut:
    return RepOut(
        **rep_brief(rep).model_dump(),
        started_at=rep["started_at"], bottom_at=rep["bottom_at"], ended_at=rep["ended_at"],
        lowering_s=rep["lowering_s"], rising_s=rep["rising_s"], trunk_angle_at_bottom_deg=rep["trunk_angle_at_bottom_deg"],
        hip_shift_at_bottom=rep["hip_shift_at_bottom"], side=rep["side"], movement=rep["movement"],
        corrections=rep["corrections"], counted=is_counted(rep), corrected_faults=corrected_faults(rep),
        trace=rep["trace"], borderline=[fault_out(b, rep["started_at"], BorderlineOut) for b in rep.get("borderline", [])],
    )


def session_out(row: dict[str, Any], live_session_id: Optional[int] = None) -> SessionOut:
    """A history row; `row` comes from RepStore.list_sessions (or `with_counts`)."""
    end = row["ended_at"] if row["ended_at"] is not None else row.get("last_rep_at")
    return SessionOut(
        id=row["id"], started_at=row["started_at"], ended_at=row["ended_at"],
        duration_s=(end - row["started_at"]) if end is not None else None,
        in_progress=row["ended_at"] is None and row["id"] == live_session_id,
        profile=row["profile"], athlete=row["athlete"], athlete_id=row.get("athlete_id"), source=row["source"], clip=clip_name(row["source"]),
        reps=row["reps"], clean_reps=row["clean_reps"], clean_pct=_pct(row["clean_reps"], row["reps"]),
        fault_counts=row["fault_counts"], station=row.get("station"),
    )


def with_counts(session: dict[str, Any], reps: list[dict[str, Any]]) -> dict[str, Any]:
    """A RepStore.get_session row with the aggregates list_sessions adds, from its reps."""
    counts = Counter(f["name"] for r in reps for f in r["faults"])
    return {**session, "reps": len(reps), "clean_reps": sum(1 for r in reps if stored_verdict(r) == "clean"),
            "last_rep_at": max((r["ended_at"] for r in reps), default=None), "fault_counts": dict(counts)}


def session_stats(reps: list[dict[str, Any]], corrected: bool) -> SessionStats:
    if corrected:
        reps = [r for r in reps if is_counted(r)]
        faults = [corrected_faults(r) for r in reps]
        clean = sum(1 for r in reps if clean_after_corrections(r))
    else:
        faults = [[f["name"] for f in r["faults"]] for r in reps]
        clean = sum(1 for r in reps if stored_verdict(r) == "clean")
    counts = Counter(name for names in faults for name in names)
    said = {f["name"]: f["cue"] for r in reps for f in r["faults"] if f.get("cue")}  # the latest said wins
    # most_common breaks ties by first appearance; prefer the fault vocabulary's order instead
    order = {f.value: i for i, f in enumerate(Fault)}
    top = min(counts, key=lambda n: (-counts[n], order.get(n, len(order)), n)) if counts else None
    return SessionStats(
        reps=len(reps), clean_reps=clean, clean_pct=_pct(clean, len(reps)), fault_counts=dict(counts),
        # the cue as the station said it (a coach's own words, where set), else the fault's usual one
        most_common_fault=top, most_common_fault_cue=said.get(top or "") or default_cue(top),
        mean_lowering_s=_mean(r["lowering_s"] for r in reps), mean_rising_s=_mean(r["rising_s"] for r in reps),
        mean_rep_s=_mean(r["ended_at"] - r["started_at"] for r in reps),
    )


def drill_title(titles: Mapping[str, str], name: Optional[str]) -> str:
    """A drill as a coach reads it: its profile's title ("Wall-tap hinge"), else its name in words."""
    if not name:
        return "–"
    return titles.get(name) or name.replace("_", " ").capitalize()


def live_out(version: int, snap: LiveSnapshot, last_rep: Optional[RepBrief], titles: Mapping[str, str]) -> LiveOut:
    return LiveOut(
        version=version, **snap.to_dict(), profile_title=drill_title(titles, snap.profile),
        state_label=STATE_LABELS.get(snap.state, snap.state.replace("_", " ").capitalize()),
        last_fault_label=fault_label(snap.last_fault),
        last_fault_clock=time.strftime("%H:%M:%S", time.localtime(snap.last_fault_at)) if snap.last_fault_at else "",
        last_rep=last_rep,
    )


FLOOR_STATE_LABELS = {  # the contract's states (device/contract/topics.py), in the coach's words
    "nobody": "Waiting for an athlete", "in_view": "Athlete in view", "in_rep": "In a rep",
    "turn_sideways": "Turn sideways", "camera_lost": "Camera lost",
}


def station_on_floor(view: StationView, titles: Mapping[str, str], broker: Optional[bool] = True) -> StationOnFloor:
    """One station's card. While the hub has lost the broker it hears nothing from any station: each
    shows what it last said, marked so, and none is called offline for the hub's own trouble."""
    state = view.state or {}
    share = state.get("clean_share_today")
    label = FLOOR_STATE_LABELS.get(state.get("state", ""), "No state yet") if view.online is not False else "Offline"
    if broker is False:
        label = f"{label} (as last heard: the hub lost the broker)"
    said_today = state.get("reps_today")
    missing = max(0, said_today - view.stored_today) if said_today is not None else None
    gap = f"{view.stored_today} of today's reps at the hub"
    if said_today is not None:
        gap = f"{said_today} made today · {view.stored_today} at the hub" + (f" · {missing} not at the hub yet" if missing else "")
    return StationOnFloor(
        station=view.station, online=view.online, state=state.get("state"), state_label=label, drill=state.get("drill"),
        drill_title=drill_title(titles, state.get("drill")), athlete=state.get("athlete"),
        reps_this_session=state.get("reps_this_session"), reps_today=state.get("reps_today"),
        last_fault=state.get("last_fault"), last_fault_label=fault_label(state.get("last_fault")),
        clean_pct_today=round(100.0 * share, 1) if share is not None else None, buzzer_on=state.get("buzzer_on"),
        state_at=state.get("at"), last_rep_id=view.last_rep_id, last_rep_at=view.last_rep_at, reps_stored=view.reps_stored,
        reps_at_hub_today=view.stored_today, waiting=state.get("waiting"),
        reps_not_at_hub=missing, hub_gap=gap,
    )


def floor_out(snap: FloorSnapshot, titles: Mapping[str, str]) -> FloorOut:
    link = HubLinkOut(broker="connecting" if snap.broker is None else "connected" if snap.broker else "lost",
                      since=snap.broker_since)
    return FloorOut(version=snap.version, hub_link=link, stations=[station_on_floor(v, titles, snap.broker) for v in snap.stations],
                    dropped=snap.dropped, backlog=snap.backlog)
