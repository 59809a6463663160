"""The trainer's pages, rendered on the server: Live, History, Session, Settings, sign-in."""
from __future__ import annotations

import math
from datetime import date, datetime, time as dtime, timedelta
from typing import Annotated, Any, Optional
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BeforeValidator, StringConstraints

from device.analysis.vocabulary import Fault
from device.contract.records import SessionFilter
from web import actions
from web.charts import Scale, rep_chart
from web.context import Reader, SessionId, get_context
from web.queries import gym_station, last_rep_brief, list_sessions, load_session, session_detail
from web.routers.common import html_problems
from web.routers.settings import current_settings
from web.templating import safe_next
from web.views import floor_out, live_out

router = APIRouter(tags=["pages"], default_response_class=HTMLResponse)
PAGE_SIZE = 20
FLASH = {
    "athlete": "Athlete label saved.", "correction": "Correction saved beside the station's verdict.",
    "undone": "Correction withdrawn.", "deleted": "Session deleted.", "settings": "Settings sent to the station.",
    "cues": "Cue words saved: the station says them from the next fault.",
    "signed_in": "Signed in: you can make changes from this phone.", "signed_out": "Signed out.",
    "athlete_added": "Athlete added.", "athlete_changed": "Athlete saved.",
    "athlete_deleted": "Athlete deleted; their reps stay, anonymous.", "athlete_up": "Up next: the next session is theirs.",
    "step_accepted": "Step accepted: the athlete moves up the ladder.", "step_dismissed": "Kept on the mastered step.",
}
HTML: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/html": {"schema": {"type": "string"}}}, "description": "The page."},
    303: {"description": "Reading needs the trainer token here: on to the sign-in page."},
    **html_problems(400, 404, 422),
}
EmptyIsNone = BeforeValidator(lambda v: v or None)
Flash = Annotated[Optional[str], Query(max_length=32, description="Which change was just saved (shows a note).")]


def render(request: Request, name: str, nav: str, saved: Optional[str] = None, **values: Any) -> Response:
    ctx = get_context(request)
    values.update(nav=nav, flash=FLASH.get(saved or ""), signed_in=ctx.gate.authenticated(request), gym=ctx.gym,
                  writes_enabled=ctx.gate.configured and not ctx.store.readonly)
    return request.app.state.templates.TemplateResponse(request, name, values)


def _day_start(day: Optional[date]) -> Optional[float]:
    if day is None:
        return None
    try:
        return datetime.combine(day, dtime.min).timestamp()
    except (OverflowError, OSError, ValueError):
        raise HTTPException(400, f"date {day} is out of range") from None


def _day_after(day: Optional[date]) -> Optional[float]:
    if day is None:
        return None
    if day >= date.max:
        return None
    return _day_start(day + timedelta(days=1))


@router.get("/", responses=HTML)
def live_page(ctx: Reader, request: Request) -> Response:
    if ctx.floor is not None:
        return render(request, "floor.html", "live", floor=floor_out(ctx.floor.snapshot(), ctx.drill_titles))
    view = None
    if ctx.live is not None:
        version, snap = ctx.live.snapshot()
        view = live_out(version, snap, last_rep_brief(ctx, snap.last_rep_id), ctx.drill_titles)
    return render(request, "live.html", "live", live=view, preview_fps=ctx.preview_fps)


@router.get("/history", responses=HTML)
def history_page(
    ctx: Reader,
    request: Request,
    date_from: Annotated[Optional[date], EmptyIsNone, Query(description="First day shown (station-local).")] = None,
    date_to: Annotated[Optional[date], EmptyIsNone, Query(description="Last day shown, inclusive.")] = None,
    drill: Annotated[Optional[Annotated[str, StringConstraints(max_length=64)]], EmptyIsNone, Query()] = None,
    page: Annotated[int, Query(ge=1, le=10**6)] = 1,
    saved: Flash = None,
    station: Annotated[Optional[Annotated[str, StringConstraints(max_length=32)]], EmptyIsNone,
                       Query(description="Only this station (the hub's page).")] = None,
    athlete: Annotated[Optional[Annotated[str, StringConstraints(max_length=100)]], EmptyIsNone,
                       Query(description="Only this athlete's sessions (across stations on the hub's page).")] = None,
) -> Response:
    if date_from and date_to and date_to < date_from:
        raise HTTPException(400, "the 'to' date is before the 'from' date")
    flt = SessionFilter(_day_start(date_from), _day_after(date_to), drill, athlete, gym_station(ctx, station))
    listing = list_sessions(ctx, flt, PAGE_SIZE, (page - 1) * PAGE_SIZE)
    pages = max(1, math.ceil(listing.total / PAGE_SIZE))
    query = {k: v for k, v in {"date_from": date_from, "date_to": date_to, "drill": drill, "station": station,
                               "athlete": athlete}.items() if v}
    filters = (("since", flt.since), ("until", flt.until), ("profile", drill), ("station", station), ("athlete", athlete))
    return render(request, "history.html", "history", saved, listing=listing, page=page, pages=pages, query=query,
                  drills=sorted(set(ctx.store.profiles_used()) | set(ctx.profiles)),
                  date_from=date_from, date_to=date_to, drill=drill, range_since=flt.since, range_until=flt.until,
                  station=station, athlete=athlete,
                  # The filters by station and athlete name are the hub's page's: a station's page has its athletes' pages.
                  stations=ctx.store.stations(), athletes=ctx.store.athlete_names() if ctx.gym else [],
                  labels_query=urlencode({k: v for k, v in filters if v}))


@router.get("/sessions/{session_id}", responses=HTML)
def session_page(ctx: Reader, request: Request, session_id: SessionId, saved: Flash = None) -> Response:
    detail = session_detail(ctx, *load_session(ctx, session_id))
    scale = Scale.for_reps(detail.reps)
    reps = []
    for rep in detail.reps:
        raised = [f.name for f in rep.faults]
        called_false = {c.fault for c in rep.corrections if c.kind == "false_alarm"}
        added = {c.fault for c in rep.corrections if c.kind == "missed_fault"}
        reps.append({
            "rep": rep, "chart": rep_chart(rep, scale), "false_alarms": called_false,
            "can_call_false": [n for n in dict.fromkeys(raised) if n not in called_false],
            "can_add": [f.value for f in Fault if f.value not in raised and f.value not in added],
        })
    return render(request, "session.html", "history", saved, detail=detail, session=detail.session, reps=reps,
                  live_session=session_id == ctx.live_session_id, athletes=ctx.log.list_athletes() if ctx.log else [])


@router.get("/settings", responses=HTML)
def settings_page(ctx: Reader, request: Request, saved: Flash = None) -> Response:
    recent = ctx.store.list_sessions(SessionFilter(), limit=20)
    current = current_settings(ctx, request)
    # the cue words of the drill running now (a station's own log keeps them; the hub has none)
    cues = actions.cues_out(ctx, current.profile) if ctx.log is not None and current.profile else None
    return render(request, "settings.html", "settings", saved, settings=current, recent=recent, cues=cues,
                  stations=ctx.store.stations() if ctx.gym else [],
                  token_configured=ctx.gate.configured, readonly=ctx.store.readonly, athletes=ctx.log.list_athletes() if ctx.log else [])


@router.get("/login", responses=HTML)
def login_page(request: Request, next: Annotated[Optional[str], Query(max_length=2000)] = None) -> Response:
    ctx = get_context(request)
    return render(request, "login.html", "settings", next=safe_next(next, "/settings"), token_configured=ctx.gate.configured)


@router.get("/favicon.ico", include_in_schema=False)
def favicon() -> Response:
    return Response(status_code=204)
