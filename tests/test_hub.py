"""The hub against a real broker (Debian's mosquitto on loopback): two stations' real reps — written
by the live loop from real clips — into one hub, held exactly once however often they arrive;
malformed and hostile messages dropped with their reason while the hub keeps storing.

The intake's checks are also tried alone on plain data (no broker), where each reason is exact.
"""
from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from paho.mqtt.client import topic_matches_sub
from gpiozero.pins.mock import MockFactory, MockPWMPin

from device.hub.intake import NOT_ALLOWED, Intake
from device.contract import topics
from device.station.assembly import build_station
from device.contract.records import SessionFilter, StorageError
from device.station.store import RepStore
from support.hub import PREFIX, Publisher, running_hub, state_message, station_messages, wait_until
from support.pipeline import PIPELINE_CLIPS, RecordedPoses, station_settings

KEY = uuid.uuid4().hex


def rep_payload(station: str, rep_id: int = 1, session: int = 1, **changes) -> dict:
    now = time.time()
    data = dict(schema=1, station=station, rep_key=f"{station}:{KEY}:{rep_id}", session_key=f"{station}:{KEY}:{session}",
                rep_index=rep_id, started_at=now - 4, bottom_at=now - 2, ended_at=now, movement="hinge", side="left",
                lowering_s=1.5, lockout_reached=True, faults=[], borderline=[], trace=[[0.0, 1.0, 2.0]])
    data.update(changes)
    return data


def rep_message(station: str, rep_id: int = 1, topic_station: str = "", **changes) -> tuple[str, bytes]:
    return f"{PREFIX}/{topic_station or station}/rep", json.dumps(rep_payload(station, rep_id, **changes)).encode()


# --- the intake alone ------------------------------------------------------------------------------


HOSTILE = [
    ("not JSON", (f"{PREFIX}/wall-a/rep", b"\xff\xfe not json {"), "not_json"),
    ("a JSON list", (f"{PREFIX}/wall-a/rep", b"[1, 2, 3]"), "not_json"),
    ("1 MB", (f"{PREFIX}/wall-a/rep", b"{" + b" " * 999_000 + b"}"), "too_big"),  # under the test broker's packet limit
    ("schema 2", rep_message("wall-a", schema=2), "unknown_schema"),
    ("no schema", (f"{PREFIX}/wall-a/rep", json.dumps({k: v for k, v in rep_payload("wall-a").items() if k != "schema"}).encode()),
     "unknown_schema"),
    ("another station's payload on a's topic", rep_message("wall-b", topic_station="wall-a"), "wrong_station"),
    ("a's topic, a's station, b's key", rep_message("wall-a", rep_key=f"wall-b:{KEY}:7"), "wrong_station"),
    ("a field it does not know", rep_message("wall-a", extra="x"), "invalid"),
    ("NaN", (f"{PREFIX}/wall-a/rep", json.dumps(rep_payload("wall-a", lowering_s=float("nan"))).encode()), "invalid"),
    ("a state nobody defined", (f"{PREFIX}/wall-a/state", json.dumps({"schema": 1, "station": "wall-a", "state": "x"}).encode()),
     "invalid"),
    ("availability that is not online/offline", (f"{PREFIX}/wall-a/availability", b"maybe"), "invalid"),
    ("an upper-case station id", (f"{PREFIX}/WALL/rep", b"{}"), "unknown_topic"),
    ("a topic the contract has not", (f"{PREFIX}/wall-a/firmware", b"{}"), "unknown_topic"),
    ("a station outside the allow-list", rep_message("intruder"), NOT_ALLOWED),
    ("a fault the vocabulary has not", rep_message("wall-a", faults=[
        {"name": "=cmd|' /C calc'!A0", "cue": "x", "at": time.time(), "value": 1.0}]), "invalid"),
    ("a state with a made-up last fault", (f"{PREFIX}/wall-a/state", state_message("wall-a")[1].replace(
        b'"last_fault":null', b'"last_fault":"=HYPERLINK(1)"')), "invalid"),
]


