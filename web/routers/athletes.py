"""Athletes and the drill ladder: the API (/api/athletes, /api/ladder), the athletes' pages, and
their forms. Every change goes through web/actions.py, token-gated like the rest."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from device.contract.records import SessionFilter
from web import actions
from web.context import AthleteId, Reader, Writer
from web.charts import series_chart
from web.exports import reps_csv, reps_json
from web.progress import MAX_SESSIONS, WALL_TAP, athlete_progress, ladder_out, load_athlete
from web.routers.common import WRITE, ExportFormat, download, export_responses, problems
from web.routers.forms import ERRORS, REDIRECT, Next, back, confirmed, validated
from web.routers.pages import HTML, Flash, render
from web.views import drill_title
from web.schemas import (AthleteChange, AthleteList, AthleteProgress, AthleteSummary, LadderOut, NewAthlete,
                         StepDecisionIn, StepDecisionOut)

router = APIRouter(prefix="/api", tags=["athletes"])
pages = APIRouter(tags=["pages"], default_response_class=HTMLResponse)
CHART_REPS = 120  # per-rep charts show the latest reps of a drill: a phone-wide chart holds no more
forms = APIRouter(tags=["page forms"])


# --- API ---------------------------------------------------------------------------------------


@router.get("/ladder", response_model=LadderOut, responses=problems(401))
def get_ladder(ctx: Reader) -> LadderOut:
    """The drill ladder in coaching order, each step with its mastery rule."""
    return ladder_out(ctx.ladder)


@router.get("/athletes", response_model=AthleteList, responses=problems(401))
def list_athletes(ctx: Reader) -> AthleteList:
    """Every athlete by name, with sessions, reps and the last session's start."""
    return AthleteList(items=[AthleteSummary(**a) for a in ctx.require_log().list_athletes()])


@router.post("/athletes", status_code=201, response_model=AthleteSummary, responses={**WRITE, **problems(400)})
def add_athlete(ctx: Writer, body: NewAthlete) -> AthleteSummary:
    """A new athlete (name, optional notes and height). A name already taken answers 409."""
    return AthleteSummary(**actions.add_athlete(ctx, body))


@router.get("/athletes/{athlete_id}", response_model=AthleteProgress, responses=problems(401, 404))
def get_athlete(ctx: Reader, athlete_id: AthleteId) -> AthleteProgress:
    """The athlete's progress: ladder step, mastery with evidence, the suggestion, sessions, reps, faults."""
    return athlete_progress(ctx, athlete_id)


@router.patch("/athletes/{athlete_id}", response_model=AthleteSummary, responses={**WRITE, **problems(400, 404)})
def change_athlete(ctx: Writer, athlete_id: AthleteId, body: AthleteChange) -> AthleteSummary:
    """Rename, or change notes or height. Sessions follow the new name; no rep changes."""
    return AthleteSummary(**actions.change_athlete(ctx, athlete_id, body))


@router.delete("/athletes/{athlete_id}", status_code=204, response_class=Response, responses={**WRITE, **problems(404)})
def delete_athlete(ctx: Writer, athlete_id: AthleteId) -> Response:
    """Forget the athlete. Their sessions and reps stay, anonymous."""
    actions.delete_athlete(ctx, athlete_id)
    return Response(status_code=204)


@router.put("/athletes/{athlete_id}/up", response_model=AthleteSummary, responses={**WRITE, **problems(400, 404)})
def athlete_up(ctx: Writer, athlete_id: AthleteId) -> AthleteSummary:
    """Who is up: the running session (if any) and the next ones are this athlete's."""
    actions.athlete_up(ctx, athlete_id)
    return AthleteSummary(**load_athlete(ctx, athlete_id))


@router.post("/athletes/{athlete_id}/decisions", status_code=201, response_model=StepDecisionOut,
             responses={**WRITE, **problems(400, 404)})
def decide(ctx: Writer, athlete_id: AthleteId, body: StepDecisionIn) -> StepDecisionOut:
    """Accept or dismiss the step suggested now (409 when it is not the one suggested)."""
    return actions.decide_step(ctx, athlete_id, body)


@router.get("/athletes/{athlete_id}/export", response_class=Response,
            responses={**export_responses(), **problems(401, 404)})
def export_athlete(ctx: Reader, athlete_id: AthleteId, format: ExportFormat = "csv") -> Response:
    """The athlete's reps as CSV (one row per rep), or their progress as JSON."""
    athlete = load_athlete(ctx, athlete_id)
    if format == "csv":
        sessions = {s["id"]: s for s in ctx.store.list_sessions(SessionFilter(athlete_id=athlete_id), limit=MAX_SESSIONS)}
        body = reps_csv(ctx.require_log().athlete_reps(athlete_id), sessions)
    else:
        body = reps_json(athlete_progress(ctx, athlete_id).model_dump())
    return download(body, format, f"hinge-athlete-{athlete['id']}")


