"""A gym's fleet through a hub outage: 50 real stations (each the station's own MQTT link over its
own real rep log) keep training while the hub is away, on a real Mosquitto running the project's
broker settings, except for a queue limit far below what the fleet makes meanwhile, so the broker
must drop most of what it holds for the absent hub (its log says so). Every committed rep reaches
the hub's database exactly once, and every station's outbox ends empty.

Time is simulated where it only sets a schedule: the stations' clock (their resend backoff) runs
SPEEDUP times faster than the wall's, and a station trains a rep every REP_EVERY_S of that clock.
The default run keeps the hub away 3 minutes of station time (about 10 s); the issue's 30 minutes
is an opt-in run: `HINGE_OUTAGE_MINUTES=30 scripts/test.sh tests/test_fleet.py -s`.
"""
from __future__ import annotations

import os
import random
import time
from pathlib import Path

from device.commands.sample_log import synthetic_rep
from device.config import load_settings
from device.contract import topics
from device.station.broker_link import BrokerLink
from device.station.live import LiveState
from device.station.store import RepStore
from support.broker import Mosquitto
from support.hub import running_hub, wait_until

STATIONS = 50
QUEUE_LIMIT = 100  # messages the broker keeps for the absent hub: a fraction of what the fleet makes
REP_EVERY_S = 20.0  # station-clock seconds between one station's reps while the hub is away
WALL_S = 10.0  # about how long the outage lasts on the wall clock (the speed-up follows from it)


class FastClock:
    """A monotonic clock running `factor` times faster than the wall's: the stations' view of time."""

    def __init__(self, factor: float):
        self.factor = factor
        self.started = time.monotonic()

    def __call__(self) -> float:
        return self.started + (time.monotonic() - self.started) * self.factor


def outage_minutes() -> float:
    return float(os.environ.get("HINGE_OUTAGE_MINUTES", "3"))


def station_keys(db: Path, name: str) -> tuple[set[str], int]:
    with RepStore(db) as store:
        uuid = store.store_uuid
        keys = {topics.rep_key(name, uuid, r[0]) for r in store._query("SELECT id FROM reps")}
        return keys, store.outbox_size()


def test_fifty_stations_training_through_a_hub_outage_lose_and_double_nothing(tmp_path):
    minutes = outage_minutes()
    speedup = max(1.0, minutes * 60 / WALL_S)
    clock = FastClock(speedup)
    rng = random.Random(2323)
    names = [f"wall-{i:02d}" for i in range(STATIONS)]
    broker = Mosquitto(tmp_path / "mosquitto", settings={"max_queued_messages": QUEUE_LIMIT})
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    stores: dict[str, RepStore] = {}
    sessions: dict[str, int] = {}
    links: list[BrokerLink] = []
    made = 0

    def train(name: str) -> None:
        nonlocal made
        made += 1
        index = stores[name].rep_count(sessions[name]) + 1
        stores[name].add_rep(sessions[name], synthetic_rep(rng, index, 5.0 * index), wall_offset=time.time() - 3600)

    with broker:
        with running_hub(broker, url, client_id="fleet-hub") as hub:  # the hub's session exists at the broker
            for name in names:
                stores[name] = RepStore(tmp_path / f"{name}.db", outbox=True)
                sessions[name] = stores[name].start_session(time.time() - 3600, "hinge", "picamera")
                cfg = load_settings(None, {"data_dir": tmp_path, "mqtt.host": broker.host, "mqtt.port": broker.port,
                                           "mqtt.station_id": name, "mqtt.keepalive_s": 5, "mqtt.discovery": False,
                                           "mqtt.reconnect_min_s": 0.05, "mqtt.reconnect_max_s": 0.5}).mqtt
                links.append(BrokerLink(cfg, tmp_path / f"{name}.db", LiveState(), clock=clock).start())
                train(name)
            wait_until(lambda: hub.store.rep_count() == STATIONS, timeout=60, what="every station's first rep")
        away = time.monotonic()
        ticks = max(1, round(minutes * 60 / REP_EVERY_S))
        for tick in range(ticks):  # the hub is away: every station keeps training
            for name in names:
                train(name)
            time.sleep(max(0.0, away + (tick + 1) * WALL_S / ticks - time.monotonic()))
        for name in names:
            stores[name].end_session(sessions[name], time.time() - 60)
        away_s = time.monotonic() - away
        broker_log = broker.log_path.read_text(errors="replace")
        with running_hub(broker, url, client_id="fleet-hub") as hub:
            committed = {name: station_keys(tmp_path / f"{name}.db", name)[0] for name in names}
            everything = set().union(*committed.values())
            try:
                wait_until(lambda: len(set(hub.store.rep_keys()) & everything) == len(everything), timeout=90,
                           what="every committed rep at the hub")
                wait_until(lambda: all(station_keys(tmp_path / f"{n}.db", n)[1] == 0 for n in names), timeout=60,
                           what="every station's outbox empty")
            finally:
                stored = hub.store.rep_keys()
                ended = sum(s["ended_at"] is not None for s in hub.store.list_sessions(limit=1000))
                for link in links:
                    link.stop(drain_s=0)
                for store in stores.values():
                    store.close()
                lost = everything - set(stored)
                print(f"hub away {away_s * speedup / 60:.0f} station-minutes ({away_s:.1f} s at x{speedup:g}); "
                      f"{STATIONS} stations made "
                      f"{made} reps, {len(everything)} committed; the hub holds {len(stored)}: {len(lost)} lost, "
                      f"{len(stored) - len(set(stored))} doubled; broker queue limit {QUEUE_LIMIT}")
    assert made == len(everything) == STATIONS * (ticks + 1)
    assert away_s * speedup >= minutes * 60  # the hub was away at least as long as asked, on the stations' clock
    assert "Outgoing messages are being dropped for client fleet-hub" in broker_log  # the queue did overflow
    assert lost == set() and len(stored) == len(set(stored)) == len(everything)
    assert set(stored) == everything
    assert ended == STATIONS  # every session's end, too