@pytest.mark.parametrize("message,reason", [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE])
def test_the_intake_drops_each_hostile_message_with_its_reason(message, reason):
    sorted_ = Intake(PREFIX, {"wall-a", "wall-b"}).sort([message])
    assert [r for r, _ in sorted_.dropped] == [reason]
    assert not (sorted_.reps or sorted_.sessions or sorted_.states or sorted_.availability)


def test_the_intake_takes_a_valid_rep_state_and_availability():
    sorted_ = Intake(PREFIX, {"wall-a"}).sort([rep_message("wall-a"), state_message("wall-a"),
                                                (f"{PREFIX}/wall-a/availability", b"offline")])
    assert sorted_.dropped == []
    assert [r["rep_key"] for r in sorted_.reps] == [f"wall-a:{KEY}:1"]
    assert [s for s, _ in sorted_.states] == ["wall-a"] and sorted_.availability == [("wall-a", False)]


def test_an_empty_allow_list_takes_any_station():
    assert Intake(PREFIX, set()).sort([rep_message("anyone")]).dropped == []


# --- the hub on a real broker ----------------------------------------------------------------------


def mqtt_station(settings, broker, db: Path, station: str):
    """`settings` as a station named `station` publishing to `broker`, its rep log at `db`."""
    cfg = {"host": broker.host, "port": broker.port, "station_id": station, "keepalive_s": 2,
           "reconnect_min_s": 0.05, "reconnect_max_s": 0.2}
    return station_settings(settings, db, mqtt=cfg)


def replay(settings, clip: Path, poses, athlete=None) -> None:
    """A real clip through a real station, as `station run --fast` wires it (its MQTT link too)."""
    with build_station(settings, str(clip), profile="hinge", fast=True, engine=RecordedPoses(poses),
                       pin_factory=MockFactory(pin_class=MockPWMPin), athlete=athlete) as rig:
        rig.run()


def committed(db: Path, station: str) -> set[str]:
    with RepStore(db) as store:
        return {topics.rep_key(station, store.store_uuid, r["id"]) for s in store.list_sessions(limit=100)
                for r in store.session_reps(s["id"])}


def test_two_real_stations_replaying_real_clips_land_once_each_in_one_hub(broker, clips_dir, clip_poses, settings, tmp_path):
    """Two stations (the live loop over real clips, [mqtt] on) and one hub on the same broker. The
    broker restarts between the stations' sets; then every rep of one station is delivered again
    (at-least-once): the hub holds exactly the stations' reps, once each."""
    db_a, db_b = tmp_path / "wall-a.db", tmp_path / "platform-b.db"
    with running_hub(broker, f"sqlite:///{tmp_path / 'hub.db'}", {"wall-a", "platform-b"}) as hub:
        replay(mqtt_station(settings, broker, db_a, "wall-a"), clips_dir / PIPELINE_CLIPS[0], clip_poses(PIPELINE_CLIPS[0]), "Alex")
        replay(mqtt_station(settings, broker, db_a, "wall-a"), clips_dir / PIPELINE_CLIPS[2], clip_poses(PIPELINE_CLIPS[2]))
        broker.restart()
        replay(mqtt_station(settings, broker, db_b, "platform-b"), clips_dir / PIPELINE_CLIPS[1],
               clip_poses(PIPELINE_CLIPS[1]), "Alex")
        expected_a, expected_b = committed(db_a, "wall-a"), committed(db_b, "platform-b")
        assert len(expected_a) >= 3 and len(expected_b) >= 1
        with Publisher(broker, "replayer") as again:
            again.send([m for m in station_messages(db_a, "wall-a") if m[0].endswith("/rep")])
        total = len(expected_a) + len(expected_b)
        wait_until(lambda: hub.store.rep_count() >= total and hub.backlog == 0, what=f"{total} reps at the hub")
        time.sleep(0.3)  # any late duplicate would land now
        store = hub.store
        assert set(store.rep_keys("wall-a")) == expected_a
        assert set(store.rep_keys("platform-b")) == expected_b
        assert store.rep_count() == total
        assert hub.drops == {}
        # Sessions ended, and one athlete's sessions found across both stations.
        sessions = store.list_sessions(limit=100)
        assert {s["station"] for s in sessions} == {"wall-a", "platform-b"}
        assert all(s["ended_at"] is not None for s in sessions)
        alex = store.list_sessions(SessionFilter(athlete="Alex"), limit=100)
        assert sorted(s["station"] for s in alex) == ["platform-b", "wall-a"]
        # The faults and measurements are the station's own.
        with RepStore(db_a) as log_a:
            station_reps = [r for s in log_a.list_sessions(limit=100) for r in log_a.session_reps(s["id"])]
        hub_reps = [r for s in store.list_sessions(SessionFilter(station="wall-a"), limit=100) for r in store.session_reps(s["id"])]
        assert sorted(f["name"] for r in hub_reps for f in r["faults"]) == sorted(f["name"] for r in station_reps for f in r["faults"])
        assert sorted(r["peak_hip_flexion_deg"] for r in hub_reps) == sorted(r["peak_hip_flexion_deg"] for r in station_reps)
        # The floor shows both, from their retained state and last will.
        wait_until(lambda: {v.station for v in hub.floor.snapshot().stations} == {"wall-a", "platform-b"}, what="both on the floor")


