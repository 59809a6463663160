"""/api/labels: sessions as labels.csv rows for `station evaluate`, corrections applied."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Optional

from fastapi import APIRouter, Query
from fastapi.responses import Response

from device.contract.records import SessionFilter
from web.context import Reader
from web.exports import labels_csv, session_label
from web.queries import gym_station, time_range
from web.routers.common import download, problems
from web.views import clip_name

router = APIRouter(prefix="/api/labels", tags=["labels"])
MAX_SESSIONS = 10_000


@router.get("/export", response_class=Response, responses={
    200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "labels.csv"}, **problems(400, 401)})
def export_labels(
    ctx: Reader,
    since: Annotated[Optional[datetime], Query(description="Sessions started at or after.")] = None,
    until: Annotated[Optional[datetime], Query(description="Sessions started before.")] = None,
    profile: Annotated[Optional[str], Query(max_length=64)] = None,
    clips_only: Annotated[bool, Query(description="Only sessions that replayed a clip (what evaluate can re-run).")] = False,
    athlete: Annotated[Optional[str], Query(max_length=100, description="Only this athlete's sessions.")] = None,
    station: Annotated[Optional[str], Query(max_length=32, description="Only this station (the hub's page).")] = None,
) -> Response:
    """One row per session: clip, movement, view, reps, faults, source_labels, notes."""
    start, end = time_range(since, until)
    flt = SessionFilter(start, end, profile or None, athlete or None, gym_station(ctx, station))
    sessions = ctx.store.list_sessions(flt, limit=MAX_SESSIONS)
    rows = []
    for session in reversed(sessions):  # oldest first, like a recording log
        if clips_only and clip_name(session["source"]) is None:
            continue
        rows.append(session_label(session, ctx.store.session_reps(session["id"])))
    return download(labels_csv(rows), "csv", "labels")
