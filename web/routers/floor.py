"""/api/floor: the hub's page (gym mode) — every station's live state, as a snapshot and as a stream
of changes (SSE), the way /api/live follows one station. Read from the hub's Floor, which the
hub's subscriber keeps from the stations' retained state and availability messages."""
from __future__ import annotations

from typing import Optional

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import StreamingResponse

from device.hub.floor import Floor
from web.context import Reader, WebContext
from web.routers.common import problems
from web.routers.live import event_stream
from web.schemas import FloorOut
from web.views import floor_out

router = APIRouter(prefix="/api/floor", tags=["floor (hub)"])


def require_floor(ctx: WebContext) -> Floor:
    if ctx.floor is None:
        raise HTTPException(409, "this is one station's page; the whole floor is on the hub's page (station hub)")
    return ctx.floor


@router.get("", response_model=FloorOut, responses=problems(401, 409))
def get_floor(ctx: Reader) -> FloorOut:
    return floor_out(require_floor(ctx).snapshot(), ctx.drill_titles)


@router.get("/events", response_class=StreamingResponse, responses={
    200: {"content": {"text/event-stream": {"schema": {"type": "string"}}},
          "description": "Server-sent events: `floor` with a FloorOut as data, whenever any station changes."},
    **problems(401, 409, 503)})
async def floor_events(ctx: Reader, request: Request) -> StreamingResponse:
    floor = require_floor(ctx)

    async def changed(seen: int) -> Optional[tuple[int, str]]:
        snap = floor.snapshot()
        return (snap.version, floor_out(snap, ctx.drill_titles).model_dump_json()) if snap.version != seen else None

    return event_stream(ctx, request, "floor", changed)
