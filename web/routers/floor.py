"""/api/floor: the hub's page (gym mode) — every station's live state, as a snapshot and as a stream
of changes (SSE), the way /api/live follows one station. Read from the hub's Floor, which the
hub's subscriber keeps from the stations' retained state and availability messages."""
from __future__ import annotations

import asyncio
import time
from typing import AsyncIterator

from fastapi import APIRouter, HTTPException
from fastapi.responses import StreamingResponse

from device.hub.floor import Floor
from web.context import Reader, WebContext
from web.routers.common import problems
from web.routers.live import KEEPALIVE_S, MAX_STREAMS, POLL_S, STREAM_MAX_S
from web.schemas import FloorOut
from web.views import floor_out

router = APIRouter(prefix="/api/floor", tags=["floor (hub)"])


def require_floor(ctx: WebContext) -> Floor:
    if ctx.floor is None:
        raise HTTPException(409, "this is one station's page; the whole floor is on the hub's page (station hub)")
    return ctx.floor


@router.get("", response_model=FloorOut, responses=problems(401, 409))
def get_floor(ctx: Reader) -> FloorOut:
    return floor_out(require_floor(ctx).snapshot())


@router.get("/events", response_class=StreamingResponse, responses={
    200: {"content": {"text/event-stream": {"schema": {"type": "string"}}},
          "description": "Server-sent events: `floor` with a FloorOut as data, whenever any station changes."},
    **problems(401, 409, 503)})
async def floor_events(ctx: Reader) -> StreamingResponse:
    floor = require_floor(ctx)
    if ctx.live_streams >= MAX_STREAMS:
        raise HTTPException(503, f"{MAX_STREAMS} live views are open already; close one, or reload in a minute",
                            headers={"Retry-After": "30"})
    ctx.live_streams += 1

    async def events() -> AsyncIterator[str]:
        try:
            yield "retry: 2000\n\n"
            seen = -1
            started = last_sent = time.monotonic()
            while not ctx.closing.is_set() and time.monotonic() - started < STREAM_MAX_S:
                snap = floor.snapshot()
                if snap.version != seen:
                    yield f"event: floor\nid: {snap.version}\ndata: {floor_out(snap).model_dump_json()}\n\n"
                    seen, last_sent = snap.version, time.monotonic()
                elif time.monotonic() - last_sent > KEEPALIVE_S:
                    yield ": keepalive\n\n"
                    last_sent = time.monotonic()
                await asyncio.sleep(POLL_S)
        finally:
            ctx.live_streams -= 1

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
