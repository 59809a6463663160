"""`station hub bench`: how many stations one hub keeps up with, measured in one run on this machine.

A real broker (Debian's mosquitto, started on a free loopback port with a temporary config), the
real hub (`station hub` in its own process, its page included, storing into SQLite or the given
database URL) and N simulated stations, each its own MQTT connection publishing a rep every
`every` seconds plus its retained state, as the station's outbox does (QoS 1, the contract's
payloads, made from a real RepStore row by the station's own converter).

Measured: the hub process's CPU (share of one core), the broker's, and the stations' (this
process); end-to-end latency from a rep's commit time at the station (its `ended_at`: a station
commits a rep the moment it ends) to the row being queryable in the hub's database, as the page
reads it (polled every POLL_S), p50/p99/max; how fast the hub falls behind (the growth of
published-but-not-stored reps per second over the run's second half; 0 when it keeps up) and how
long it takes to drain after the stations stop (up to DRAIN_MAX_S: reps not stored by then are
still at the broker, not lost, but the run stops there); doubled reps.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Optional

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from device.commands.sample_log import synthetic_rep
from device.commands.tables import print_table, write_json
from device.config import Settings
from device.errors import StationError
from device.hub.store import HubStore
from device.contract import topics
from device.station.broker_link import rep_message, session_message
from device.station.store import RepStore
from device.stats import percentile

POLL_S = 0.02  # how often the bench looks for new rows (adds up to this much to each latency)
DRAIN_MAX_S = 60.0
TEMPLATES = 8  # distinct real rep rows per simulated station, re-keyed and re-timed on each send
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LoopbackBroker:
    """Debian's mosquitto on 127.0.0.1:<free port>, for the benchmark only."""

    def __init__(self, workdir: Path):
        binary = shutil.which("mosquitto") or next((p for p in ("/usr/sbin/mosquitto",) if os.access(p, os.X_OK)), None)
        if binary is None:
            raise StationError("the hub benchmark needs a real broker: apt-get install mosquitto")
        self.port = free_port()
        config = workdir / "mosquitto.conf"
        user = "root" if os.geteuid() == 0 else os.environ.get("USER", "")
        config.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\nuser {user}\n"
                          "max_inflight_messages 100\nmax_queued_messages 100000\nlog_dest none\n")
        self.proc = subprocess.Popen([binary, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise StationError("mosquitto did not start for the hub benchmark")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def station_templates(workdir: Path, station: str, rng: random.Random) -> tuple[bytes, list[dict[str, Any]]]:
    """A real station database with a session and TEMPLATES reps, and their contract payloads."""
    with RepStore(workdir / f"{station}.db", outbox=True) as store:
        started = time.time()
        sid = store.start_session(started, "dowel_hinge", "picamera", None)
        clock = 2.0
        for i in range(1, TEMPLATES + 1):
            rep = synthetic_rep(rng, i, clock)
            store.add_rep(sid, rep, wall_offset=started)
            clock = rep.end_time + 1.0
        uuid = store.store_uuid
        row = store.get_session(sid)
        if row is None:
            raise StationError(f"the benchmark's own log {store.path} lost session {sid} it just wrote")
        session = session_message(station, uuid, row).to_json()
        reps = [json.loads(rep_message(station, uuid, r).to_json()) for r in store.session_reps(sid)]
    return session, reps


class SimulatedStation:
    """One station's network side: its own connection, a rep every `every` s and its state."""

    def __init__(self, station: str, port: int, session: bytes, reps: list[dict[str, Any]]):
        self.station, self.session, self.reps = station, session, reps
        self.names = topics.Topics(topics.DEFAULT_PREFIX, station)
        self.sent = 0
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-{station}", protocol=mqtt.MQTTv311)
        self.client.max_inflight_messages_set(100)
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()
        self.client.publish(self.names.availability, topics.ONLINE, qos=1, retain=True)
        self.client.publish(self.names.session, session, qos=1)

    def publish_rep(self) -> None:
        """A rep committed now: its template re-keyed and shifted so it ended this instant."""
        self.sent += 1
        template = self.reps[(self.sent - 1) % len(self.reps)]
        shift = time.time() - template["ended_at"]
        payload = dict(template, rep_key=f"{template['rep_key'].rsplit(':', 1)[0]}:{self.sent}", rep_index=self.sent,
                       started_at=template["started_at"] + shift, bottom_at=template["bottom_at"] + shift,
                       ended_at=template["ended_at"] + shift,
                       faults=[dict(f, at=f["at"] + shift) for f in template["faults"]],
                       borderline=[dict(f, at=f["at"] + shift) for f in template["borderline"]])
        self.client.publish(self.names.rep, json.dumps(payload, separators=(",", ":")), qos=1)
        state = topics.StatePayload(station=self.station, at=time.time(), state=topics.IN_REP, drill="dowel_hinge",
                                    reps_this_session=self.sent, reps_today=self.sent,
                                    last_fault=template["faults"][0]["name"] if template["faults"] else None,
                                    clean_share_today=None, buzzer_on=True)
        self.client.publish(self.names.state, state.to_json(), qos=1, retain=True)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def start_hub(workdir: Path, port: int, database_url: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HINGE_")}
    env.update(HINGE_DATA_DIR=str(workdir), HINGE_MQTT__HOST="127.0.0.1", HINGE_MQTT__PORT=str(port),
               HINGE_HUB__DATABASE_URL=database_url, HINGE_HUB__CLIENT_ID="bench-hub", HINGE_LOGGING__LEVEL="ERROR",
               PYTHONUNBUFFERED="1")
    with (workdir / "hub.log").open("wb") as log:  # a file, not a pipe: a chatty hub must never block on it
        return subprocess.Popen([sys.executable, "-m", "device", "hub", "--host", "127.0.0.1", "--port", "0"], env=env,
                                stdout=log, stderr=subprocess.STDOUT, cwd=str(workdir))


def wait_until_stored(store: HubStore, count: int, proc: subprocess.Popen, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise StationError("the hub exited during the benchmark (its log is in the run's temporary directory)")
        if store.rep_count() >= count:
            return True
        time.sleep(0.1)
    return False


def bench_hub(stations: int, seconds: float, every: float, database_url: Optional[str] = None) -> dict[str, Any]:
    """One run: `stations` simulated stations for `seconds` into one hub; returns the row."""
    rng = random.Random(14)
    with tempfile.TemporaryDirectory(prefix="hub-bench-") as tmp:
        workdir = Path(tmp)
        url = database_url or f"sqlite:///{workdir / 'hub.db'}"
        broker = LoopbackBroker(workdir)
        hub = None
        sims: list[SimulatedStation] = []
        try:
            (workdir / "stations").mkdir()
            templates = [station_templates(workdir / "stations", f"bench-{i:03d}", rng) for i in range(stations)]
            store = HubStore(url)  # creates the tables, so the hub and this reader agree from the start
            hub = start_hub(workdir, broker.port, url)
            probe = SimulatedStation("bench-probe", broker.port, *station_templates(workdir / "stations", "bench-probe", rng))
            deadline = time.monotonic() + 30
            while store.rep_count() == 0:  # the hub is up and subscribed once a probe rep lands
                if time.monotonic() > deadline or hub.poll() is not None:
                    log = (workdir / "hub.log").read_text(errors="replace")[-2000:]
                    raise StationError(f"the hub did not start storing within 30 s:\n{log}")
                probe.publish_rep()
                time.sleep(0.3)
            probe.close()
            time.sleep(0.5)
            baseline = store.rep_count()
            last_id = max([r["id"] for r in store.reps_since(0)] or [0])
            sims = [SimulatedStation(f"bench-{i:03d}", broker.port, *templates[i]) for i in range(stations)]
            latencies: list[float] = []
            lag: list[tuple[float, int]] = []  # (seconds into the run, published - stored)
            stop = threading.Event()

            def publish() -> None:
                start = time.monotonic()
                tick = 0
                while not stop.is_set():
                    # Station i publishes at i/N of each period: the load is spread as real stations' would be.
                    for i, sim in enumerate(sims):
                        at = start + tick * every + every * i / len(sims)
                        wait = at - time.monotonic()
                        if wait > 0 and stop.wait(wait):
                            return
                        sim.publish_rep()
                    tick += 1

            cpu0 = {"hub": cpu_seconds(hub.pid), "broker": cpu_seconds(broker.proc.pid)}
            own0 = time.process_time()
            t0 = time.monotonic()
            publisher = threading.Thread(target=publish, name="bench-stations", daemon=True)
            publisher.start()
            while time.monotonic() - t0 < seconds:
                for row in store.reps_since(last_id):
                    latencies.append(time.time() - row["ended_at"])
                    last_id = row["id"]
                lag.append((time.monotonic() - t0, sum(s.sent for s in sims) - (store.rep_count() - baseline)))
                time.sleep(POLL_S)
            stop.set()
            publisher.join()
            elapsed = time.monotonic() - t0
            cpu = {"hub": cpu_seconds(hub.pid) - cpu0["hub"], "broker": cpu_seconds(broker.proc.pid) - cpu0["broker"]}
            own = time.process_time() - own0
            published = sum(s.sent for s in sims)
            drain_started = time.monotonic()
            drained = wait_until_stored(store, baseline + published, hub, DRAIN_MAX_S)
            drain_s = time.monotonic() - drain_started
            for row in store.reps_since(last_id):
                latencies.append(time.time() - row["ended_at"])
            stored = store.rep_count() - baseline
            keys = store.rep_keys()
            store.close()
        finally:
            for sim in sims:
                sim.close()
            if hub is not None and hub.poll() is None:
                hub.send_signal(signal.SIGTERM)
                try:
                    hub.wait(15)
                except subprocess.TimeoutExpired:
                    hub.kill()
            broker.stop()
    half = [p for p in lag if p[0] >= seconds / 2]
    slope = _slope(half)
    return {
        "stations": stations, "seconds": round(elapsed, 1), "reps_per_s": round(published / elapsed, 1),
        "messages_per_s": round(2 * published / elapsed, 1), "reps_published": published, "reps_stored": stored,
        "not_stored": published - stored, "drained": drained, "doubled": len(keys) - len(set(keys)),
        "hub_cpu_pct": round(100 * cpu["hub"] / elapsed, 1), "broker_cpu_pct": round(100 * cpu["broker"] / elapsed, 1),
        "stations_cpu_pct": round(100 * own / elapsed, 1),
        "latency_p50_ms": _ms(percentile(latencies, 50)), "latency_p99_ms": _ms(percentile(latencies, 99)),
        "latency_max_ms": _ms(max(latencies) if latencies else None),
        "falls_behind_reps_per_s": round(max(0.0, slope), 2), "drain_s": round(drain_s, 1),
        "cores": os.cpu_count(), "load_1min_at_end": round(os.getloadavg()[0], 2),
    }


def _ms(seconds: Optional[float]) -> Optional[float]:
    return round(seconds * 1000, 1) if seconds is not None else None


def _slope(points: list[tuple[float, int]]) -> float:
    """Least-squares growth per second of the backlog."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    var = sum((p[0] - mx) ** 2 for p in points)
    return sum((p[0] - mx) * (p[1] - my) for p in points) / var if var else 0.0


def command(args: argparse.Namespace, settings: Settings) -> int:
    counts = [int(n) for n in str(args.stations).split(",")]
    rows = [bench_hub(n, args.seconds, args.every, args.database_url) for n in counts]
    print_table(rows, title=f"hub: simulated stations, a rep each every {args.every:g} s plus their state, "
                            f"into one hub over a loopback mosquitto ({os.cpu_count()} cores, shared)")
    if args.json:
        write_json(args.json, {"hub": rows})
    return 0
