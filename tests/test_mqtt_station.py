"""The station on a real broker (Debian's mosquitto, tests/support/broker.py): real clips replayed
through the live loop with [mqtt] on; every committed rep reaches a subscriber once and in order,
also across a broker restart in the middle of a set; the buzzer command and hostile commands; Home
Assistant discovery; the last will."""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from device.analysis.vocabulary import RepFinished
from device.config import load_settings
from device.errors import ConfigError
from device.station import topics as t
from device.station.assembly import build_station
from device.station.broker_link import BrokerLink
from device.station.live import LiveState
from device.station.store import RepStore
from support.broker import Mosquitto, broker  # noqa: F401
from support.mqtt import Listener
from support.pipeline import RecordedPoses, station_settings
from support.web import RecordingControls

REPO = Path(__file__).resolve().parents[1]
BUZZER = 18
THREE_REPS = "formfit_squat_side.mp4"  # three real squats: every rep a fault, so alerts too
TWO_REPS = "crossfit_bb_deadlift_side_female_annot.mp4"


def mqtt_on(settings, broker, db: Path, **fields):
    """`settings` with the rep log at `db` and MQTT on to `broker`, with quick reconnects for tests."""
    cfg = {"host": broker.host, "port": broker.port, "station_id": "wall-1", "keepalive_s": 2,
           "reconnect_min_s": 0.05, "reconnect_max_s": 0.2, **fields}
    return station_settings(settings, db, mqtt=cfg, signals={"fault_cooldown_s": 0.0})


def replay(settings, clip: Path, poses, on_event=None, pin_factory=None, keep_open=None):
    """The clip through the station as `station run --fast` wires it; `keep_open(rig)` runs after
    the clip ended and before the station stops (its MQTT link still running)."""
    with build_station(settings, str(clip), profile="hinge", fast=True, engine=RecordedPoses(poses),
                       on_event=on_event, pin_factory=pin_factory or MockFactory(pin_class=MockPWMPin)) as rig:
        rig.run()
        if keep_open is not None:
            keep_open(rig)
    return rig


def committed_keys(db: Path) -> tuple[list[str], list[str]]:
    """The rep keys and session ids as the station's database has them, in commit order."""
    with RepStore(db) as store:
        uuid = store.store_uuid
        reps = [t.rep_key("wall-1", uuid, r[0]) for r in store._query("SELECT id FROM reps ORDER BY id")]
        sessions = [t.session_key("wall-1", uuid, r[0]) for r in store._query("SELECT id FROM sessions ORDER BY id")]
        assert store.outbox_size() == 0, "the outbox is empty once the broker acknowledged everything"
    return reps, sessions


def first_seen(keys: list[str]) -> list[str]:
    out: list[str] = []
    for key in keys:
        if key not in out:
            out.append(key)
    return out


def test_replayed_clips_reach_a_subscriber_once_each_in_order(broker, clips_dir, clip_poses, settings, tmp_path):
    db = tmp_path / "station.db"
    cfg = mqtt_on(settings, broker, db)
    with Listener(broker, ["hinge/#"], name="hub") as hub:
        for clip in (THREE_REPS, TWO_REPS):
            replay(cfg, clips_dir / clip, clip_poses(clip))
        reps, sessions = committed_keys(db)
        assert len(reps) >= 4 and len(sessions) == 2
        assert hub.wait_for(lambda h: len(h.on("/rep")) >= len(reps))
        received = [m.json() for m in hub.on("/rep")]
        assert [r["rep_key"] for r in received] == reps  # every rep, once, in commit order
        for payload in received:  # each one a valid contract payload, as the hub will check it
            t.decode("hinge", "hinge/wall-1/rep", json.dumps(payload).encode())
        squats = received[: len(reps) - 2]
        assert all("squatting_the_hinge" in [f["name"] for f in r["faults"]] for r in squats)
        session_msgs = [m.json() for m in hub.on("/session")]
        # each session twice: when it starts (no end yet) and when it ends
        assert [s["session_key"] for s in session_msgs] == [sessions[0], sessions[0], sessions[1], sessions[1]]
        assert [s["ended_at"] is None for s in session_msgs] == [True, False, True, False]
        assert all(r["session_key"] in sessions for r in received)
        alerts = [m.json() for m in hub.on("/alert")]
        assert alerts and {a["fault"] for a in alerts} <= {f["name"] for r in received for f in r["faults"]}
    with Listener(broker, ["hinge/wall-1/state", "hinge/wall-1/availability"], name="late", clean=True) as late:
        assert late.wait_for(lambda h: h.on("/state") and h.on("/availability"))  # retained: a late reader gets them
    (state,) = late.on("/state")
    assert state.retain and state.json()["reps_today"] == len(reps)
    assert state.json()["clean_share_today"] == round(sum(not r["faults"] for r in received) / len(reps), 4)
    assert late.on("/availability")[0].payload == b"offline"  # said on a clean stop


