"""/api/live: what the station sees now, as a snapshot, a stream of changes (SSE) and a preview
frame. The live loop never waits on any of this: the page only reads `LiveState`."""
from __future__ import annotations

import asyncio
import time
from typing import AsyncIterator, Awaitable, Callable, Optional

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response, StreamingResponse

from web.context import Reader, WebContext
from web.schemas import LiveOut
from web.queries import last_rep_brief
from web.routers.common import problems
from web.views import live_out

router = APIRouter(prefix="/api/live", tags=["live"])
POLL_S = 0.2  # how often a stream looks for a new snapshot: cheap, and a rep shows within a blink
KEEPALIVE_S = 15.0
STREAM_MAX_S = 600.0  # the browser reconnects by itself; bounds how long a forgotten tab holds a connection
MAX_STREAMS = 128  # all clients together; each stream is one cheap task, and the server's connection cap is 256
MAX_STREAMS_PER_CLIENT = 6  # one address: a browser keeps at most 6 connections to a host anyway


@router.get("", response_model=LiveOut, responses=problems(401, 409))
def get_live(ctx: Reader) -> LiveOut:
    version, snap = ctx.require_live().snapshot()
    return live_out(version, snap, last_rep_brief(ctx, snap.last_rep_id), ctx.drill_titles)


@router.get("/events", response_class=StreamingResponse, responses={
    200: {"content": {"text/event-stream": {"schema": {"type": "string"}}},
          "description": "Server-sent events: `snapshot` with a LiveOut as data, whenever the station's state changes."},
    **problems(401, 409, 503)})
async def live_events(ctx: Reader, request: Request) -> StreamingResponse:
    live = ctx.require_live()
    rep_id, rep, fetched = None, None, False

    async def changed(seen: int) -> Optional[tuple[int, str]]:
        nonlocal rep_id, rep, fetched
        version, snap = live.snapshot()
        if version == seen:
            return None
        if not fetched or snap.last_rep_id != rep_id or (rep is None and rep_id is not None):
            rep_id, fetched = snap.last_rep_id, True
            rep = await run_in_threadpool(last_rep_brief, ctx, rep_id)
        return version, live_out(version, snap, rep, ctx.drill_titles).model_dump_json()

    return event_stream(ctx, request, "snapshot", changed)


def event_stream(ctx: WebContext, request: Request, event: str,
                 changed: Callable[[int], Awaitable[Optional[tuple[int, str]]]]) -> StreamingResponse:
    """One server-sent-event stream, counted against MAX_STREAMS_PER_CLIENT for its client's address
    and MAX_STREAMS for all (503 past either: one client cannot take the others' live views):
    `changed(seen)` gives (version, JSON) when there is something newer than version `seen`, else
    None; a keepalive comment goes out when nothing changed for KEEPALIVE_S, and the stream ends after
    STREAM_MAX_S (the browser reconnects). The station's page and the hub's floor page both stream
    through here."""
    client = request.client.host if request.client else "?"
    if ctx.stream_clients[client] >= MAX_STREAMS_PER_CLIENT:
        raise HTTPException(503, f"this device has {MAX_STREAMS_PER_CLIENT} live views open already; close one",
                            headers={"Retry-After": "30"})
    if ctx.live_streams >= MAX_STREAMS:
        raise HTTPException(503, f"{MAX_STREAMS} live views are open already; close one, or reload in a minute",
                            headers={"Retry-After": "30"})
    ctx.live_streams += 1
    ctx.stream_clients[client] += 1

    async def events() -> AsyncIterator[str]:
        try:
            yield "retry: 2000\n\n"
            seen = -1
            started = last_sent = time.monotonic()
            while not ctx.closing.is_set() and time.monotonic() - started < STREAM_MAX_S:
                news = await changed(seen)
                if news is not None:
                    seen, data = news
                    yield f"event: {event}\nid: {seen}\ndata: {data}\n\n"
                    last_sent = time.monotonic()
                elif time.monotonic() - last_sent > KEEPALIVE_S:
                    yield ": keepalive\n\n"
                    last_sent = time.monotonic()
                await asyncio.sleep(POLL_S)
        finally:
            ctx.live_streams -= 1
            ctx.stream_clients[client] -= 1
            if ctx.stream_clients[client] <= 0:
                del ctx.stream_clients[client]

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


@router.get("/preview.jpg", response_class=Response, responses={
    200: {"content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}},
          "description": "The latest annotated frame (skeleton drawn); kept in memory only, never stored."},
    404: {"model": problems(404)[404]["model"], "description": "No preview yet: frames start arriving once a page asks."},
    **problems(401, 409)})
def live_preview(ctx: Reader) -> Response:
    """Asking for a preview tells the live loop to encode a few per second for a while."""
    version, jpeg = ctx.require_live().preview()
    if jpeg is None:
        raise HTTPException(404, "no preview yet: the station starts sending frames once a page asks; try again in a second")
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store", "X-Preview-Version": str(version)})