def test_hostile_messages_are_dropped_and_the_hub_keeps_storing(broker, tmp_path):
    sqlish = "Robert'); DROP TABLE hub_reps;--"
    session = topics.SessionPayload(station="wall-a", session_key=f"wall-a:{KEY}:1", started_at=time.time() - 60,
                                    drill="hinge", athlete=sqlish, source="picamera' OR '1'='1")
    with running_hub(broker, f"sqlite:///{tmp_path / 'hub.db'}", {"wall-a", "wall-b"}) as hub:
        with Publisher(broker, "attacker") as attacker:
            attacker.send([h[1] for h in HOSTILE])
            attacker.send([(topics.Topics(PREFIX, "wall-a").session, session.to_json()), rep_message("wall-a", 1)])
        # The hub reads only the contract's station topics (topics.hub_subscriptions): one on a topic
        # the contract has not never reaches it; every other hostile message is counted and dropped.
        read = [h for h in HOSTILE if any(topic_matches_sub(sub, h[1][0]) for sub in topics.hub_subscriptions(PREFIX))]
        assert [h[0] for h in HOSTILE if h not in read] == ["a topic the contract has not"]
        wait_until(lambda: hub.store.rep_count() == 1, what="the one valid rep")
        wait_until(lambda: sum(hub.drops.values()) == len(read), what="every hostile message counted")
        expected: dict[str, int] = {}
        for _, _, reason in read:
            expected[reason] = expected.get(reason, 0) + 1
        assert dict(hub.drops) == expected
        assert hub.floor.snapshot().dropped == expected
        assert hub.alive
        # The SQL-ish strings are data: stored as sent, every table still there.
        stored = hub.store.list_sessions(limit=5)
        assert [(s["athlete"], s["source"]) for s in stored] == [(sqlish, "picamera' OR '1'='1")]
        assert hub.store.list_sessions(SessionFilter(athlete=sqlish), limit=5)[0]["id"] == stored[0]["id"]
        with sa.create_engine(f"sqlite:///{tmp_path / 'hub.db'}").connect() as db:
            tables = {r[0] for r in db.execute(sa.text("SELECT name FROM sqlite_master WHERE type='table'"))}
        assert {"hub_sessions", "hub_reps", "hub_faults"} <= tables
        # ...and the hub still takes a station's next rep.
        with Publisher(broker, "wall-a") as station:
            station.send([rep_message("wall-a", 2)])
        wait_until(lambda: hub.store.rep_count() == 2, what="the rep after the attack")