def test_broker_restart_in_the_middle_of_a_set_loses_no_rep(broker, clips_dir, clip_poses, settings, tmp_path):
    """The broker goes down when the first rep is committed and comes back after the set: every rep
    arrives afterwards, in order; a duplicate (allowed by QoS 1) is the same rep_key."""
    db = tmp_path / "station.db"
    cfg = mqtt_on(settings, broker, db)
    outage = {}

    def on_event(event):
        if isinstance(event, RepFinished) and "down_at" not in outage:
            broker.stop()  # SIGTERM: mosquitto saves its sessions and goes; the station keeps coaching
            outage["down_at"] = time.monotonic()

    def come_back(rig):
        time.sleep(1.0)  # the rest of the set was committed while the broker was away
        with RepStore(db) as store:
            outage["waiting"] = store.outbox_size()
        broker.start()
        outage["seconds"] = time.monotonic() - outage["down_at"]
        hub.wait_for(lambda h: len({m.json()["rep_key"] for m in h.on("/rep")}) >= 3, timeout=15)

    with Listener(broker, ["hinge/+/rep"], name="hub") as hub:
        replay(cfg, clips_dir / THREE_REPS, clip_poses(THREE_REPS), on_event=on_event, keep_open=come_back)
        reps, _ = committed_keys(db)
        keys = [m.json()["rep_key"] for m in hub.on("/rep")]
    assert len(reps) == 3 and outage["waiting"] >= 2  # reps 2 and 3 (and the session end) waited in the outbox
    assert first_seen(keys) == reps  # 0 lost, in order
    assert set(keys) == set(reps)  # any duplicate is one of the same reps
    print(f"outage {outage['seconds']:.2f} s, {outage['waiting']} outbox rows waiting, {len(reps)} reps committed, "
          f"{len(keys)} received, {len(keys) - len(set(keys))} duplicates")


def test_a_station_stopped_during_an_outage_sends_its_outbox_at_the_next_start(clips_dir, clip_poses, settings, tmp_path):
    down = Mosquitto(tmp_path / "mosquitto")  # configured, not started: the broker is down all along
    db = tmp_path / "station.db"
    cfg = mqtt_on(settings, down, db)
    replay(cfg, clips_dir / TWO_REPS, clip_poses(TWO_REPS))
    with RepStore(db) as store:
        waiting = store.outbox_next(100)
    assert [row["kind"] for row in waiting] == ["session", "rep", "rep", "session"]
    with down, Listener(down, ["hinge/#"], name="hub") as hub:
        link = BrokerLink(cfg.mqtt, db, LiveState()).start()  # the station's next start
        try:
            assert hub.wait_for(lambda h: len(h.on("/rep")) == 2 and len(h.on("/session")) == 2)
        finally:
            link.stop()
        reps, _ = committed_keys(db)
    assert [m.json()["rep_key"] for m in hub.on("/rep")] == reps


def test_the_outbox_row_is_written_in_the_reps_own_transaction(tmp_path):
    """A rep whose outbox row cannot be written is not committed either: the rep log and what waits
    for the broker never disagree, and with MQTT off nothing waits."""
    import random

    from device.commands.sample_log import synthetic_rep
    from device.station.store import StorageError

    rng = random.Random(14)
    with RepStore(tmp_path / "off.db") as store:  # MQTT off
        sid = store.start_session(1000.0, "hinge", "camera")
        store.add_rep(sid, synthetic_rep(rng, 1, 2.0, "clean"), wall_offset=1000.0)
        assert store.outbox_size() == 0
    with RepStore(tmp_path / "on.db", outbox=True) as store:
        sid = store.start_session(1000.0, "hinge", "camera")
        rep_id = store.add_rep(sid, synthetic_rep(rng, 1, 2.0, "squatted"), wall_offset=1000.0)
        store.end_session(sid, 1100.0)
        store.end_session(sid, 1200.0)  # already ended: nothing new to send
        assert [(r["kind"], r["rep_id"], r["session_id"]) for r in store.outbox_next(10)] == \
            [("session", None, sid), ("rep", rep_id, None), ("session", None, sid)]
        store._db.execute("CREATE TRIGGER refuse BEFORE INSERT ON outbox BEGIN SELECT RAISE(ABORT, 'disk said no'); END")
        with pytest.raises(StorageError):
            store.add_rep(sid, synthetic_rep(rng, 2, 9.0, "clean"), wall_offset=1000.0)
        assert store.rep_count(sid) == 1 and store.outbox_size() == 3
        uuid = store.store_uuid
    assert len(uuid) == 32 and int(uuid, 16) >= 0
    with RepStore(tmp_path / "on.db") as again:
        assert again.store_uuid == uuid  # made once per database
    with RepStore(tmp_path / "other.db") as other:
        assert other.store_uuid != uuid


