"""Pacing: under a flood the page spaces its answers so it is busy at most its share of the time;
the live stream and static files are never held back."""
from __future__ import annotations

import asyncio
import time

import pytest

from web import pacing
from web.pacing import PaceMiddleware

WORK_S = 0.02


async def slow_app(scope, receive, send):
    await asyncio.sleep(WORK_S)  # an answer that keeps the page busy for 20 ms
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def call(app, path, client="10.0.0.2", done=None):
    statuses = []

    async def send(message):
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    await app({"type": "http", "path": path, "method": "GET", "headers": [], "client": (client, 50000)}, None, send)
    if done is not None:
        done.append(client)
    return statuses[0]


async def flood(app, path, n):
    started = time.monotonic()
    statuses = await asyncio.gather(*(call(app, path) for _ in range(n)))
    return time.monotonic() - started, statuses


def test_a_flood_is_spaced_to_the_share_and_the_live_stream_is_not():
    app = PaceMiddleware(slow_app, share=0.25)
    took, statuses = asyncio.run(flood(app, "/history", 12))
    assert statuses == [200] * 12
    busy = 12 * WORK_S
    assert took >= 0.7 * busy / 0.25  # ~4x the work: the page is busy about a quarter of the time
    took_live, _ = asyncio.run(flood(PaceMiddleware(slow_app, share=0.25), "/api/live/events", 12))
    assert took_live < 0.5 * busy  # concurrent, not spaced


def test_a_queue_too_long_is_told_to_come_back(monkeypatch):
    monkeypatch.setattr(pacing, "MAX_WAIT_S", 0.1)
    _, statuses = asyncio.run(flood(PaceMiddleware(slow_app, share=0.1), "/history", 12))
    assert 200 in statuses and 429 in statuses


def test_share_must_be_a_fraction():
    with pytest.raises(ValueError):
        PaceMiddleware(slow_app, share=0)


def test_one_client_hammering_the_page_does_not_hold_back_another():
    """The schedule is per client: a phone asking once while another client floods is answered
    in its own turn, not behind the flood's queue."""
    async def both():
        app = PaceMiddleware(slow_app, share=0.25)
        done = []
        hammer = [asyncio.create_task(call(app, "/history", "10.0.0.9", done)) for _ in range(12)]
        await asyncio.sleep(0.001)  # the flood is queued first
        await call(app, "/history", "10.0.0.2", done)
        await asyncio.gather(*hammer)
        return done

    done = asyncio.run(both())
    assert done.index("10.0.0.2") <= 2, done  # after at most the flood's first two answers
