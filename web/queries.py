"""Reads shared by the API and the pages: the session list with its filter, one session with its
reps and summary, and date ranges given as ISO dates/times (station-local) or Unix seconds."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Optional

from fastapi import HTTPException

from device.contract.records import SessionFilter
from web.context import WebContext
from web.schemas import RepBrief, SessionDetail, SessionList
from web.views import rep_brief, rep_out, session_out, session_stats, with_counts


def unix_seconds(value: Optional[datetime], name: str) -> Optional[float]:
    """A naive date or time is the station's local time."""
    if value is None:
        return None
    try:
        seconds = value.timestamp()
        datetime.fromtimestamp(seconds)  # also a date in the station's local time (exports name files by it)
        return seconds
    except (OverflowError, OSError, ValueError):
        raise HTTPException(400, f"{name} is out of range: give a date like 2025-03-01 or Unix seconds") from None


def time_range(since: Optional[datetime], until: Optional[datetime]) -> tuple[Optional[float], Optional[float]]:
    start, end = unix_seconds(since, "since"), unix_seconds(until, "until")
    if start is not None and end is not None and end <= start:
        raise HTTPException(400, "until must be after since")
    return start, end


def gym_station(ctx: WebContext, station: Optional[str]) -> Optional[str]:
    """The station filter, which only the hub's page has: a station's own log holds one station."""
    if station and not ctx.gym:
        raise HTTPException(400, "this page is one station's: filter by station on the hub's page (station hub)")
    return station or None


def list_sessions(ctx: WebContext, flt: SessionFilter, limit: int, offset: int) -> SessionList:
    live_id = ctx.live_session_id
    rows = ctx.store.list_sessions(flt, limit=limit, offset=offset)
    return SessionList(total=ctx.store.count_sessions(flt), limit=limit, offset=offset,
                       items=[session_out(r, live_id) for r in rows])


def load_session(ctx: WebContext, session_id: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    session = ctx.store.get_session(session_id)
    if session is None:
        raise HTTPException(404, f"session {session_id} does not exist")
    return session, ctx.store.session_reps(session_id)


def session_detail(ctx: WebContext, session: dict[str, Any], reps: list[dict[str, Any]]) -> SessionDetail:
    return SessionDetail(
        session=session_out(with_counts(session, reps), ctx.live_session_id),
        verdict=session_stats(reps, corrected=False), corrected=session_stats(reps, corrected=True),
        corrections=sum(len(r["corrections"]) for r in reps), reps=[rep_out(r) for r in reps],
    )


def last_rep_brief(ctx: WebContext, rep_id: Optional[int]) -> Optional[RepBrief]:
    if rep_id is None:
        return None
    rep = ctx.store.get_rep(rep_id)
    return rep_brief(rep) if rep is not None else None
