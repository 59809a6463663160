"""The changes a trainer can make, shared by the JSON API and the page's forms.

Each checks everything before writing anything, so a rejected request leaves the rep log as it
was. Corrections sit beside the station's verdict; they never edit it.
"""
from __future__ import annotations

from typing import Any, Optional

from fastapi import HTTPException

from device.analysis.cues import SETTING as CUES_SETTING, CueWords
from device.analysis.vocabulary import Fault
from device.errors import ConfigError
from device.station.live import UnknownDrill, change_drill
from web.context import WebContext
from web.progress import athlete_progress, drill_cues, said_cue
from web.schemas import (AthleteChange, AthleteOut, CorrectionIn, CorrectionOut, CueOut, CuesIn, CuesOut, NewAthlete,
                         SettingsIn, StepDecisionIn, StepDecisionOut)


def read_back(row: Optional[dict[str, Any]], what: str) -> dict[str, Any]:
    """A row read again right after this request wrote it: gone only if another request deleted
    it in between, which is the client's 404, not the page's 500."""
    if row is None:
        raise HTTPException(404, f"{what} was deleted while this request changed it")
    return row


def add_correction(ctx: WebContext, rep_id: int, body: CorrectionIn) -> CorrectionOut:
    rep = ctx.store.get_rep(rep_id)
    if rep is None:
        raise HTTPException(404, f"rep {rep_id} does not exist")
    fault = body.fault.value if body.fault is not None else None
    raised = {f["name"] for f in rep["faults"]}
    if body.kind == "false_alarm" and fault not in raised:
        named = ", ".join(sorted(raised)) or "none"
        raise HTTPException(400, f"rep {rep_id} has no {fault} fault to call a false alarm (its faults: {named})")
    if body.kind == "missed_fault" and fault in raised:
        raise HTTPException(400, f"rep {rep_id} already has {fault}; a missed fault must be one the station did not raise")
    if any(c["kind"] == body.kind and c["fault"] == fault for c in rep["corrections"]):
        raise HTTPException(409, f"rep {rep_id} already has this correction ({body.kind}{' ' + fault if fault else ''})")
    ctx.require_log().add_correction(rep_id, body.kind, fault, body.note)
    created = read_back(ctx.store.get_rep(rep_id), f"rep {rep_id}")["corrections"][-1]
    return CorrectionOut(**created)


def delete_correction(ctx: WebContext, correction_id: int) -> None:
    if not ctx.require_log().delete_correction(correction_id):
        raise HTTPException(404, f"correction {correction_id} does not exist")


def set_athlete(ctx: WebContext, session_id: int, athlete: Optional[str]) -> AthleteOut:
    if ctx.store.get_session(session_id) is None:
        raise HTTPException(404, f"session {session_id} does not exist")
    ctx.require_log().set_athlete(session_id, athlete)
    if ctx.controls is not None and session_id == ctx.live_session_id:
        ctx.controls.set_athlete(athlete)  # the running station labels what it writes next the same way
    return AthleteOut(session_id=session_id, athlete=athlete)


def delete_session(ctx: WebContext, session_id: int) -> None:
    if ctx.store.get_session(session_id) is None:
        raise HTTPException(404, f"session {session_id} does not exist")
    if session_id == ctx.live_session_id:
        raise HTTPException(409, f"session {session_id} is running now; delete it after it ends")
    ctx.require_log().delete_session(session_id)


def apply_settings(ctx: WebContext, body: SettingsIn) -> None:
    if ctx.controls is None or ctx.live is None:
        raise HTTPException(409, "no station is running here (station serve): drill and buzzer change only on the page of `station run`")
    given = body.model_fields_set
    if "profile" in given and body.profile is None:
        raise HTTPException(400, "profile must name a drill")
    if "buzzer_enabled" in given and body.buzzer_enabled is None:
        raise HTTPException(400, "buzzer_enabled must be true or false")
    session_id = ctx.live_session_id
    if "athlete" in given and session_id is not None and ctx.store.get_session(session_id) is None:
        raise HTTPException(409, f"the running session {session_id} is not in the rep log yet; try again after its first rep")
    if "profile" in given and body.profile is not None:  # the first change: a refusal here leaves all as it was
        try:
            change_drill(ctx.controls, ctx.profiles, body.profile)
        except UnknownDrill as err:
            raise HTTPException(400, str(err)) from None
    if "buzzer_enabled" in given:
        ctx.controls.set_buzzer_enabled(bool(body.buzzer_enabled))
    if "voice_enabled" in given:
        if body.voice_enabled is None:
            raise HTTPException(400, "voice_enabled must be true or false")
        if ctx.live.snapshot()[1].voice_enabled is None:
            raise HTTPException(409, "no voice is set up on this station: set voice.enabled = true in its config "
                                "(and check espeak-ng and a speaker with `station doctor`)")
        ctx.controls.set_voice_enabled(bool(body.voice_enabled))
    if "athlete" in given:
        ctx.controls.set_athlete(body.athlete)
        if session_id is not None:
            ctx.require_log().set_athlete(session_id, body.athlete)


