"""Keep the page from starving the live loop when someone loads it hard, one client at a time.

Each page or API answer is timed; a client's next answer may start only after a pause that keeps
the page busy for that client at most `share` of the time on average (0.25: a quarter of one
core, whatever the device's speed). One phone browsing never notices; a client hammering the page
gets slower answers instead of taking the CPU from the pose model, and only that client waits:
the others keep their own schedule. The live event stream, the preview frames and static files
are not paced: they are cheap and the live view needs them on time.
"""
from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

from web.guard import answer

UNPACED = ("/static/", "/api/live/", "/favicon.ico")
MAX_WAIT_S = 20.0
FIRST_GUESS_S = 0.02  # one answer's time before any was measured, so a first burst is spaced too
MAX_CLIENTS = 1024  # schedules kept; the least recently seen client is forgotten first


@dataclass
class _Schedule:
    next_start: float = 0.0
    cost_s: float = FIRST_GUESS_S  # running estimate of one answer's time for this client


class PaceMiddleware:
    def __init__(self, app: ASGIApp, share: float):
        if not 0 < share <= 1:
            raise ValueError("the page's CPU share must be in (0, 1]")
        self.app = app
        self.gap_per_busy_s = 1.0 / share - 1.0
        self._clients: OrderedDict[str, _Schedule] = OrderedDict()
        self._lock = asyncio.Lock()

    def _schedule(self, client: str) -> _Schedule:
        schedule = self._clients.pop(client, None) or _Schedule()
        self._clients[client] = schedule
        while len(self._clients) > MAX_CLIENTS:
            self._clients.popitem(last=False)
        return schedule

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(UNPACED):
            await self.app(scope, receive, send)
            return
        client = (scope.get("client") or ("?", 0))[0]
        async with self._lock:
            schedule = self._schedule(client)
            now = time.monotonic()
            start = max(now, schedule.next_start)
            if start - now > MAX_WAIT_S:
                await _busy(send, start - now)
                return
            schedule.next_start = start + schedule.cost_s * (1.0 + self.gap_per_busy_s)
        if start > now:
            await asyncio.sleep(start - now)
        began = time.monotonic()
        try:
            await self.app(scope, receive, send)
        finally:
            took = time.monotonic() - began
            schedule.cost_s = 0.8 * schedule.cost_s + 0.2 * took


async def _busy(send: Send, wait_s: float) -> None:
    await answer(send, 429, "you are asking faster than the station answers; try again in a few seconds",
                 [(b"retry-after", str(int(wait_s) + 1).encode())])