def test_buzzer_command_gates_the_buzzer_and_is_remembered(broker, clips_dir, clip_poses, settings, tmp_path):
    clip = "bichraix_deadlift_side_bad011_rounding_back.mp4"  # a faulty rep: it buzzes with the buzzer on
    loud = MockFactory(pin_class=MockPWMPin)
    replay(station_settings(settings, tmp_path / "loud.db", signals={"fault_cooldown_s": 0.0}), clips_dir / clip,
           clip_poses(clip), pin_factory=loud)
    assert any(s.state for s in loud.pin(BUZZER).states)

    db = tmp_path / "station.db"
    cfg = mqtt_on(settings, broker, db)
    quiet = MockFactory(pin_class=MockPWMPin)
    with Listener(broker, ["hinge/wall-1/state"], name="ha") as ha, \
            build_station(cfg, str(clips_dir / clip), profile="hinge", fast=True, engine=RecordedPoses(clip_poses(clip)),
                          pin_factory=quiet) as rig:
        rig.link.start()
        assert rig.link.connected.wait(5)
        assert ha.wait_for(lambda h: h.on("/state") and h.on("/state")[-1].json()["buzzer_on"] is True)
        ha.client.publish("hinge/wall-1/buzzer/set", "OFF", qos=1).wait_for_publish(5)
        deadline = time.monotonic() + 5
        while rig.link.commands < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        rig.run()  # the command is applied on the loop before its first frame
        assert ha.wait_for(lambda h: h.on("/state")[-1].json()["buzzer_on"] is False)
    assert not any(s.state for s in quiet.pin(BUZZER).states[1:])  # the faulty rep did not buzz
    with RepStore(db) as store:
        assert store.get_setting("buzzer_enabled") is False  # remembered like the page's switch


def test_hostile_commands_are_ignored(broker, tmp_path):
    """Only ON/OFF on this station's own command topic is obeyed: other payloads, a stale retained
    command, a flood, and commands on other topics are ignored, never an error."""
    db = tmp_path / "station.db"
    RepStore(db, outbox=True).close()
    live = LiveState()
    controls = RecordingControls(live)

    def mqtt_for(station: str):
        return load_settings(None, {"data_dir": tmp_path, "mqtt.host": broker.host, "mqtt.port": broker.port,
                                    "mqtt.station_id": station, "mqtt.keepalive_s": 2}).mqtt

    with Listener(broker, ["nothing/here"], name="attacker", clean=True) as attacker:
        def send(topic, payload, retain=False):
            attacker.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

        send("hinge/wall-1/buzzer/set", b"OFF", retain=True)  # someone's old command, left on the broker
        with BrokerLink(mqtt_for("wall-1"), db, live, controls) as link, \
                BrokerLink(mqtt_for("wall-2"), db, LiveState()) as neighbour:
            assert link.connected.wait(5) and neighbour.connected.wait(5)
            time.sleep(0.3)
            hostile = [("hinge/wall-1/buzzer/set", b"off"), ("hinge/wall-1/buzzer/set", b'{"state": "OFF"}'),
                       ("hinge/wall-1/buzzer/set", b"OFF\x00"), ("hinge/wall-1/buzzer/set", b"O" * 70_000),
                       ("hinge/wall-1/buzzer/set", b"1"), ("hinge/wall-1/buzzer", b"OFF"),
                       ("hinge/wall-1/rep", b"OFF"), ("homeassistant/switch/wall-1/buzzer/set", b"OFF")]
            for topic, payload in hostile:
                send(topic, payload)
            send("hinge/wall-2/buzzer/set", b"OFF")  # wall-2's own command: wall-2 obeys, wall-1 does not
            time.sleep(0.6)  # past the command rate limit
            send("hinge/wall-1/buzzer/set", b"OFF")
            deadline = time.monotonic() + 5
            while not controls.calls and time.monotonic() < deadline:
                time.sleep(0.01)
            send("hinge/wall-1/buzzer/set", b"ON")  # within 0.5 s of the last: a flood, dropped
            time.sleep(0.3)
        send("hinge/wall-1/buzzer/set", b"", retain=True)  # clears the retained command
    assert controls.calls == [("buzzer", False)]
    assert link.commands == 1 and link.ignored_commands == 7  # the retained one, 5 payloads, the flood
    assert neighbour.commands == 1
