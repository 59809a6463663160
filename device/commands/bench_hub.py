"""`station hub bench`: how many stations one hub keeps up with, measured in one run on this machine.

A real broker (Debian's mosquitto, running the project's own deploy/mosquitto/hinge.conf with its ACL
and a password per station, on a free loopback port), the real hub (`station hub` in its own
process, its page included, storing into SQLite or the given database URL) and N simulated stations,
each its own MQTT connection with its own broker user, publishing a rep every `every` seconds plus
its state, as a station does (the contract's payloads, made from real RepStore rows by the station's
own converter; reps at QoS 1, the state at QoS 0).

Honest counts: the stations run in worker processes of at most STATIONS_PER_PROCESS connections each
(paho watches each connection with select(), which cannot see descriptors past 1024), every
connection must get its CONNACK (a refused or silent one fails the run), a rep counts as published
only once the broker's PUBACK for it came back, and as confirmed once the hub's answer on the
station's `stored` topic named it. Progress is printed as it runs.

Measured: the hub process's CPU (share of one core), the broker's, and the stations' (their worker
processes); latency from a rep's commit at the station (its `ended_at`: a station commits a rep the
moment it ends) to its row being queryable in the hub's database, as the page reads it (polled
every POLL_S), and to the hub's confirmation reaching the station, p50/p99/max; how fast the hub
falls behind (the growth of sent-but-not-stored reps per second over the run's second half, the sent
ones counted by the stations' schedule; 0 when it keeps up) and how long it takes to drain after the stations stop (up to DRAIN_MAX_S: reps
not stored by then are still at the broker, not lost, but the run stops there); doubled reps.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import queue
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from device.commands.sample_log import synthetic_rep
from device.commands.tables import print_table, write_json
from device.config import Settings
from device.contract import topics
from device.errors import StationError
from device.hub.store import HubStore
from device.station.broker_link import rep_message, session_message
from device.station.store import RepStore
from device.stats import percentile

POLL_S = 0.02  # how often the bench looks for new rows (adds up to this much to each latency)
DRAIN_MAX_S = 60.0
CONNECT_MAX_S = 120.0  # every station must have its CONNACK by then
PROGRESS_S = 5.0
TEMPLATES = 8  # distinct real rep rows, re-keyed and re-timed for each station and send
STATIONS_PER_PROCESS = 250  # connections one worker process holds (far below select()'s 1024)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SHIPPED_CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto"
MACHINE_KEYS = {"listener", "cafile", "certfile", "keyfile", "tls_version", "password_file", "acl_file",
                "persistence_location"}
PASSWORD = "bench-password"


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ShippedBroker:
    """Debian's mosquitto on 127.0.0.1:<free port> with deploy/mosquitto/hinge.conf and hinge.acl, only
    the machine's own lines (listeners, files) replaced: the broker a gym runs, one user per station."""

    def __init__(self, workdir: Path, users: list[str]):
        binary = shutil.which("mosquitto") or next((p for p in ("/usr/sbin/mosquitto",) if os.access(p, os.X_OK)), None)
        tool = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
        if binary is None or not os.access(tool, os.X_OK):
            raise StationError("the hub benchmark needs a real broker: apt-get install mosquitto mosquitto-clients")
        self.port = free_port()
        passwd = workdir / "hinge.passwd"
        passwd.write_text("".join(f"{user}:{PASSWORD}\n" for user in users))
        passwd.chmod(0o600)
        subprocess.run([tool, "-U", str(passwd)], check=True, capture_output=True)  # hash them all at once
        acl = workdir / "hinge.acl"
        shutil.copy(SHIPPED_CONFIG / "hinge.acl", acl)
        (workdir / "persistence").mkdir()
        lines = [line for line in (SHIPPED_CONFIG / "hinge.conf").read_text().splitlines()
                 if line.split(" ", 1)[0] not in MACHINE_KEYS]
        user = "root" if os.geteuid() == 0 else os.environ.get("USER", "")
        lines += [f"listener {self.port} 127.0.0.1", f"password_file {passwd}", f"acl_file {acl}",
                  f"persistence_location {workdir / 'persistence'}/", f"user {user}", "log_dest none"]
        config = workdir / "mosquitto.conf"
        config.write_text("\n".join(lines) + "\n")
        self.proc = subprocess.Popen([binary, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
        self.stop()
        raise StationError("mosquitto did not start with deploy/mosquitto/hinge.conf for the hub benchmark")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def templates(workdir: Path, rng: random.Random) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A real station database with a session and TEMPLATES reps, and their contract payloads."""
    with RepStore(workdir / "template.db", outbox=True) as store:
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
        session = json.loads(session_message("template", uuid, row).to_json())
        reps = [json.loads(rep_message("template", uuid, r).to_json()) for r in store.session_reps(sid)]
    return session, reps


def _as_station(payload: dict[str, Any], station: str, uuid: str) -> dict[str, Any]:
    """A template payload as `station`'s own: its name, and keys made with its own database id."""
    out = dict(payload, station=station)
    for key in ("rep_key", "session_key"):
        if key in out:
            out[key] = f"{station}:{uuid}:{out[key].rsplit(':', 1)[1]}"
    return out


@dataclass
class Plan:
    """What one worker process runs: its stations (name, index among all), the broker, the schedule."""

    names: list[tuple[str, int]]
    total: int
    port: int
    every: float
    start_at: float  # time.time() when the stations start publishing
    seconds: float
    session: dict[str, Any]
    reps: list[dict[str, Any]]


@dataclass
class _Station:
    name: str
    index: int
    client: mqtt.Client
    uuid: str
    connected: threading.Event = field(default_factory=threading.Event)
    refused: str = ""
    sent: int = 0
    pending: dict[int, float] = field(default_factory=dict)  # mid -> the rep's commit time (ended_at)


def run_stations(plan: Plan, report: "multiprocessing.Queue[Any]", stop: Any) -> None:
    """A worker process: its stations connect, publish on schedule, and count CONNACKs, PUBACKs and
    the hub's confirmations; progress goes to `report` every second, the end with ("done", ...)."""
    lock = threading.Lock()
    counts = {"acked": 0, "confirmed": 0}
    commit_of: dict[str, float] = {}  # rep_key -> commit time, until confirmed
    confirm_latency: list[float] = []
    stations: list[_Station] = []
    for name, index in plan.names:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=name, protocol=mqtt.MQTTv5)
        client.username_pw_set(name, PASSWORD)
        client.max_inflight_messages_set(100)
        station = _Station(name, index, client, os.urandom(16).hex())

        def on_connect(c, userdata, flags, reason, properties, station=station) -> None:
            if reason.is_failure:
                station.refused = str(reason)
            else:
                c.subscribe([(topics.Topics(topics.DEFAULT_PREFIX, station.name).stored, 1)])
                station.connected.set()

        def on_publish(c, userdata, mid, reason, properties, station=station) -> None:
            with lock:
                ended = station.pending.pop(mid, None)
                if ended is not None and not reason.is_failure:
                    counts["acked"] += 1

        def on_message(c, userdata, message) -> None:
            try:
                stored = json.loads(message.payload)
            except ValueError:
                return
            now = time.time()
            with lock:
                for key in stored.get("reps", []):
                    ended = commit_of.pop(key, None)
                    if ended is not None:
                        counts["confirmed"] += 1
                        confirm_latency.append(now - ended)

        client.on_connect, client.on_publish, client.on_message = on_connect, on_publish, on_message
        try:
            client.connect("127.0.0.1", plan.port, keepalive=30)
        except OSError as err:
            station.refused = f"cannot connect: {err}"
        client.loop_start()
        stations.append(station)

    def progress(kind: str) -> None:
        with lock:
            row: tuple[Any, ...] = (kind, os.getpid(), sum(s.connected.is_set() for s in stations),
                   [s.refused for s in stations if s.refused], counts["acked"], counts["confirmed"],
                   sum(s.sent for s in stations))
            if kind == "done":
                row += (list(confirm_latency),)
        report.put(row)

    names = {s.name: topics.Topics(topics.DEFAULT_PREFIX, s.name) for s in stations}
    deadline = time.monotonic() + CONNECT_MAX_S
    while time.monotonic() < deadline and not all(s.connected.is_set() or s.refused for s in stations):
        progress("progress")
        time.sleep(0.5)
    for s in stations:
        if s.connected.is_set():
            s.client.publish(names[s.name].availability, topics.ONLINE, qos=1, retain=True)
            s.client.publish(names[s.name].session, json.dumps(_as_station(plan.session, s.name, s.uuid)), qos=1)
    progress("connected")
    last_report = time.monotonic()
    end = plan.start_at + plan.seconds
    tick = 0
    done = False
    while not done and not stop.is_set():
        for s in stations:  # station i publishes at i/N of each period: the load is spread as real stations' would be
            at = plan.start_at + tick * plan.every + plan.every * s.index / plan.total
            if at >= end:
                done = True
                break
            wait = at - time.time()
            if wait > 0 and stop.wait(wait):
                done = True
                break
            if s.connected.is_set():
                _publish_rep(s, names[s.name], plan, lock, commit_of)
            if time.monotonic() - last_report >= 1.0:
                progress("progress")
                last_report = time.monotonic()
        tick += 1
    settle = time.monotonic() + 10.0  # the broker's last PUBACKs
    while time.monotonic() < settle and any(s.pending for s in stations):
        time.sleep(0.05)
    progress("published")
    stop.wait(DRAIN_MAX_S)  # until the parent has drained the hub: confirmations still come in
    progress("done")
    for s in stations:
        s.client.disconnect()
        s.client.loop_stop()


def _publish_rep(s: _Station, names: topics.Topics, plan: Plan, lock: threading.Lock,
                 commit_of: dict[str, float]) -> None:
    """A rep committed now: its template re-keyed and shifted so it ended this instant, and the state after it."""
    s.sent += 1
    template = _as_station(plan.reps[(s.sent - 1) % len(plan.reps)], s.name, s.uuid)
    shift = time.time() - template["ended_at"]
    payload = dict(template, rep_key=f"{s.name}:{s.uuid}:{s.sent}", rep_index=s.sent,
                   started_at=template["started_at"] + shift, bottom_at=template["bottom_at"] + shift,
                   ended_at=template["ended_at"] + shift,
                   faults=[dict(f, at=f["at"] + shift) for f in template["faults"]],
                   borderline=[dict(f, at=f["at"] + shift) for f in template["borderline"]])
    with lock:
        commit_of[payload["rep_key"]] = payload["ended_at"]
        info = s.client.publish(names.rep, json.dumps(payload, separators=(",", ":")), qos=1)
        s.pending[info.mid] = payload["ended_at"]
    state = topics.StatePayload(station=s.name, at=time.time(), state=topics.IN_REP, drill="dowel_hinge",
                                reps_this_session=min(s.sent, 10_000_000), reps_today=min(s.sent, 10_000_000),
                                last_fault=template["faults"][0]["name"] if template["faults"] else None,
                                clean_share_today=None, buzzer_on=True)
    s.client.publish(names.state, state.to_json(), qos=0, retain=True)


def start_hub(workdir: Path, port: int, database_url: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HINGE_")}
    env.update(HINGE_DATA_DIR=str(workdir), HINGE_MQTT__HOST="127.0.0.1", HINGE_MQTT__PORT=str(port),
               HINGE_MQTT__USERNAME="hub", HINGE_MQTT__PASSWORD=PASSWORD, HINGE_HUB__DATABASE_URL=database_url,
               HINGE_HUB__CLIENT_ID="bench-hub", HINGE_LOGGING__LEVEL="ERROR", PYTHONUNBUFFERED="1")
    with (workdir / "hub.log").open("wb") as log:  # a file, not a pipe: a chatty hub must never block on it
        return subprocess.Popen([sys.executable, "-m", "device", "hub", "--host", "127.0.0.1", "--port", "0"], env=env,
                                stdout=log, stderr=subprocess.STDOUT, cwd=str(workdir))


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class Fleet:
    """The worker processes and what they last reported."""

    def __init__(self, plans: list[Plan]):
        ctx = multiprocessing.get_context("spawn")
        self.report: "multiprocessing.Queue[Any]" = ctx.Queue()
        self.stop = ctx.Event()
        self.procs = [ctx.Process(target=run_stations, args=(plan, self.report, self.stop), daemon=True)
                      for plan in plans]
        self.last: dict[int, tuple] = {}
        self.phases: dict[int, str] = {}
        for proc in self.procs:
            proc.start()

    def drain_reports(self, timeout: float = 0.0) -> None:
        end = time.monotonic() + timeout
        while True:
            try:
                row = self.report.get(timeout=max(0.0, end - time.monotonic()))
            except queue.Empty:
                return
            self.last[row[1]] = row
            self.phases[row[1]] = row[0]

    def total(self, column: int) -> int:
        return sum(row[column] for row in self.last.values())

    @property
    def refused(self) -> list[str]:
        return [reason for row in self.last.values() for reason in row[3]]

    def all_in(self, phase: str) -> bool:
        order = ("progress", "connected", "published", "done")
        return len(self.phases) == len(self.procs) and all(order.index(p) >= order.index(phase)
                                                            for p in self.phases.values())

    def cpu(self) -> float:
        return sum(cpu_seconds(p.pid) for p in self.procs if p.pid is not None and p.is_alive())

    def close(self) -> None:
        self.stop.set()
        for proc in self.procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()


def bench_hub(stations: int, seconds: float, every: float, database_url: Optional[str] = None) -> dict[str, Any]:
    """One run: `stations` simulated stations for `seconds` into one hub; returns the row."""
    rng = random.Random(14)
    with tempfile.TemporaryDirectory(prefix="hub-bench-") as tmp:
        workdir = Path(tmp)
        url = database_url or f"sqlite:///{workdir / 'hub.db'}"
        names = [f"bench-{i:04d}" for i in range(stations)]
        broker = ShippedBroker(workdir, names + ["hub", "bench-probe"])
        hub = None
        fleet = None
        try:
            _say(f"bench {stations}: starting a broker and a hub ({url.split(':', 1)[0]})")
            session, reps = templates(workdir, rng)
            store = HubStore(url)  # creates the tables, so the hub and this reader agree from the start
            hub = start_hub(workdir, broker.port, url)
            _wait_for_hub(store, hub, workdir, broker.port, session, reps)
            _say(f"bench {stations}: the hub is storing; connecting {stations} simulated stations")
            baseline = store.rep_count()
            last_id = max([r["id"] for r in store.reps_since(0)] or [0])
            start_at = time.time() + 10 + stations / 50  # time for every station to connect first
            chunks = [list(zip(names, range(stations)))[i:i + STATIONS_PER_PROCESS]
                      for i in range(0, stations, STATIONS_PER_PROCESS)]
            fleet = Fleet([Plan(chunk, stations, broker.port, every, start_at, seconds, session, reps) for chunk in chunks])
            deadline = time.monotonic() + CONNECT_MAX_S + 30
            while not fleet.all_in("connected"):
                fleet.drain_reports(1.0)
                if fleet.refused or time.monotonic() > deadline or hub.poll() is not None:
                    break
                _say(f"bench {stations}: {fleet.total(2)}/{stations} stations connected")
            connected = fleet.total(2)
            if connected != stations or fleet.refused:
                raise StationError(f"{stations - connected} of {stations} simulated stations did not get their CONNACK "
                                   f"({len(fleet.refused)} refused: {sorted(set(fleet.refused))[:3]})")
            _say(f"bench {stations}: all {stations} connected; publishing from {time.strftime('%H:%M:%S', time.localtime(start_at))}")
            time.sleep(max(0.0, start_at - time.time()))
            latencies: list[float] = []
            lag: list[tuple[float, int]] = []  # (seconds into the run, sent on schedule - stored)
            cpu0 = {"hub": cpu_seconds(hub.pid), "broker": cpu_seconds(broker.proc.pid), "stations": fleet.cpu()}
            t0 = time.monotonic()
            last_say = t0
            while time.monotonic() - t0 < seconds:
                for row in store.reps_since(last_id):
                    latencies.append(time.time() - row["ended_at"])
                    last_id = row["id"]
                fleet.drain_reports()
                stored = store.rep_count() - baseline
                lag.append((time.monotonic() - t0, scheduled(stations, every, time.time() - start_at) - stored))
                if time.monotonic() - last_say >= PROGRESS_S:
                    last_say = time.monotonic()
                    _say(f"bench {stations}: {time.monotonic() - t0:4.0f} s: {fleet.total(6)} sent, {fleet.total(4)} "
                         f"acknowledged by the broker, {stored} stored, {fleet.total(5)} confirmed")
                time.sleep(POLL_S)
            elapsed = time.monotonic() - t0
            cpu = {"hub": cpu_seconds(hub.pid) - cpu0["hub"], "broker": cpu_seconds(broker.proc.pid) - cpu0["broker"],
                   "stations": fleet.cpu() - cpu0["stations"]}
            _say(f"bench {stations}: {seconds:g} s over; waiting for the stations' last acknowledgements")
            while not fleet.all_in("published"):
                fleet.drain_reports(1.0)
            published = fleet.total(4)
            drain_started = last_say = time.monotonic()
            while store.rep_count() - baseline < published and time.monotonic() - drain_started < DRAIN_MAX_S:
                if time.monotonic() - last_say >= PROGRESS_S:
                    last_say = time.monotonic()
                    _say(f"bench {stations}: the hub catching up: {store.rep_count() - baseline} of {published} stored "
                         f"({time.monotonic() - drain_started:.0f} s of at most {DRAIN_MAX_S:.0f} s)")
                if hub.poll() is not None:
                    raise StationError("the hub exited during the benchmark (its log is in the run's temporary directory)")
                for row in store.reps_since(last_id):
                    latencies.append(time.time() - row["ended_at"])
                    last_id = row["id"]
                time.sleep(0.1)
            drain_s = time.monotonic() - drain_started
            drained = store.rep_count() - baseline >= published
            for row in store.reps_since(last_id):
                latencies.append(time.time() - row["ended_at"])
            time.sleep(1.0)  # the last confirmations
            fleet.stop.set()
            _say(f"bench {stations}: stopping the stations")
            while not fleet.all_in("done"):
                fleet.drain_reports(1.0)
            confirm = [x for row in fleet.last.values() for x in row[7]]
            stored = store.rep_count() - baseline
            keys = store.rep_keys()
            confirmed, sent = fleet.total(5), fleet.total(6)
            store.close()
        finally:
            if fleet is not None:
                fleet.close()
            if hub is not None and hub.poll() is None:
                hub.send_signal(signal.SIGTERM)
                try:
                    hub.wait(15)
                except subprocess.TimeoutExpired:
                    hub.kill()
            broker.stop()
    half = [p for p in lag if p[0] >= seconds / 2]
    return {
        "stations": stations, "connected": connected, "seconds": round(elapsed, 1),
        "reps_per_s": round(published / elapsed, 1), "reps_sent": sent, "reps_published": published,
        "reps_stored": stored, "reps_confirmed": confirmed, "not_stored": published - stored, "drained": drained,
        "doubled": len(keys) - len(set(keys)),
        "hub_cpu_pct": round(100 * cpu["hub"] / elapsed, 1), "broker_cpu_pct": round(100 * cpu["broker"] / elapsed, 1),
        "stations_cpu_pct": round(100 * cpu["stations"] / elapsed, 1),
        "latency_p50_ms": _ms(percentile(latencies, 50)), "latency_p99_ms": _ms(percentile(latencies, 99)),
        "latency_max_ms": _ms(max(latencies) if latencies else None),
        "confirm_p50_ms": _ms(percentile(confirm, 50)), "confirm_p99_ms": _ms(percentile(confirm, 99)),
        "falls_behind_reps_per_s": round(max(0.0, _slope(half)), 2), "drain_s": round(drain_s, 1),
        "cores": os.cpu_count(), "load_1min_at_end": round(os.getloadavg()[0], 2),
    }


def scheduled(stations: int, every: float, elapsed: float) -> int:
    """Reps the stations have sent `elapsed` seconds into the run, by their schedule (station i at
    i/N of each period): what the hub would hold by then if it kept up, without waiting for the
    stations' once-a-second reports."""
    if elapsed < 0:
        return 0
    return sum(int((elapsed - every * i / stations) // every) + 1 for i in range(stations)
               if elapsed >= every * i / stations)


def _wait_for_hub(store: HubStore, hub: subprocess.Popen, workdir: Path, port: int, session: dict[str, Any],
                  reps: list[dict[str, Any]]) -> None:
    """The hub is up and subscribed once a probe station's rep lands in its database."""
    probe = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-probe", protocol=mqtt.MQTTv5)
    probe.username_pw_set("bench-probe", PASSWORD)
    deadline = time.monotonic() + 30
    try:
        probe.connect("127.0.0.1", port)
    except OSError as err:
        raise StationError(f"the benchmark's broker refused its probe: {err}") from None
    probe.loop_start()
    try:
        uuid = os.urandom(16).hex()
        n = 0
        while store.rep_count() == 0:
            if time.monotonic() > deadline or hub.poll() is not None:
                log = (workdir / "hub.log").read_text(errors="replace")[-2000:]
                raise StationError(f"the hub did not start storing within 30 s:\n{log}")
            n += 1
            rep = dict(_as_station(reps[0], "bench-probe", uuid), rep_key=f"bench-probe:{uuid}:{n}", rep_index=n)
            probe.publish("hinge/bench-probe/rep", json.dumps(rep), qos=1)
            time.sleep(0.3)
    finally:
        probe.disconnect()
        probe.loop_stop()


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
    rows = []
    for n in counts:
        rows.append(bench_hub(n, args.seconds, args.every, args.database_url))
        print_table(rows[-1:], title=f"hub: {n} simulated stations, a rep each every {args.every:g} s plus their state, "
                                     f"into one hub over a loopback mosquitto with the shipped config "
                                     f"({os.cpu_count()} cores, shared)")
    if len(rows) > 1:
        print_table(rows, title="hub: all runs")
    if args.json:
        write_json(args.json, {"hub": rows})
    return 0