def test_reps_sent_while_the_hub_is_down_or_failing_to_store_arrive_once_it_is_back(broker, tmp_path, monkeypatch):
    """The hub keeps a persistent session and acknowledges a rep only once it is stored: reps sent
    while it is down, and reps it received but could not store, come again from the broker."""
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    with running_hub(broker, url, client_id="restarting-hub") as hub:
        with Publisher(broker, "wall-a") as station:
            station.send([rep_message("wall-a", 1)])
        wait_until(lambda: hub.store.rep_count() == 1, what="the first rep")
        attempts = []

        def disk_fails(*args, **kwargs):
            attempts.append(1)
            raise StorageError("disk I/O error")

        monkeypatch.setattr(hub.store, "ingest", disk_fails)
        with Publisher(broker, "wall-a") as station:
            station.send([rep_message("wall-a", 2)])
        wait_until(lambda: len(attempts) >= 1, what="the hub trying to store rep 2")
    monkeypatch.undo()
    with Publisher(broker, "wall-a") as station:  # the hub is down now
        station.send([rep_message("wall-a", i) for i in (3, 4)])
    with running_hub(broker, url, client_id="restarting-hub") as hub:
        wait_until(lambda: hub.store.rep_count() == 4, what="rep 2 (never acknowledged) and the reps sent while down")
        assert sorted(hub.store.rep_keys()) == sorted(f"wall-a:{KEY}:{i}" for i in (1, 2, 3, 4))


def test_the_floor_follows_retained_state_and_availability(broker, tmp_path):
    with Publisher(broker, "wall-a") as station:  # retained before the hub exists
        station.send([state_message("wall-a", topics.IN_REP, reps=3), (f"{PREFIX}/wall-a/availability", b"online")])
    with running_hub(broker, f"sqlite:///{tmp_path / 'hub.db'}") as hub:
        wait_until(lambda: any(v.online for v in hub.floor.snapshot().stations), what="the retained state")
        (view,) = hub.floor.snapshot().stations
        assert (view.station, view.state["state"], view.state["reps_this_session"]) == ("wall-a", "in_rep", 3)
        with Publisher(broker, "wall-a") as station:
            station.send([(f"{PREFIX}/wall-a/availability", b"offline")])
        wait_until(lambda: hub.floor.snapshot().stations[0].online is False, what="offline")


# --- one message never stops the hub ---------------------------------------------------------------


def test_reps_with_integers_past_what_sql_keeps_are_dropped_alone_and_never_come_back(broker, tmp_path):
    """30 reps whose rep_index SQLite's driver cannot bind (10**20), among two stations' good reps:
    each bad one is dropped and counted, every good one stored, and all of them acknowledged, so a
    restarted hub is not sent them again (more than the broker's in-flight window of 20, which a
    hub that acknowledged nothing would fill and then store nothing more)."""
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    bad = [rep_message("wall-a", 1000 + i, rep_index=10**20) for i in range(30)]
    good = [rep_message(station, i) for i in range(1, 21) for station in ("wall-a", "wall-b")]
    with running_hub(broker, url, {"wall-a", "wall-b"}, client_id="bounded-hub") as hub:
        with Publisher(broker, "wall-a") as station:
            station.send([m for pair in zip(bad, good) for m in pair] + good[len(bad):])
        wait_until(lambda: hub.store.rep_count() == len(good), what="every good rep stored")
        wait_until(lambda: sum(hub.drops.values()) == len(bad), what="every bad rep counted")
        assert dict(hub.drops) == {"invalid": 30} and hub.floor.snapshot().dropped == {"invalid": 30}
        assert hub.alive
    with running_hub(broker, url, {"wall-a", "wall-b"}, client_id="bounded-hub") as again:
        with Publisher(broker, "wall-a") as station:  # a rep after the restart: anything redelivered came before it
            station.send([rep_message("wall-a", 99)])
        wait_until(lambda: again.store.rep_count() == len(good) + 1, what="the rep after the restart")
        assert dict(again.drops) == {}  # nothing was left unacknowledged at the broker


