"""/api/health: is the page, its rep log and the live loop alive (on the hub's page: does the hub
read the broker, and do its writes go in); with deep=true also the rep log's integrity check and
`station doctor`'s checks."""
from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Query

from device.errors import StationError
from device.station.live import StationState
from web.context import Reader, WebContext
from web.schemas import DbHealth, HealthOut, HubHealth, LiveHealth
from web.routers.common import problems

router = APIRouter(prefix="/api/health", tags=["health"])
STALE_AFTER_S = 30.0  # a running loop refreshes its fps at least this often


def _db(ctx: WebContext, deep: bool) -> DbHealth:
    store = ctx.store
    try:
        return DbHealth(ok=True, path=str(store.path), readonly=store.readonly, schema_version=store.schema_version,
                        sessions=store.count_sessions(), reps=store.rep_count(),
                        integrity=store.integrity_check() if deep else None)
    except StationError as err:
        return DbHealth(ok=False, path=str(store.path), readonly=store.readonly, schema_version=None,
                        sessions=None, reps=None, error=str(err))


def _checks(ctx: WebContext) -> list[dict[str, Any]]:
    assert ctx.checks is not None
    try:
        return [dict(c) for c in ctx.checks()]
    except Exception as err:  # a broken check must not take the health answer down with it
        return [{"name": "checks", "ok": False, "detail": f"running the checks failed: {err}"}]


def _failed(check: dict[str, Any]) -> bool:
    return check.get("ok") is False or str(check.get("status", "")).lower() in ("fail", "failed", "error")


@router.get("", response_model=HealthOut, responses=problems(401))
def health(ctx: Reader, deep: Annotated[bool, Query(description="Also run the integrity check and the station checks (slower).")] = False) -> HealthOut:
    """Always 200 while the page itself answers; `status` says how the rest is."""
    db = _db(ctx, deep)
    live = None
    status = "ok" if db.ok and (db.integrity in (None, "ok")) else "error"
    if ctx.live is not None:
        _, snap = ctx.live.snapshot()
        age = time.time() - snap.updated_at
        live = LiveHealth(state=snap.state, fps=snap.fps, age_s=age, error=snap.error, storage=snap.storage,
                          hub_link=snap.hub_link)
        if snap.state == StationState.ERROR:
            status = "error"
        elif status == "ok" and (snap.logging_paused or snap.storage
                                 or (snap.state != StationState.STOPPED and age > STALE_AFTER_S)):
            status = "degraded"
    hub = None
    if ctx.floor is not None:  # the hub's page: reads may work while every write fails, or the broker is gone
        floor = ctx.floor.snapshot()
        hub = HubHealth(broker="connecting" if floor.broker is None else "connected" if floor.broker else "lost",
                        write_error=floor.write_error, write_error_since=floor.write_error_since,
                        backlog=floor.backlog, dropped=floor.dropped)
        if floor.write_error:
            status = "error"
        elif status == "ok" and floor.broker is False:
            status = "degraded"
    checks = _checks(ctx) if deep and ctx.checks is not None else None
    if status == "ok" and checks and any(_failed(c) for c in checks):
        status = "degraded"
    return HealthOut(status=status, version=ctx.version, time=time.time(), db=db, live=live, hub=hub, checks=checks)
