"""/api/sessions: the history list, one session with its reps and summary, its export, its
athlete label, and deleting it."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Optional

from fastapi import APIRouter, Query
from fastapi.responses import Response

from device.contract.records import SessionFilter
from web import actions
from web.context import Reader, SessionId, Writer
from web.exports import reps_csv, reps_json
from web.schemas import AthleteIn, AthleteOut, SessionDetail, SessionList
from web.queries import gym_station, list_sessions, load_session, session_detail, time_range
from web.routers.common import WRITE, ExportFormat, download, export_responses, problems

router = APIRouter(prefix="/api/sessions", tags=["sessions"])


@router.get("", response_model=SessionList, responses=problems(400, 401))
def get_sessions(
    ctx: Reader,
    since: Annotated[Optional[datetime], Query(description="Sessions started at or after (ISO date/time, station-local, or Unix s).")] = None,
    until: Annotated[Optional[datetime], Query(description="Sessions started before this.")] = None,
    profile: Annotated[Optional[str], Query(max_length=64, description="Only this drill.")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    athlete: Annotated[Optional[str], Query(max_length=100, description="Only this athlete's sessions.")] = None,
    station: Annotated[Optional[str], Query(max_length=32, description="Only this station (the hub's page).")] = None,
) -> SessionList:
    """Sessions newest first, with reps, clean-rep % and fault counts."""
    start, end = time_range(since, until)
    return list_sessions(ctx, SessionFilter(start, end, profile or None, athlete or None, gym_station(ctx, station)),
                         limit, offset)


@router.get("/{session_id}", response_model=SessionDetail, responses=problems(401, 404))
def get_session(ctx: Reader, session_id: SessionId) -> SessionDetail:
    """One session: every rep (with trace, faults and corrections) and the summary before and after corrections."""
    return session_detail(ctx, *load_session(ctx, session_id))


@router.get("/{session_id}/export", response_class=Response, responses={**export_responses(), **problems(401, 404)})
def export_session(ctx: Reader, session_id: SessionId, format: ExportFormat = "csv") -> Response:
    """One session's reps as CSV (one row per rep) or JSON (the session detail)."""
    session, reps = load_session(ctx, session_id)
    if format == "csv":
        body = reps_csv(reps, {session_id: session})
    else:
        body = reps_json(session_detail(ctx, session, reps).model_dump())
    return download(body, format, f"hinge-session-{session_id}")


@router.put("/{session_id}/athlete", response_model=AthleteOut, responses={**WRITE, **problems(404)})
def put_athlete(ctx: Writer, session_id: SessionId, body: AthleteIn) -> AthleteOut:
    """Label who trained in this session (the running one or a past one)."""
    return actions.set_athlete(ctx, session_id, body.athlete)


@router.delete("/{session_id}", status_code=204, response_class=Response, responses={**WRITE, **problems(404)})
def delete_session(ctx: Writer, session_id: SessionId) -> Response:
    """Delete a finished session with its reps, faults and corrections."""
    actions.delete_session(ctx, session_id)
    return Response(status_code=204)