def test_an_error_storing_one_message_drops_that_message_alone(broker, tmp_path, monkeypatch, caplog):
    """Whatever the database driver raises for one message (here the OverflowError SQLite's driver
    raised before the contract bounded integers) drops that message, counted, logged and on the
    floor; the rest of its batch is stored and everything is acknowledged."""
    from device.hub.store import HubStore

    poisoned = f"wall-a:{KEY}:13"
    insert = HubStore._insert_rep

    def driver_refuses(self, db, r, now):
        if r["rep_key"] == poisoned:
            raise OverflowError("Python int too large to convert to SQLite INTEGER")
        return insert(self, db, r, now)

    monkeypatch.setattr(HubStore, "_insert_rep", driver_refuses)
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    with running_hub(broker, url, client_id="erring-hub") as hub:
        with Publisher(broker, "wall-a") as station:
            station.send([rep_message("wall-a", i) for i in range(1, 26)])
        wait_until(lambda: hub.store.rep_count() == 24, what="every rep but the poisoned one")
        wait_until(lambda: sum(hub.drops.values()) == 1, what="the poisoned rep counted")
        assert hub.floor.snapshot().dropped == {"error": 1} and hub.alive
        assert poisoned not in hub.store.rep_keys()
    assert any("OverflowError" in r.getMessage() and "13" in r.getMessage() for r in caplog.records)
    with running_hub(broker, url, client_id="erring-hub") as again:
        with Publisher(broker, "wall-a") as station:
            station.send([rep_message("wall-a", 99)])
        wait_until(lambda: again.store.rep_count() == 25, what="the rep after the restart")
        assert dict(again.drops) == {}  # the poisoned rep was acknowledged, not left at the broker


def test_the_hub_confirms_to_each_station_what_it_stored_and_says_whether_it_is_there(broker, tmp_path):
    """After each commit the hub tells each station, on the station's own `stored` topic, the keys
    it now holds (a second delivery is confirmed again, a dropped message never), and keeps its
    availability retained: online while it reads, offline when it stops."""
    from support.mqtt import Listener

    with Listener(broker, ["hinge/+/stored", topics.hub_availability(PREFIX)], name="stations", clean=True) as spy:
        with running_hub(broker, f"sqlite:///{tmp_path / 'hub.db'}", {"wall-a", "wall-b"}):
            assert spy.wait_for(lambda s: [m.payload for m in s.on("/hub/availability")] == [b"online"])
            with Publisher(broker, "wall-a") as station:
                station.send([rep_message("wall-a", 1), rep_message("wall-a", 2), rep_message("wall-b", 1),
                              rep_message("wall-a", 3, rep_index=10**20)])
                station.send([rep_message("wall-a", 1)])  # again: stored once, confirmed again

            def confirmed(station: str) -> list[str]:
                return [k for m in spy.on(f"hinge/{station}/stored") for k in m.json()["reps"]]

            assert spy.wait_for(lambda s: len(confirmed("wall-a")) >= 3 and confirmed("wall-b"))
            assert sorted(confirmed("wall-a")) == [f"wall-a:{KEY}:1", f"wall-a:{KEY}:1", f"wall-a:{KEY}:2"]
            assert confirmed("wall-b") == [f"wall-b:{KEY}:1"]
            for message in spy.on("/stored"):  # each a valid contract payload, for its own station only
                station, _, payload = topics.decode(PREFIX, message.topic, message.payload)
                assert payload.station == station and all(k.startswith(station + ":") for k in payload.reps)
        assert spy.wait_for(lambda s: [m.payload for m in s.on("/hub/availability")] == [b"online", b"offline"])
        assert all(m.retain is False for m in spy.on("/stored"))


def test_a_hub_the_acl_will_not_let_answer_says_so(tmp_path, caplog):
    """A broker still on an ACL from before the `stored` topic: the hub's confirmations are refused,
    so the stations would keep every rep; the hub says so in its log, naming the ACL to use."""
    from pathlib import Path

    from support.broker import Mosquitto

    shipped = (Path(__file__).resolve().parents[1] / "deploy/mosquitto/hinge.acl").read_text()
    old_acl = shipped.replace("topic write hinge/+/stored\n", "")
    users = {"hub": "pw-hub", "wall-a": "pw-wall-a"}
    with Mosquitto(tmp_path / "mosquitto", users=users, acl=old_acl) as secured:
        with running_hub(secured, f"sqlite:///{tmp_path / 'hub.db'}", username="hub", password="pw-hub") as hub:
            with Publisher(secured, "wall-a", "wall-a", "pw-wall-a") as station:
                station.send([rep_message("wall-a", 1)])
            wait_until(lambda: hub.store.rep_count() == 1 and hub.refused_publishes >= 1, what="the refused confirmation")
    assert any("hinge.acl" in r.getMessage() and "refused" in r.getMessage() for r in caplog.records)