def cues_out(ctx: WebContext, drill: str) -> CuesOut:
    """A drill's cues as the station says them: the coach's words where set, else the drill's own,
    for each fault the drill judges."""
    try:
        profile, own = drill_cues(ctx, drill)
    except ConfigError:
        raise HTTPException(404, f"no drill profile named {drill!r}") from None
    return CuesOut(drill=drill, cues=[
        CueOut(fault=f.value, cue=said_cue(profile, own, f), own=f in own, drill_cue=profile.faults.cue(f))
        for f in Fault if profile.faults.enabled(f)])


def set_cues(ctx: WebContext, drill: str, body: CuesIn) -> CuesOut:
    """Keep a drill's cue words in the station's settings (on disk first), then tell the running
    station, which says them from its next fault."""
    current = cues_out(ctx, drill)  # 404 for an unknown drill
    judged = {c.fault for c in current.cues}
    if unknown := sorted(set(body.cues) - judged):
        raise HTTPException(400, f"{drill} does not judge {', '.join(unknown)}; its faults: {', '.join(sorted(judged))}")
    log = ctx.require_writable()
    words = CueWords(log.get_setting(CUES_SETTING))
    words.replace(drill, body.cues)
    log.set_setting(CUES_SETTING, words.to_saved())
    if ctx.controls is not None:
        ctx.controls.set_cues(drill, dict(body.cues))
    return cues_out(ctx, drill)


def _name_free(ctx: WebContext, name: str, athlete_id: Optional[int] = None) -> None:
    taken = next((a for a in ctx.require_log().list_athletes() if a["name"].casefold() == name.casefold()), None)
    if taken is not None and taken["id"] != athlete_id:
        raise HTTPException(409, f"an athlete named {taken['name']!r} already exists (athlete {taken['id']})")


def add_athlete(ctx: WebContext, body: NewAthlete) -> dict:
    _name_free(ctx, body.name)
    athlete_id = ctx.require_log().add_athlete(body.name, body.notes, body.height_cm)
    return read_back(ctx.require_log().get_athlete(athlete_id), f"athlete {athlete_id}")


def change_athlete(ctx: WebContext, athlete_id: int, body: AthleteChange) -> dict:
    if ctx.require_log().get_athlete(athlete_id) is None:
        raise HTTPException(404, f"athlete {athlete_id} does not exist")
    fields = body.model_dump(include=body.model_fields_set)
    if "name" in fields:
        _name_free(ctx, fields["name"], athlete_id)
    held = _held_by_station(ctx, athlete_id)
    ctx.require_log().update_athlete(athlete_id, **fields)
    athlete = read_back(ctx.require_log().get_athlete(athlete_id), f"athlete {athlete_id}")
    if held and "name" in fields and ctx.controls is not None:  # (held implies a running station)
        ctx.controls.set_athlete(athlete["name"])  # the station keeps writing the new name
    return athlete


def _held_by_station(ctx: WebContext, athlete_id: int) -> bool:
    """Whether the running station labels its sessions with this athlete: the running session is
    theirs, or they are up next (no session running yet). Read before a rename or delete changes it."""
    if ctx.controls is None or ctx.live is None:
        return False
    athlete = ctx.require_log().get_athlete(athlete_id)
    up = ctx.live.snapshot()[1].athlete
    if athlete is not None and up is not None and up.strip().casefold() == athlete["name"].casefold():
        return True
    running = ctx.store.get_session(ctx.live_session_id) if ctx.live_session_id is not None else None
    return running is not None and running["athlete_id"] == athlete_id


def delete_athlete(ctx: WebContext, athlete_id: int) -> None:
    """The athlete goes; their sessions and reps stay, anonymous."""
    athlete = ctx.require_log().get_athlete(athlete_id)
    if athlete is None:
        raise HTTPException(404, f"athlete {athlete_id} does not exist")
    held = _held_by_station(ctx, athlete_id)
    ctx.require_log().delete_athlete(athlete_id)
    if held and ctx.controls is not None:  # (held implies a running station)
        ctx.controls.set_athlete(None)  # the station must not bring the name back with its next session


def athlete_up(ctx: WebContext, athlete_id: int) -> None:
    """"Who is up": the running session and the next ones are this athlete's."""
    athlete = ctx.require_log().get_athlete(athlete_id)
    if athlete is None:
        raise HTTPException(404, f"athlete {athlete_id} does not exist")
    apply_settings(ctx, SettingsIn(athlete=athlete["name"]))


def decide_step(ctx: WebContext, athlete_id: int, body: StepDecisionIn) -> StepDecisionOut:
    """Keep the trainer's answer to the suggestion the page shows now (and only to that one)."""
    progress = athlete_progress(ctx, athlete_id)
    suggestion = progress.suggestion
    if suggestion is None or (suggestion.drill, suggestion.next_drill) != (body.drill, body.next_drill):
        shown = f"{suggestion.drill} -> {suggestion.next_drill}" if suggestion else "none"
        raise HTTPException(409, f"{body.drill} -> {body.next_drill} is not the step suggested now (suggested: {shown})")
    decision_id = ctx.require_log().add_step_decision(athlete_id, body.drill, body.next_drill, body.decision, suggestion.evidence)
    return StepDecisionOut(**next(d for d in ctx.require_log().step_decisions(athlete_id) if d["id"] == decision_id))