# --- pages -------------------------------------------------------------------------------------


@pages.get("/athletes", responses=HTML)
def athletes_page(ctx: Reader, request: Request, saved: Flash = None) -> Response:
    return render(request, "athletes.html", "athletes", saved, athletes=ctx.require_log().list_athletes(),
                  ladder=ctx.ladder.steps, station_running=ctx.controls is not None and ctx.live is not None)


@pages.get("/athletes/{athlete_id}", responses=HTML)
def athlete_page(ctx: Reader, request: Request, athlete_id: AthleteId, saved: Flash = None) -> Response:
    progress = athlete_progress(ctx, athlete_id)
    charts = []
    for drill in dict.fromkeys(s.drill for s in progress.sessions if s.reps):
        sessions = [s for s in progress.sessions if s.drill == drill and s.reps]
        reps = [r for r in progress.reps if r.drill == drill][-CHART_REPS:]
        title = drill_title(ctx.drill_titles, drill)
        charts.append({
            "drill": drill, "sessions": sessions, "reps": sum(s.reps for s in sessions), "ahead": sessions[-1].ahead,
            "clean": series_chart([s.clean_pct for s in sessions], f"Clean share per {title} session", "%", 0, 100),
            "depth": series_chart([r.depth_deg for r in reps], f"Depth per {title} rep", "°", marks=[not r.clean for r in reps]),
            # the whole rep, not the lowering alone: a lift from the floor has no lowering phase
            "tempo": series_chart([r.rep_s for r in reps], f"Seconds per {title} rep", "s", 0,
                                  marks=[not r.clean for r in reps]),
        })
    wall_reps = [r for r in progress.reps if r.drill == WALL_TAP][-CHART_REPS:]
    in_cm = progress.athlete.height_cm is not None
    travel = series_chart([r.hip_travel_cm if in_cm else r.hip_travel for r in wall_reps],
                          "Hip travel per wall-tap rep", " cm" if in_cm else " LL", marks=[not r.clean for r in wall_reps]) if wall_reps else None
    return render(request, "athlete.html", "athletes", saved, p=progress, charts=charts, travel=travel,
                  station_running=ctx.controls is not None and ctx.live is not None)


# --- forms -------------------------------------------------------------------------------------


def _height(text: str) -> object:
    return text.strip() or None


@forms.post("/athletes", response_class=Response, responses={**REDIRECT, **ERRORS})
def add_athlete_form(ctx: Writer, name: Annotated[str, Form(max_length=2000)],
                     notes: Annotated[str, Form(max_length=2000)] = "",
                     height_cm: Annotated[str, Form(max_length=16)] = "") -> Response:
    body = validated(NewAthlete, {"name": name, "notes": notes, "height_cm": _height(height_cm)})
    athlete = actions.add_athlete(ctx, body)
    return back(f"/athletes/{athlete['id']}", "athlete_added")


@forms.post("/athletes/{athlete_id}", response_class=Response, responses={**REDIRECT, **ERRORS})
def change_athlete_form(ctx: Writer, athlete_id: AthleteId, name: Annotated[str, Form(max_length=2000)],
                        notes: Annotated[str, Form(max_length=2000)] = "",
                        height_cm: Annotated[str, Form(max_length=16)] = "") -> Response:
    body = validated(AthleteChange, {"name": name, "notes": notes, "height_cm": _height(height_cm)})
    actions.change_athlete(ctx, athlete_id, body)
    return back(f"/athletes/{athlete_id}", "athlete_changed")


@forms.post("/athletes/{athlete_id}/delete", response_class=Response, responses={**REDIRECT, **ERRORS})
def delete_athlete_form(ctx: Writer, athlete_id: AthleteId, confirm: Annotated[str, Form(max_length=10)] = "") -> Response:
    confirmed(confirm, "deleting the athlete (their reps stay, anonymous)")
    actions.delete_athlete(ctx, athlete_id)
    return back("/athletes", "athlete_deleted")


@forms.post("/athletes/{athlete_id}/up", response_class=Response, responses={**REDIRECT, **ERRORS})
def athlete_up_form(ctx: Writer, athlete_id: AthleteId, next: Next = "") -> Response:
    actions.athlete_up(ctx, athlete_id)
    return back(next or f"/athletes/{athlete_id}", "athlete_up")


@forms.post("/athletes/{athlete_id}/decision", response_class=Response, responses={**REDIRECT, **ERRORS})
def decide_form(ctx: Writer, athlete_id: AthleteId, drill: Annotated[str, Form(max_length=64)],
                next_drill: Annotated[str, Form(max_length=64)], decision: Annotated[str, Form(max_length=16)]) -> Response:
    body = validated(StepDecisionIn, {"drill": drill, "next_drill": next_drill, "decision": decision})
    actions.decide_step(ctx, athlete_id, body)
    return back(f"/athletes/{athlete_id}", f"step_{body.decision}")
