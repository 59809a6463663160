"""Keep the page from starving the live loop when someone loads it hard.

Each page or API answer is timed; the next one may start only after a pause that keeps the page
busy for at most `share` of the time on average (0.25: a quarter of one core, whatever the
device's speed). One phone browsing never notices; a client hammering the page gets slower
answers instead of taking the CPU from the pose model. The live event stream, the preview
frames and static files are not paced: they are cheap and the live view needs them on time.
"""
from __future__ import annotations

import asyncio
import time

from starlette.types import ASGIApp, Receive, Scope, Send

UNPACED = ("/static/", "/api/live/", "/favicon.ico")
MAX_WAIT_S = 20.0
FIRST_GUESS_S = 0.02  # one answer's time before any was measured, so a first burst is spaced too


class PaceMiddleware:
    def __init__(self, app: ASGIApp, share: float):
        if not 0 < share <= 1:
            raise ValueError("the page's CPU share must be in (0, 1]")
        self.app = app
        self.gap_per_busy_s = 1.0 / share - 1.0
        self._next_start = 0.0
        self._cost_s = FIRST_GUESS_S  # running estimate of one answer's time
        self._lock = asyncio.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(UNPACED):
            await self.app(scope, receive, send)
            return
        async with self._lock:
            now = time.monotonic()
            start = max(now, self._next_start)
            if start - now > MAX_WAIT_S:
                await _busy(send, start - now)
                return
            self._next_start = start + self._cost_s * (1.0 + self.gap_per_busy_s)
        if start > now:
            await asyncio.sleep(start - now)
        began = time.monotonic()
        try:
            await self.app(scope, receive, send)
        finally:
            took = time.monotonic() - began
            self._cost_s = 0.8 * self._cost_s + 0.2 * took


async def _busy(send: Send, wait_s: float) -> None:
    body = b'{"detail":"the station is busy; try again in a few seconds"}'
    await send({"type": "http.response.start", "status": 429,
                "headers": [(b"content-type", b"application/json"), (b"retry-after", str(int(wait_s) + 1).encode()),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
