"""The live event stream over a real socket: a snapshot on connect, one on every change, the rep
that just landed read from the rep log, and the stream ends when the page shuts down."""
from __future__ import annotations

import json
import threading
import time

import httpx

from device.station.live import StationState
from web.page_server import PageServer
from support.web import add_live_rep, make_app


def read_events(response, into: list, stop: threading.Event) -> None:
    event, data = None, []
    for line in response.iter_lines():
        if stop.is_set():
            return
        if line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:"):
            data.append(line.split(":", 1)[1].strip())
        elif line == "" and event:
            into.append((event, json.loads("\n".join(data))))
            event, data = None, []


def wait_until(condition, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_the_stream_follows_the_station_and_ends_with_the_page(station):
    server = PageServer(make_app(station.store, live=station.live, controls=station.controls))
    base = server.start()
    events: list = []
    stop = threading.Event()
    with httpx.Client(timeout=httpx.Timeout(10.0, read=None)) as client:
        with client.stream("GET", f"{base}/api/live/events") as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            reader = threading.Thread(target=read_events, args=(response, events, stop), daemon=True)
            reader.start()
            wait_until(lambda: len(events) == 1)
            assert events[0][1]["state"] == "tracking" and events[0][1]["session_reps"] == station.store.rep_count(station.session_id)

            station.live.update(fps=14.8)  # same values: no new event
            station.live.update(state=StationState.IDLE, cue="step into view")
            wait_until(lambda: len(events) == 2)
            assert events[1][1]["state_label"] == "Waiting for an athlete" and events[1][1]["version"] > events[0][1]["version"]

            rep_id = add_live_rep(station, "rounded")
            wait_until(lambda: len(events) == 3)
            landed = events[2][1]
            assert landed["last_rep"]["id"] == rep_id and landed["last_fault"] == "rounded_back"
            assert [f["name"] for f in landed["last_rep"]["faults"]] == [f["name"] for f in station.store.get_rep(rep_id)["faults"]]

            started = time.monotonic()
            server.stop()
            reader.join(5)
            assert not reader.is_alive() and time.monotonic() - started < 5  # an open stream does not hold shutdown
    stop.set()
