"""/api/reps: one rep, and every rep in a date range as CSV or JSON."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import Response

from web.context import Reader, RepId
from web.exports import stream_reps
from web.schemas import RepOut
from web.queries import time_range
from web.routers.common import ExportFormat, download, export_responses, problems
from web.views import rep_out

router = APIRouter(prefix="/api/reps", tags=["reps"])


@router.get("/export", response_class=Response, responses={**export_responses(), **problems(400, 401)})
def export_reps(
    ctx: Reader,
    since: Annotated[datetime, Query(description="Reps started at or after (ISO date/time, station-local, or Unix s).")],
    until: Annotated[datetime, Query(description="Reps started before this.")],
    format: ExportFormat = "csv",
) -> Response:
    """All reps in a date range, oldest first; CSV has one row per rep, JSON adds traces and corrections."""
    start, end = time_range(since, until)
    assert start is not None and end is not None
    day = datetime.fromtimestamp(start).strftime("%Y%m%d")
    # Streamed a page of reps at a time, resting between pages (web/exports.py).
    body = stream_reps(ctx.store, start, end, format, lambda r: rep_out(r).model_dump())
    return download(body, format, f"hinge-reps-{day}")


@router.get("/{rep_id}", response_model=RepOut, responses=problems(401, 404))
def get_rep(ctx: Reader, rep_id: RepId) -> RepOut:
    rep = ctx.store.get_rep(rep_id)
    if rep is None:
        raise HTTPException(404, f"rep {rep_id} does not exist")
    return rep_out(rep)
