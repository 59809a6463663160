"""The station on a real broker (Debian's mosquitto, tests/support/broker.py): real clips replayed
through the live loop with [mqtt] on; every committed rep reaches a subscriber (once and in order
while the broker stays up), also across a broker restart in the middle of a set, and leaves the outbox once a real hub has
confirmed it; the buzzer command and hostile commands; Home Assistant discovery; the last will."""
from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from device.analysis.vocabulary import Fault, RepFinished
from device.commands.sample_log import synthetic_rep
from device.config import load_settings
from device.errors import ConfigError
from device.contract import topics as t
from device.station.assembly import build_station
from device.station.broker_link import BrokerLink
from device.station.live import LiveState
from device.station.store import RepStore
from support.broker import Mosquitto
from support.hub import running_hub, wait_until
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
        assert store.outbox_size() == 0, "the outbox is empty once the hub confirmed everything"
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
    with running_hub(broker, f"sqlite:///{tmp_path / 'hub.db'}"), Listener(broker, ["hinge/#"], name="hub") as hub:
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
        # each session twice: queued when it starts and when it ends, sent as the session then stands
        # (a start sent after the end carries the end too: see topics.py), so the last one has its end
        assert [s["session_key"] for s in session_msgs] == [sessions[0], sessions[0], sessions[1], sessions[1]]
        for start, end in (session_msgs[0:2], session_msgs[2:4]):
            assert end["ended_at"] is not None and start["started_at"] == end["started_at"]
            assert start["ended_at"] in (None, end["ended_at"])
        assert all(r["session_key"] in sessions for r in received)
        alerts = [m.json() for m in hub.on("/alert")]
        assert alerts and {a["fault"] for a in alerts} <= {f["name"] for r in received for f in r["faults"]}
        # Reps and sessions at QoS 1 (the outbox); the state and alerts at QoS 0: a broker never
        # queues them for a reader that is away, where they would crowd out reps.
        assert {m.qos for m in hub.on("/rep") + hub.on("/session")} == {1}
        assert {m.qos for m in hub.on("/state") + hub.on("/alert")} == {0}
    with Listener(broker, ["hinge/wall-1/state", "hinge/wall-1/availability"], name="late", clean=True) as late:
        assert late.wait_for(lambda h: h.on("/state") and h.on("/availability"))  # retained: a late reader gets them
    (state,) = late.on("/state")
    assert state.retain and state.json()["reps_today"] == len(reps)
    assert state.json()["clean_share_today"] == round(sum(not r["faults"] for r in received) / len(reps), 4)
    assert late.on("/availability")[0].payload == b"offline"  # said on a clean stop


def test_broker_restart_in_the_middle_of_a_set_loses_no_rep(broker, clips_dir, clip_poses, settings, tmp_path):
    """The broker goes down when the first rep is committed and comes back after the set: every rep
    arrives afterwards; a duplicate (at-least-once) is the same rep_key. Not necessarily in commit
    order: a rep the broker took and then lost as it went down is sent again by the station later,
    after reps that first went out after the restart (the hub orders by time, and keys make it once)."""
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
        outage["page_said"] = rig.live.snapshot()[1].hub_link  # what the trainer's page shows meanwhile
        broker.start()
        outage["seconds"] = time.monotonic() - outage["down_at"]
        hub.wait_for(lambda h: len({m.json()["rep_key"] for m in h.on("/rep")}) >= 3, timeout=15)
        deadline = time.monotonic() + 5
        while rig.live.snapshot()[1].hub_link != "hub link: connected" and time.monotonic() < deadline:
            time.sleep(0.05)
        outage["page_after"] = rig.live.snapshot()[1].hub_link

    with running_hub(broker, f"sqlite:///{tmp_path / 'hub.db'}"), Listener(broker, ["hinge/+/rep"], name="hub") as hub:
        replay(cfg, clips_dir / THREE_REPS, clip_poses(THREE_REPS), on_event=on_event, keep_open=come_back)
        reps, _ = committed_keys(db)
        keys = [m.json()["rep_key"] for m in hub.on("/rep")]
    assert len(reps) == 3 and outage["waiting"] >= 2  # reps 2 and 3 (and the session end) waited in the outbox
    assert outage["page_said"].startswith("hub link down") and f"{outage['waiting']} reps and sessions wait" in outage["page_said"]
    assert outage["page_after"] == "hub link: connected"
    assert sorted(first_seen(keys)) == sorted(reps)  # 0 lost
    assert set(keys) == set(reps)  # any duplicate is one of the same reps
    print(f"outage {outage['seconds']:.2f} s, {outage['waiting']} outbox rows waiting, {len(reps)} reps committed, "
          f"{len(keys)} received, {len(keys) - len(set(keys))} duplicates")


class FastClock:
    """A monotonic clock running `factor` times faster than the wall's (the link's resend schedule)."""

    def __init__(self, factor: float):
        self.factor, self.started = factor, time.monotonic()

    def __call__(self) -> float:
        return (time.monotonic() - self.started) * self.factor


def test_a_rep_leaves_the_outbox_when_the_hub_confirms_it_and_goes_again_until_then(broker, tmp_path):
    """The broker's PUBACK lets nothing go: with no hub, the rep stays and goes again, each time
    after twice the wait (RESEND_FIRST_S, doubling); not while the hub says it is away; soon after it
    says it is back; and it leaves the outbox once a real hub stored it and said so."""
    from device.station import broker_link

    db = tmp_path / "station.db"
    with RepStore(db, outbox=True) as store:
        sid = store.start_session(time.time() - 60, "hinge", "camera")
        store.add_rep(sid, synthetic_rep(random.Random(5), 1, 2.0, "clean"), wall_offset=time.time() - 60)
    clock = FastClock(30.0)
    cfg = load_settings(None, {"data_dir": tmp_path, "mqtt.host": broker.host, "mqtt.port": broker.port,
                               "mqtt.station_id": "wall-1", "mqtt.keepalive_s": 2, "mqtt.discovery": False}).mqtt
    arrivals: list[float] = []
    spy = Listener(broker, ["hinge/wall-1/rep"], name="spy", clean=True)
    spy.client.on_message = lambda c, u, m: arrivals.append(clock())
    hub_says = Listener(broker, ["nothing"], name="hub-stand-in", clean=True)

    def hub_availability(payload: bytes) -> None:
        hub_says.client.publish(t.hub_availability("hinge"), payload, qos=1, retain=True).wait_for_publish(5)

    first = broker_link.RESEND_FIRST_S
    with spy, hub_says, BrokerLink(cfg, db, LiveState(), clock=clock) as link:
        deadline = time.monotonic() + 20
        while len(arrivals) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert link.sent == 2 and link.confirmed == 0  # the broker took both; the hub has said nothing
        with RepStore(db) as store:
            assert store.outbox_size() == 2
        gaps = [b - a for a, b in zip(arrivals, arrivals[1:4])]
        for gap, want in zip(gaps, (first, 2 * first, 4 * first)):
            assert want * 0.75 < gap < want * 1.25, (gaps, want)
        hub_availability(t.OFFLINE.encode())  # the hub's last will: it is away
        seen = len(arrivals)
        quiet_until = clock() + 10 * first  # past the next resend (8 x first after the last)
        while clock() < quiet_until:
            time.sleep(0.05)
        assert len(arrivals) == seen and link.hub_online is False
        back = clock()
        hub_availability(t.ONLINE.encode())
        while len(arrivals) == seen and clock() < back + 10 * broker_link.HUB_BACK_GRACE_S:
            time.sleep(0.02)
        assert len(arrivals) == seen + 1 and arrivals[-1] - back < 3 * broker_link.HUB_BACK_GRACE_S
        with running_hub(broker, f"sqlite:///{tmp_path / 'hub.db'}") as hub:
            wait_until(lambda: link.confirmed == 2, what="the hub's confirmation")
            assert hub.store.rep_count() == 1
        with RepStore(db) as store:
            assert store.outbox_size() == 0
        hub_availability(b"")  # clears the retained message


def test_a_session_leaves_the_outbox_only_once_the_hub_holds_its_end(tmp_path):
    """The hub confirms a session with the end it stored: a confirmation of the start (no end) lets
    neither row go once the session has ended, since the end may not have reached the hub yet."""
    with RepStore(tmp_path / "station.db", outbox=True) as store:
        sid = store.start_session(1000.0, "hinge", "camera")
        store.end_session(sid, 1100.0)
        assert [r["kind"] for r in store.outbox_next(10)] == ["session", "session"]
        assert store.outbox_confirm([], [(sid, None)]) == [] and store.outbox_size() == 2
        assert len(store.outbox_confirm([], [(sid, 1100.0)])) == 2 and store.outbox_size() == 0


def test_a_station_stopped_during_an_outage_sends_its_outbox_at_the_next_start(clips_dir, clip_poses, settings, tmp_path):
    down = Mosquitto(tmp_path / "mosquitto")  # configured, not started: the broker is down all along
    db = tmp_path / "station.db"
    cfg = mqtt_on(settings, down, db)
    replay(cfg, clips_dir / TWO_REPS, clip_poses(TWO_REPS))
    with RepStore(db) as store:
        waiting = store.outbox_next(100)
    assert [row["kind"] for row in waiting] == ["session", "rep", "rep", "session"]
    with down, running_hub(down, f"sqlite:///{tmp_path / 'hub.db'}"), Listener(down, ["hinge/#"], name="hub") as hub:
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
    from device.contract.records import StorageError

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


def test_home_assistant_chooses_the_drill_as_the_page_does(broker, clips_dir, clip_poses, settings, tmp_path, caplog):
    """Home Assistant's drill select on a real station: garbage on the command topic (not UTF-8, 70 kB,
    a drill the station does not have, a blank-padded id) is refused with a log line saying why and
    changes nothing; then the option a user picks, sent as Home Assistant sends it (the config's
    command_template, topic, QoS and retain), changes the drill as the page does: the clip is coached
    and logged under it, the station remembers it, and the retained state shows it as that option."""
    import logging

    import jinja2

    from device.analysis.profiles import profile_titles

    caplog.set_level(logging.DEBUG, logger="device.station.broker_link")
    db = tmp_path / "station.db"
    cfg = mqtt_on(settings, broker, db)
    finished = []
    with Listener(broker, ["hinge/wall-1/state", "homeassistant/select/wall-1/drill/config"], name="ha") as ha, \
            build_station(cfg, str(clips_dir / TWO_REPS), profile="hinge", fast=True,
                          engine=RecordedPoses(clip_poses(TWO_REPS)), pin_factory=MockFactory(pin_class=MockPWMPin),
                          on_event=lambda e: finished.append(e) if isinstance(e, RepFinished) else None) as rig:
        rig.link.start()
        assert ha.wait_for(lambda h: h.on("/config") and h.on("/state"))
        select = ha.on("/config")[-1].json()
        shows = jinja2.Environment().from_string(select["value_template"])
        titles = profile_titles(settings.analysis.profiles_dir)
        assert select["options"] == [titles[d] for d in rig.link.drills] and set(rig.link.drills) == set(titles)
        assert shows.render(value_json=ha.on("/state")[-1].json()) == titles["hinge"]
        hostile = [b"\xff\xfe\x00", b"O" * 70_000, b"backflip", b" dowel_hinge"]
        for payload in hostile:
            ha.client.publish(select["command_topic"], payload, qos=1).wait_for_publish(5)
        wait_until(lambda: rig.link.ignored_commands == len(hostile), what="the garbage refused")
        option = titles["dowel_hinge"]
        command = jinja2.Environment().from_string(select["command_template"]).render(value=option)
        ha.client.publish(select["command_topic"], command, qos=select["qos"], retain=select["retain"]).wait_for_publish(5)
        wait_until(lambda: rig.link.commands == 1, what="the drill command")
        rig.run()  # the change is applied on the loop before its first frame; the clip is coached under it
        assert ha.wait_for(lambda h: shows.render(value_json=h.on("/state")[-1].json()) == option)
    with Listener(broker, ["hinge/wall-1/state"], name="late", clean=True) as late:  # retained: what HA finds later
        assert late.wait_for(lambda h: h.on("/state"))
    assert late.on("/state")[-1].json()["drill"] == "dowel_hinge"
    with RepStore(db) as store:
        assert store.get_setting("profile") == "dowel_hinge"  # remembered like the page's choice
        sessions = store._query("SELECT profile FROM sessions")
        assert finished and store.rep_count() == len(finished)  # coaching went on: every rep logged
    assert [row[0] for row in sessions] == ["dowel_hinge"]
    said = [r.getMessage() for r in caplog.records if "ignored a command" in r.getMessage()]
    assert len(said) == len(hostile) and any(r.levelno == logging.WARNING for r in caplog.records if "ignored" in r.getMessage())
    assert "not a drill id" in said[0] and "70000 came" in said[1] and "no drill 'backflip'" in said[2]


DRILLS = {"hinge": "Hip hinge", "dowel_hinge": "Dowel hinge", "deadlift": "Deadlift"}


def test_hostile_commands_are_ignored(broker, tmp_path):
    """Only ON/OFF and one of the station's drills on this station's own command topics are obeyed:
    other payloads, a drill it does not have, a stale retained command, a flood (of one kind: a
    buzzer and a drill command together are no flood), and commands on other topics are ignored,
    never an error."""
    db = tmp_path / "station.db"
    RepStore(db, outbox=True).close()
    live = LiveState()
    controls, theirs = RecordingControls(live), RecordingControls(LiveState())

    def mqtt_for(station: str):
        return load_settings(None, {"data_dir": tmp_path, "mqtt.host": broker.host, "mqtt.port": broker.port,
                                    "mqtt.station_id": station, "mqtt.keepalive_s": 2}).mqtt

    with Listener(broker, ["nothing/here"], name="attacker", clean=True) as attacker:
        def send(topic, payload, retain=False):
            attacker.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

        send("hinge/wall-1/buzzer/set", b"OFF", retain=True)  # someone's old commands, left on the broker
        send("hinge/wall-1/drill/set", b"deadlift", retain=True)
        with BrokerLink(mqtt_for("wall-1"), db, live, controls, drills=DRILLS) as link, \
                BrokerLink(mqtt_for("wall-2"), db, theirs.live, theirs, drills=DRILLS) as neighbour:
            assert link.connected.wait(5) and neighbour.connected.wait(5)
            time.sleep(0.3)
            hostile = [("hinge/wall-1/buzzer/set", b"off"), ("hinge/wall-1/buzzer/set", b'{"state": "OFF"}'),
                       ("hinge/wall-1/buzzer/set", b"OFF\x00"), ("hinge/wall-1/buzzer/set", b"O" * 70_000),
                       ("hinge/wall-1/buzzer/set", b"1"), ("hinge/wall-1/buzzer", b"OFF"),
                       ("hinge/wall-1/rep", b"OFF"), ("homeassistant/switch/wall-1/buzzer/set", b"OFF"),
                       ("hinge/wall-1/drill/set", b"backflip"), ("hinge/wall-1/drill/set", b"\xff\xfe"),
                       ("hinge/wall-1/drill/set", b"Dowel hinge"), ("hinge/wall-1/drill", b"dowel_hinge")]
            for topic, payload in hostile:
                send(topic, payload)
            send("hinge/wall-2/buzzer/set", b"OFF")  # wall-2's own commands: wall-2 obeys, wall-1 does not
            send("hinge/wall-2/drill/set", b"deadlift")
            time.sleep(0.6)  # past the command rate limit
            send("hinge/wall-1/buzzer/set", b"OFF")
            send("hinge/wall-1/drill/set", b"dowel_hinge")  # another kind of command: no flood
            deadline = time.monotonic() + 5
            while len(controls.calls) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            send("hinge/wall-1/buzzer/set", b"ON")  # within 0.5 s of the last of its kind: a flood, dropped
            send("hinge/wall-1/drill/set", b"deadlift")
            time.sleep(0.3)
        send("hinge/wall-1/buzzer/set", b"", retain=True)  # clears the retained commands
        send("hinge/wall-1/drill/set", b"", retain=True)
    assert controls.calls == [("buzzer", False), ("profile", "dowel_hinge")]
    # the two retained ones, 5 buzzer payloads, 3 drill payloads (the last a title, not an id), the two floods
    assert link.commands == 2 and link.ignored_commands == 12
    assert theirs.calls == [("buzzer", False), ("profile", "deadlift")] and neighbour.commands == 2


# --- Home Assistant discovery ----------------------------------------------------------------------

# Keys Home Assistant documents for MQTT discovery of each component (home-assistant.io/integrations/
# sensor.mqtt, binary_sensor.mqtt, switch.mqtt, event.mqtt, select.mqtt: "Configuration Variables"), and
# the ones it requires. An event's payload (after value_template) is a JSON object with `event_type`, one of
# `event_types`; its other keys become the event's attributes.
HA_COMMON = {"availability", "availability_mode", "availability_template", "availability_topic", "device",
             "enabled_by_default", "encoding", "entity_category", "entity_picture", "icon", "json_attributes_template",
             "json_attributes_topic", "name", "object_id", "default_entity_id", "payload_available",
             "payload_not_available", "platform", "qos", "unique_id"}
HA_KEYS = {
    "sensor": HA_COMMON | {"device_class", "expire_after", "force_update", "last_reset_value_template", "options",
                           "state_class", "state_topic", "suggested_display_precision", "unit_of_measurement",
                           "value_template"},
    "binary_sensor": HA_COMMON | {"device_class", "expire_after", "force_update", "off_delay", "payload_off",
                                  "payload_on", "state_topic", "value_template"},
    "switch": HA_COMMON | {"command_template", "command_topic", "device_class", "optimistic", "payload_off",
                           "payload_on", "retain", "state_off", "state_on", "state_topic", "value_template"},
    "event": HA_COMMON | {"device_class", "event_types", "state_topic", "value_template"},
    "select": HA_COMMON | {"command_template", "command_topic", "optimistic", "options", "retain", "state_topic",
                           "value_template"},
}
HA_REQUIRED = {"sensor": {"state_topic"}, "binary_sensor": {"state_topic"}, "switch": {"command_topic"},
               "event": {"state_topic", "event_types"}, "select": {"command_topic", "options"}}
HA_ENTITY_CATEGORIES = {"config", "diagnostic"}
HA_EVENT_DEVICE_CLASSES = {"button", "doorbell", "motion"}
HA_DEVICE_KEYS = {"configuration_url", "connections", "hw_version", "identifiers", "manufacturer", "model", "model_id",
                  "name", "serial_number", "suggested_area", "sw_version", "via_device"}
# We send full key names only. Home Assistant also accepts abbreviations; none of these may appear,
# so a reader that knows only the documented full names reads every key.
HA_ABBREVIATIONS = {"avty_t", "pl_avail", "pl_not_avail", "dev", "uniq_id", "stat_t", "val_tpl", "cmd_t", "pl_on",
                    "pl_off", "stat_on", "stat_off", "unit_of_meas", "dev_cla", "stat_cla", "json_attr_t", "ic", "opt",
                    "ret", "ids", "mf", "mdl", "sw", "~"}


def test_home_assistant_discovery_validates(broker, tmp_path):
    import jinja2

    db = tmp_path / "station.db"
    RepStore(db, outbox=True).close()
    cfg = load_settings(None, {"data_dir": tmp_path, "mqtt.host": broker.host, "mqtt.port": broker.port,
                               "mqtt.station_id": "wall-1"}).mqtt
    live = LiveState()
    live.update(athlete="Sam", profile="dowel_hinge")
    with BrokerLink(cfg, db, live, RecordingControls(live), version="1.2.3", page_url="http://192.168.1.20:8080/",
                    drills=DRILLS):
        with Listener(broker, ["hinge/wall-1/state"], name="first", clean=True) as first:
            assert first.wait_for(lambda h: h.on("/state"))  # sent after the discovery configs
        with Listener(broker, ["homeassistant/#", "hinge/wall-1/#"], name="ha", clean=True) as ha:
            assert ha.wait_for(lambda h: len(h.on("/config")) == 13 and h.on("/state"))
    configs = {m.topic: m for m in ha.on("/config")}
    assert set(configs) == {f"homeassistant/{c}/wall-1/{o}/config" for c, o in [
        ("sensor", "state"), ("sensor", "athlete"), ("sensor", "drill"), ("sensor", "reps_this_session"),
        ("sensor", "reps_today"), ("sensor", "last_fault"), ("sensor", "clean_share"), ("sensor", "waiting"),
        ("binary_sensor", "online"), ("switch", "buzzer"), ("event", "fault"), ("event", "rep"), ("select", "drill")]}
    state = ha.on("/state")[-1].json()
    unique = set()
    for topic, message in configs.items():
        component = topic.split("/")[1]
        config = message.json()
        assert message.retain  # Home Assistant finds the station after its own restart
        assert HA_REQUIRED[component] <= set(config) <= HA_KEYS[component], topic
        assert not set(config) & HA_ABBREVIATIONS and set(config["device"]) <= HA_DEVICE_KEYS
        assert config["device"]["identifiers"] == ["hinge_station_wall-1"] and config["device"]["sw_version"] == "1.2.3"
        assert config["device"]["configuration_url"] == "http://192.168.1.20:8080/"  # the station's page
        assert config.get("entity_category", "diagnostic") in HA_ENTITY_CATEGORIES
        assert config.get("device_class", "button") in HA_EVENT_DEVICE_CLASSES or component != "event"
        unique.add(config["unique_id"])
        for key in ("state_topic", "availability_topic", "command_topic", "json_attributes_topic"):
            if key in config:
                assert config[key].startswith("hinge/wall-1/")
        if component == "event":
            continue  # rendered on real alerts and reps below
        if "value_template" in config:  # rendered on a real state message, as Home Assistant renders it
            rendered = jinja2.Environment().from_string(config["value_template"]).render(value_json=state)
            if config.get("device_class") == "enum":
                assert rendered in config["options"] == list(t.STATES)
            elif component == "switch":
                assert rendered in (config["state_on"], config["state_off"])
                assert config["command_topic"] == "hinge/wall-1/buzzer/set"
            elif component == "select":
                assert rendered == DRILLS["dowel_hinge"]  # the drill running, as its option
            elif "unit_of_measurement" in config:
                assert rendered == "None" or float(rendered) >= 0  # "None": unknown before the first rep
    assert len(unique) == 13
    # The drill select: a configuration entity listing the station's drills by title; the option Home
    # Assistant sends (through command_template) is the drill's id on the station's own command topic.
    select = configs["homeassistant/select/wall-1/drill/config"].json()
    assert select["entity_category"] == "config" and select["command_topic"] == "hinge/wall-1/drill/set"
    assert select["options"] == list(DRILLS.values()) and select["optimistic"] is False and select["retain"] is False
    sends = jinja2.Environment().from_string(select["command_template"])
    assert [sends.render(value=option) for option in select["options"]] == list(DRILLS)
    online = configs["homeassistant/binary_sensor/wall-1/online/config"].json()
    assert online["device_class"] == "connectivity" and online["entity_category"] == "diagnostic"
    assert "entity_category" not in configs["homeassistant/sensor/wall-1/reps_today/config"].json()  # a main reading
    who = configs["homeassistant/sensor/wall-1/athlete/config"].json()
    assert jinja2.Environment().from_string(who["value_template"]).render(value_json=state) == "Sam"
    # The fault event, on a real alert: its type one of the vocabulary's faults, its cue an attribute.
    fault = configs["homeassistant/event/wall-1/fault/config"].json()
    assert fault["state_topic"] == "hinge/wall-1/alert" and fault["event_types"] == [f.value for f in Fault]
    alert = t.AlertPayload(station="wall-1", at=time.time(), fault="rounded_back", cue="proud chest").model_dump(by_alias=True)
    fired = json.loads(jinja2.Environment().from_string(fault["value_template"]).render(value_json=alert))
    assert fired == {"event_type": "rounded_back", "cue": "proud chest"}


def test_a_reps_home_assistant_event_is_its_verdict_as_the_station_gives_it():
    """The rep event's template, rendered on rep messages of every verdict, gives the station's own
    verdict (device/analysis/vocabulary.py: rep_verdict), also for a rep from a station before `judged`."""
    import jinja2

    from device.analysis.vocabulary import rep_verdict
    from device.station.broker_link import REP_EVENT_TEMPLATE, REP_EVENT_TYPES
    from test_hub_store import rep as rep_message

    fault = {"name": "rounded_back", "cue": "c", "at": 1_700_001_011.0, "value": 31.0, "threshold": 25.0}
    cases = [dict(), dict(judged=False), dict(faults=[fault]), dict(borderline=[fault]), dict(movement="squat"),
             dict(judged=False, faults=[fault])]
    template = jinja2.Environment().from_string(REP_EVENT_TEMPLATE)
    for change in cases:
        message = {**rep_message("wall-1", 3), **change}
        payload = t.RepPayload.model_validate({"schema": 1, **message}).model_dump(by_alias=True)
        if "judged" not in change:
            del payload["judged"]  # as an older station sends it: every rep judged
        fired = json.loads(template.render(value_json=payload))
        want = rep_verdict(bool(change.get("judged", True)), bool(change.get("faults")), bool(change.get("borderline")),
                           message["movement"]).replace(" ", "_")
        assert fired["event_type"] == want and want in REP_EVENT_TYPES, change
        assert fired["rep_index"] == 3 and fired["faults"] == [f["name"] for f in message["faults"]]


def test_a_retired_station_leaves_home_assistant_and_the_floor(broker, tmp_path):
    """`station retire`: every discovery config emptied (Home Assistant removes the entity) and the
    retained state and availability too, so a reader that subscribes afterwards finds nothing."""
    from device.station.broker_link import retire_messages, retire_station

    db = tmp_path / "station.db"
    RepStore(db, outbox=True).close()
    cfg = load_settings(None, {"data_dir": tmp_path, "mqtt.host": broker.host, "mqtt.port": broker.port,
                               "mqtt.station_id": "wall-9"}).mqtt
    live = LiveState()
    with BrokerLink(cfg, db, live, RecordingControls(live), drills=DRILLS):
        with Listener(broker, ["homeassistant/#", "hinge/wall-9/#"], name="before", clean=True) as before:
            assert before.wait_for(lambda h: len(h.on("/config")) == 13 and h.on("/state"))
    assert before.on("homeassistant/select/wall-9/drill/config")  # the drill select too
    retired = retire_messages(cfg, t.Topics(cfg.topic_prefix, "wall-9"))
    assert {topic for topic, _ in retired} >= {m.topic for m in before.on("/config")} and all(p == b"" for _, p in retired)
    assert retire_station(cfg) == len(retired)
    with Listener(broker, ["homeassistant/#", "hinge/wall-9/#"], name="after", clean=True) as after:
        time.sleep(1.0)  # retained messages arrive at once on subscribing; an empty one is no message
    assert after.messages == []


def test_discovery_turned_off_removes_every_entity(broker, tmp_path):
    """`[mqtt] discovery = false`: at the station's next start every config an earlier run announced
    (the drill select's too) is emptied, and Home Assistant removes the device; the station still
    publishes its state for the hub."""
    db = tmp_path / "station.db"
    RepStore(db, outbox=True).close()
    settings = {"data_dir": tmp_path, "mqtt.host": broker.host, "mqtt.port": broker.port, "mqtt.station_id": "wall-8"}
    on, off = (load_settings(None, {**settings, "mqtt.discovery": d}).mqtt for d in (True, False))
    live = LiveState()
    for cfg in (on, off):
        with BrokerLink(cfg, db, live, RecordingControls(live), drills=DRILLS) as link:
            with Listener(broker, ["hinge/wall-8/state"], name="state", clean=True) as state:
                assert state.wait_for(lambda h: h.on("/state"))  # sent after the configs
        if cfg.discovery:
            with Listener(broker, ["homeassistant/#"], name="before", clean=True) as before:
                assert before.wait_for(lambda h: len(h.on("/config")) == 13)
            assert before.on("homeassistant/select/wall-8/drill/config")
    assert link.cfg.discovery is False
    with Listener(broker, ["homeassistant/#", "hinge/wall-8/state"], name="after", clean=True) as after:
        assert after.wait_for(lambda h: h.on("/state"))
        time.sleep(0.5)  # retained messages arrive at once on subscribing; an empty one is no message
    assert [m.topic for m in after.messages] == ["hinge/wall-8/state"]


def test_the_last_will_marks_a_killed_station_offline(broker, tmp_path):
    db = tmp_path / "station.db"
    RepStore(db, outbox=True).close()
    script = f"""
import time
from device.commands.sample_log import synthetic_rep
from device.config import load_settings
from device.station.broker_link import BrokerLink
from device.station.live import LiveState
cfg = load_settings(None, {{"data_dir": {str(tmp_path)!r}, "mqtt.host": "{broker.host}", "mqtt.port": {broker.port},
                           "mqtt.station_id": "wall-1", "mqtt.keepalive_s": 1}}).mqtt
link = BrokerLink(cfg, {str(db)!r}, LiveState()).start()
link.connected.wait(10)
print("connected", flush=True)
time.sleep(60)
"""
    with Listener(broker, ["hinge/wall-1/availability"], name="hub") as hub:
        proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout.readline().strip() == "connected"
            assert hub.wait_for(lambda h: [m.payload for m in h.on("/availability")] == [b"online"])
        finally:
            proc.kill()  # no goodbye: the broker speaks the will
            proc.wait()
        assert hub.wait_for(lambda h: [m.payload for m in h.on("/availability")] == [b"online", b"offline"])


# --- the broker's ACL (deploy/mosquitto/hinge.acl) and credentials --------------------------------

USERS = {"wall-1": "pw-wall-1", "wall-2": "pw-wall-2", "hub": "pw-hub", "homeassistant": "pw-ha"}


def test_the_documented_acl_keeps_each_station_to_its_own_topics(tmp_path, clips_dir, clip_poses, settings):
    acl = (REPO / "deploy/mosquitto/hinge.acl").read_text()
    with Mosquitto(tmp_path / "mosquitto", users=USERS, acl=acl) as secured:
        with Listener(secured, ["hinge/#", "homeassistant/#"], name="hub", username="hub", password=USERS["hub"]) as hub, \
                Listener(secured, ["hinge/#"], name="wall-1-reader", username="wall-1", password=USERS["wall-1"]) as wall_1, \
                Listener(secured, ["nothing"], name="ha", username="homeassistant", password=USERS["homeassistant"]) as ha:
            def publish(who, topic, payload):
                who.client.publish(topic, payload, qos=1).wait_for_publish(5)

            forged = json.dumps({"schema": 1, "station": "wall-2", "at": 1.0, "fault": "rounded_back", "cue": "x"})
            for topic in ("hinge/wall-2/rep", "hinge/wall-2/alert", "hinge/wall-2/state", "hinge/wall-2/availability",
                          "hinge/wall-2/buzzer/set", "hinge/wall-2/drill/set", "homeassistant/switch/wall-2/buzzer/config",
                          "homeassistant/select/wall-2/drill/config", "hinge/hub/rep"):
                publish(wall_1, topic, forged)  # wall-1's credentials, someone else's topics
            publish(wall_1, "hinge/wall-1/drill/set", "deadlift")  # nor may a station command itself
            publish(hub, "hinge/wall-1/buzzer/set", "OFF")  # the hub only reads
            publish(hub, "hinge/wall-1/drill/set", "deadlift")
            publish(ha, "hinge/wall-2/buzzer/set", "OFF")  # Home Assistant may command wall-2...
            publish(ha, "hinge/wall-2/drill/set", "deadlift")
            publish(ha, "hinge/wall-1/buzzer/set", "ON")  # ...and wall-1
            publish(ha, "hinge/wall-1/drill/set", "dowel_hinge")
            publish(wall_1, "hinge/wall-1/alert", forged.replace("wall-2", "wall-1"))  # its own topic: allowed
            assert hub.wait_for(lambda h: h.on("hinge/wall-1/alert"))
            # Published before the allowed alert on the same connection: had the broker let them through,
            # the hub would have them by now.
            assert [(m.topic, m.payload) for m in hub.messages[:-1]] == [
                ("hinge/wall-2/buzzer/set", b"OFF"), ("hinge/wall-2/drill/set", b"deadlift"),
                ("hinge/wall-1/buzzer/set", b"ON"), ("hinge/wall-1/drill/set", b"dowel_hinge")]
            assert hub.messages[-1].topic == "hinge/wall-1/alert"
            # wall-1 subscribed to hinge/# but reads only its own command topics (and never wall-2's): the
            # commands Home Assistant sent last arrive, nothing sent before them does
            assert wall_1.wait_for(lambda w: w.on("hinge/wall-1/drill/set"))
            assert [(m.topic, m.payload) for m in wall_1.messages] == [("hinge/wall-1/buzzer/set", b"ON"),
                                                                       ("hinge/wall-1/drill/set", b"dowel_hinge")]

        # A station with its credentials from a password file works end to end through the same ACL.
        secret = tmp_path / "wall-1.secret"
        secret.write_text(USERS["wall-1"] + "\n")
        db = tmp_path / "station.db"
        cfg = mqtt_on(settings, secured, db, username="wall-1", password_file=secret)
        with running_hub(secured, f"sqlite:///{tmp_path / 'hub.db'}", username="hub", password=USERS["hub"]), \
                Listener(secured, ["hinge/#"], name="hub", username="hub", password=USERS["hub"]) as hub, \
                Listener(secured, ["homeassistant/#"], name="ha", username="homeassistant",
                         password=USERS["homeassistant"]) as ha:
            replay(cfg, clips_dir / TWO_REPS, clip_poses(TWO_REPS))
            reps, _ = committed_keys(db)
            assert hub.wait_for(lambda h: [m.json()["rep_key"] for m in h.on("/rep")] == reps)
            assert ha.wait_for(lambda h: len(h.on("/config")) == 13)  # every kind allowed by the ACL, events and select too
        wrong = mqtt_on(settings, secured, tmp_path / "other.db", station_id="wall-2", username="wall-1",
                        password_file=secret)  # wall-1's credentials claiming to be wall-2
        with Listener(secured, ["hinge/#"], name="hub", username="hub", password=USERS["hub"]) as hub:
            replay(wrong, clips_dir / TWO_REPS, clip_poses(TWO_REPS), keep_open=lambda rig: time.sleep(1.0))
            assert not hub.on("hinge/wall-2/rep")
        with RepStore(tmp_path / "other.db") as store:  # the broker refused them: they stay, nothing lost
            assert store.outbox_size() >= 2


def publish_as(broker, user: str, topic: str, payload: bytes) -> str:
    """Publish once with `user`'s credentials over MQTT 5, so the broker says in its PUBACK whether
    the ACL let the message in; returns its reason ("Success", "Not authorized")."""
    import paho.mqtt.client as mqtt

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"as-{user}-{time.monotonic_ns()}",
                         protocol=mqtt.MQTTv5)
    client.username_pw_set(user, USERS[user])
    answer: dict = {}
    acked = threading.Event()

    def on_publish(client, userdata, mid, reason, properties) -> None:
        answer["reason"] = str(reason)
        acked.set()

    client.on_publish = on_publish
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=1)
        assert acked.wait(5), f"no PUBACK for {topic}"
        return answer["reason"]
    finally:
        client.disconnect()
        client.loop_stop()


def test_only_stations_publish_station_topics(tmp_path):
    """The ACL's pattern lines give every user its own station topics, the hub's and Home Assistant's
    users too: with the shipped ACL on a real broker, neither may publish as a station named after
    itself (every kind a station publishes, and its discovery configs), while a station still may;
    only the hub answers a station on its `stored` topic and says whether it is online; and the
    config refuses those two names as station ids."""
    acl = (REPO / "deploy/mosquitto/hinge.acl").read_text()
    discovery = ["homeassistant/sensor/{u}/state/config", "homeassistant/binary_sensor/{u}/online/config",
                 "homeassistant/switch/{u}/buzzer/config", "homeassistant/event/{u}/fault/config",
                 "homeassistant/select/{u}/drill/config"]
    with Mosquitto(tmp_path / "mosquitto", users=USERS, acl=acl) as secured:
        with Listener(secured, ["hinge/#"], name="hub-reader", username="hub", password=USERS["hub"]) as hub, \
                Listener(secured, ["homeassistant/#"], name="ha-reader", username="homeassistant",
                         password=USERS["homeassistant"]) as ha:
            refused = {}
            for user in ("hub", "homeassistant"):
                for topic in [f"hinge/{user}/{kind}" for kind in t.STATION_KINDS] + [d.format(u=user) for d in discovery]:
                    if topic != t.hub_availability("hinge"):  # the hub's own (device/contract/topics.py)
                        refused[topic] = publish_as(secured, user, topic, b'{"schema": 1}')
            for user, topic in [("wall-1", "hinge/wall-1/stored"), ("wall-1", "hinge/wall-2/stored"),
                                ("wall-1", "hinge/hub/availability"), ("homeassistant", "hinge/wall-1/stored")]:
                refused[f"{topic} by {user}"] = publish_as(secured, user, topic, b"forged")
            assert publish_as(secured, "hub", "hinge/hub/availability", b"online") == "Success"
            assert publish_as(secured, "wall-1", "hinge/wall-1/rep", b"sentinel") == "Success"
            assert publish_as(secured, "wall-1", "homeassistant/event/wall-1/rep/config", b"") == "Success"  # events, and retiring
            assert publish_as(secured, "wall-1", "homeassistant/select/wall-1/drill/config", b"") == "Success"
            assert publish_as(secured, "wall-1", "homeassistant/switch/wall-1/buzzer/config", b"sentinel") == "Success"
            assert hub.wait_for(lambda h: h.on("hinge/wall-1/rep"))
            assert ha.wait_for(lambda h: h.on("homeassistant/switch/wall-1/buzzer/config"))  # the last one sent
            # Published before the sentinels: had the broker let any through, the readers would have it.
            assert [m.topic for m in hub.messages] == ["hinge/hub/availability", "hinge/wall-1/rep"]
            assert [m.topic for m in ha.messages] == ["homeassistant/event/wall-1/rep/config",
                                                      "homeassistant/select/wall-1/drill/config",
                                                      "homeassistant/switch/wall-1/buzzer/config"]
        with Listener(secured, ["hinge/wall-1/stored"], name="wall-1", username="wall-1", password=USERS["wall-1"]) as wall:
            assert publish_as(secured, "hub", "hinge/wall-1/stored", b"confirmed") == "Success"
            assert wall.wait_for(lambda w: [m.payload for m in w.messages] == [b"confirmed"])
        assert {topic: reason for topic, reason in refused.items() if reason != "Not authorized"} == {}
    for name in ("hub", "homeassistant"):
        with pytest.raises(ConfigError, match="station_id"):
            load_settings(None, {"data_dir": tmp_path, "mqtt.host": "b", "mqtt.station_id": name})


# --- configuration -----------------------------------------------------------------------------------


def test_mqtt_settings_are_checked(tmp_path, monkeypatch):
    assert load_settings(None, {"data_dir": tmp_path}).mqtt.enabled is False  # off by default
    on = load_settings(None, {"data_dir": tmp_path, "mqtt.host": "broker.lan", "mqtt.station_id": "wall-1",
                              "mqtt.tls": True})
    assert on.mqtt.enabled and on.mqtt.broker_port == 8883
    secret = tmp_path / "pw"
    secret.write_text("s3cret\nignored\n")
    assert load_settings(None, {"data_dir": tmp_path, "mqtt.host": "b", "mqtt.station_id": "w", "mqtt.username": "w",
                                "mqtt.password_file": secret}).mqtt.secret() == "s3cret"
    bad = [
        ({"mqtt.host": "b", "mqtt.station_id": "Wall 1"}, "station_id"),
        ({"mqtt.host": "b", "mqtt.station_id": "w", "mqtt.topic_prefix": "hinge/#"}, "topic_prefix"),
        ({"mqtt.host": "b", "mqtt.station_id": "w", "mqtt.username": "w", "mqtt.password": "p",
          "mqtt.password_file": secret}, "not both"),
        ({"mqtt.host": "b", "mqtt.station_id": "w", "mqtt.ca_file": secret}, "need tls"),
        ({"mqtt.host": "b", "mqtt.station_id": "w", "mqtt.tls": True, "mqtt.ca_file": tmp_path / "nope.crt"},
         "does not exist"),
        ({"mqtt.host": "b", "mqtt.station_id": "w", "mqtt.tls": True, "mqtt.cert_file": secret}, "go together"),
        ({"mqtt.host": "b", "mqtt.station_id": "w", "mqtt.colour": "red"}, "colour"),
    ]
    for overrides, words in bad:
        with pytest.raises(ConfigError, match=words):
            load_settings(None, {"data_dir": tmp_path, **overrides})
    monkeypatch.setenv("HINGE_MQTT__PASWORD", "typo")
    with pytest.raises(ConfigError, match="HINGE_MQTT__PASWORD"):
        load_settings(None, {"data_dir": tmp_path})
    monkeypatch.delenv("HINGE_MQTT__PASWORD")
    monkeypatch.setenv("HINGE_MQTT__PASSWORD", "from-env")
    monkeypatch.setenv("HINGE_MQTT__USERNAME", "wall-1")
    assert load_settings(None, {"data_dir": tmp_path, "mqtt.host": "b", "mqtt.station_id": "wall-1"}).mqtt.secret() == "from-env"


def test_tls_with_a_password_and_the_doctor_probe(tmp_path):
    """A station on a TLS listener with its credentials: the broker's certificate is verified (a
    broker signed by another CA is refused), reps go through, and `station doctor` says which."""
    import random

    from device.commands.doctor import Doctor
    from device.commands.sample_log import synthetic_rep
    from support.broker import make_certificates

    tls = make_certificates(tmp_path / "certs")
    stranger = make_certificates(tmp_path / "other", name="stranger")
    db = tmp_path / "station.db"
    rep = synthetic_rep(random.Random(3), 1, 2.0, "rounded")
    with RepStore(db, outbox=True) as store:
        sid = store.start_session(time.time() - 60, "hinge", "camera")
        store.add_rep(sid, rep, wall_offset=time.time() - 60)
    acl = (REPO / "deploy/mosquitto/hinge.acl").read_text()
    with Mosquitto(tmp_path / "mosquitto", users=USERS, acl=acl, tls=tls) as secured:
        def settings_with(**mqtt):
            return load_settings(None, {"data_dir": tmp_path, "store.db_path": db, "mqtt.host": "127.0.0.1",
                                        "mqtt.port": secured.port, "mqtt.station_id": "wall-1", "mqtt.tls": True,
                                        "mqtt.username": "wall-1", "mqtt.password": USERS["wall-1"],
                                        "mqtt.reconnect_min_s": 0.05, "mqtt.reconnect_max_s": 0.2,
                                        **{f"mqtt.{k}": v for k, v in mqtt.items()}})

        good, wrong_ca = settings_with(ca_file=tls.cafile), settings_with(ca_file=stranger.cafile)
        bad_password = settings_with(ca_file=tls.cafile, password="guess")
        assert Doctor(good, probe=True).mqtt().status == "ok"
        checks = {name: Doctor(s, probe=True).mqtt() for name, s in [("ca", wrong_ca), ("password", bad_password)]}
        assert checks["ca"].status == "fail" and "certificate verify failed" in checks["ca"].detail
        assert checks["password"].status == "fail" and "refused" in checks["password"].detail
        assert "2 reps and sessions wait in the outbox" in Doctor(good).mqtt().detail  # --quick: no network
        with Listener(secured, ["hinge/#"], name="hub", username="hub", password=USERS["hub"],
                      ca_file=str(tls.cafile)) as hub:
            with BrokerLink(wrong_ca.mqtt, db, LiveState()) as refused:
                time.sleep(0.5)
                assert not refused.connected.is_set() and not hub.on("/rep")
                assert "cannot reach the broker" in refused.last_error  # said in the log once, not per retry
            with BrokerLink(good.mqtt, db, LiveState()) as link:
                assert hub.wait_for(lambda h: h.on("/rep") and h.on("/session"))
            assert link.sent == 2
        sent = hub.on("/rep")[0].json()
        assert sorted(f["name"] for f in sent["faults"]) == sorted(rep.fault_names) and "rounded_back" in rep.fault_names


def test_a_flapping_broker_delays_reps_but_never_loses_them(broker, tmp_path):
    """Reps are committed while the broker goes down and comes back four times: the subscriber ends
    with every rep, and the hub confirms every one; a repeat is the same rep_key (at-least-once)."""
    import random

    from device.commands.sample_log import synthetic_rep

    db = tmp_path / "station.db"
    rng = random.Random(1414)
    store = RepStore(db, outbox=True)
    session = store.start_session(time.time() - 600, "hinge", "camera")
    committed: list[int] = []

    def commit(n: int) -> None:
        for _ in range(n):
            index = len(committed) + 1
            committed.append(store.add_rep(session, synthetic_rep(rng, index, 3.0 * index, "clean"),
                                           wall_offset=time.time() - 600))

    commit(60)  # a backlog from before the station connected
    cfg = load_settings(None, {"data_dir": tmp_path, "mqtt.host": broker.host, "mqtt.port": broker.port,
                               "mqtt.station_id": "wall-1", "mqtt.keepalive_s": 2, "mqtt.reconnect_min_s": 0.05,
                               "mqtt.reconnect_max_s": 0.2}).mqtt
    outages = []
    with running_hub(broker, f"sqlite:///{tmp_path / 'hub.db'}"), Listener(broker, ["hinge/wall-1/rep"], name="hub") as hub:
        with BrokerLink(cfg, db, LiveState()) as link:
            for _ in range(4):
                commit(15)
                time.sleep(rng.uniform(0.02, 0.15))  # part of the backlog is in flight
                down = time.monotonic()
                broker.stop()
                commit(10)  # committed while the broker is away
                time.sleep(0.3)
                broker.start()
                outages.append(time.monotonic() - down)
            keys = lambda: [m.json()["rep_key"] for m in hub.on("/rep")]  # noqa: E731
            assert hub.wait_for(lambda h: len(set(keys())) >= len(committed), timeout=30)
            wait_until(lambda: store.outbox_size() == 0, timeout=30, what="the hub's confirmation of every rep")
        store.close()
        reps, _ = committed_keys(db)
    received = keys()
    assert len(reps) == len(committed) == 160
    assert sorted(first_seen(received)) == sorted(reps) and set(received) == set(reps)
    print(f"{len(reps)} reps committed, {len(received)} received, {len(received) - len(set(received))} duplicates, "
          f"{len(outages)} outages of {min(outages):.2f}-{max(outages):.2f} s; sent {link.sent}")


def test_a_tls_file_the_station_cannot_use_is_a_clear_config_error(tmp_path):
    garbage = tmp_path / "ca.crt"
    garbage.write_text("not a certificate\n")
    cfg = load_settings(None, {"data_dir": tmp_path, "mqtt.host": "127.0.0.1", "mqtt.station_id": "wall-1",
                               "mqtt.tls": True, "mqtt.ca_file": garbage}).mqtt
    with pytest.raises(ConfigError, match="ca_file"):
        BrokerLink(cfg, tmp_path / "station.db", LiveState())


def test_a_broker_that_accepts_and_never_answers_does_not_hold_up_coaching(clips_dir, clip_poses, settings, tmp_path):
    """A black hole where the broker should be (TCP accepted, no CONNACK, ever): the clip is coached
    and logged to the end, every rep waits in the outbox, and the station still stops."""
    import socket

    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(8)
    accepted = []
    threading.Thread(target=lambda: accepted.append(hole.accept()), daemon=True).start()
    down = type("Hole", (), {"host": "127.0.0.1", "port": hole.getsockname()[1]})()
    db = tmp_path / "station.db"
    seen = []
    try:
        rig = replay(mqtt_on(settings, down, db), clips_dir / TWO_REPS, clip_poses(TWO_REPS),
                     on_event=lambda e: seen.append(e) if isinstance(e, RepFinished) else None)
    finally:
        hole.close()
    assert accepted  # paho did connect, and then waited for an answer that never came
    assert not rig.link.running and rig.link.sent == 0
    with RepStore(db) as store:
        assert store.rep_count() == len(seen) == 2
        assert [r["kind"] for r in store.outbox_next(10)] == ["session", "rep", "rep", "session"]


def test_reps_kept_in_the_pending_file_reach_the_broker_once_sqlite_takes_them(broker, clips_dir, clip_poses, settings, tmp_path):
    """The disk under the rep log's free-space floor all along: reps wait in the pending file, go into
    SQLite (and the outbox, in the same transactions) when the station stops, and the link, stopped
    after the rep log, still sends them, in order."""
    db = tmp_path / "station.db"
    cfg = mqtt_on(settings, broker, db)
    cfg = cfg.model_copy(update={"store": cfg.store.model_copy(update={"min_free_mb": 10**9})})
    paused = []

    def look(rig):
        with RepStore(db) as store:
            paused.append((rig.replog.paused, store.rep_count()))

    with running_hub(broker, f"sqlite:///{tmp_path / 'hub.db'}"), Listener(broker, ["hinge/wall-1/rep"], name="hub") as hub:
        replay(cfg, clips_dir / TWO_REPS, clip_poses(TWO_REPS), keep_open=look)
        reps, _ = committed_keys(db)
        assert hub.wait_for(lambda h: len(h.on("/rep")) == len(reps))
    assert paused == [(True, 0)]  # nothing reached SQLite while the clip ran
    assert len(reps) == 2 and [m.json()["rep_key"] for m in hub.on("/rep")] == reps


def test_the_shipped_mosquitto_config_runs_with_its_acl_and_tls(tmp_path):
    """deploy/mosquitto/hinge.conf as a gym installs it, only its paths and ports moved into a
    temporary folder: mosquitto starts on it, refuses anonymous clients, and a station's
    credentials reach its own topics over TLS."""
    import getpass
    import shutil
    import socket

    from support.broker import free_port, make_certificates, mosquitto_or_skip

    binary = mosquitto_or_skip()
    tls = make_certificates(tmp_path / "certs")
    passwd, acl = tmp_path / "hinge.passwd", tmp_path / "hinge.acl"
    shutil.copy(REPO / "deploy/mosquitto/hinge.acl", acl)
    passwd.write_text("")
    for user, password in USERS.items():
        subprocess.run([shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd", "-b", str(passwd), user,
                        password], check=True, capture_output=True)
    plain, secure = free_port(), free_port()
    text = (REPO / "deploy/mosquitto/hinge.conf").read_text()
    for shipped, here in [("/etc/mosquitto/hinge.passwd", passwd), ("/etc/mosquitto/hinge.acl", acl),
                          ("/etc/mosquitto/certs/hinge-ca.crt", tls.cafile), ("/etc/mosquitto/certs/broker.crt", tls.certfile),
                          ("/etc/mosquitto/certs/broker.key", tls.keyfile), ("/var/lib/mosquitto/", f"{tmp_path}/"),
                          ("listener 1883", f"listener {plain} 127.0.0.1"), ("listener 8883", f"listener {secure} 127.0.0.1")]:
        assert shipped in text
        text = text.replace(shipped, str(here))
    conf = tmp_path / "hinge.conf"
    conf.write_text(text + f"user {getpass.getuser()}\n")  # as root it would become `mosquitto`, who cannot read tmp
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", secure), timeout=0.2).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read().decode()
                time.sleep(0.05)
        fake = type("Shipped", (), {"host": "127.0.0.1", "port": secure})()
        anonymous = type("Shipped", (), {"host": "127.0.0.1", "port": plain})()
        with pytest.raises(RuntimeError):  # no anonymous access on the plain listener
            Listener(anonymous, ["hinge/#"], name="anon", clean=True, timeout=1.0)
        with Listener(fake, ["hinge/#"], name="hub", username="hub", password=USERS["hub"], ca_file=str(tls.cafile),
                      clean=True) as hub:
            cfg = load_settings(None, {"data_dir": tmp_path, "mqtt.host": "127.0.0.1", "mqtt.port": secure,
                                       "mqtt.station_id": "wall-1", "mqtt.tls": True, "mqtt.ca_file": tls.cafile,
                                       "mqtt.username": "wall-1", "mqtt.password": USERS["wall-1"]}).mqtt
            db = tmp_path / "station.db"
            RepStore(db, outbox=True).close()
            with BrokerLink(cfg, db, LiveState()):
                assert hub.wait_for(lambda h: h.on("hinge/wall-1/state") and h.on("hinge/wall-1/availability"))
    finally:
        proc.terminate()
        proc.wait(10)


def test_the_state_message_speaks_the_coachs_words():
    """What the live loop knows (device/station/live.py) as the retained state's `state`, and the
    day's numbers beside it."""
    from device.contract.records import start_of_today
    from device.station.broker_link import coach_state, state_message
    from device.station.live import LiveSnapshot, StationState

    cases = [
        (LiveSnapshot(state=StationState.STOPPED), "nobody"),
        (LiveSnapshot(state=StationState.IDLE), "nobody"),
        (LiveSnapshot(state=StationState.TRACKING), "in_view"),
        (LiveSnapshot(state=StationState.TRACKING, phase="lowering"), "in_rep"),
        (LiveSnapshot(state=StationState.FAULT, phase="lowering"), "in_rep"),
        (LiveSnapshot(state=StationState.OUT_OF_FRAME), "in_view"),
        (LiveSnapshot(state=StationState.TURN_SIDEWAYS), "turn_sideways"),
        (LiveSnapshot(state=StationState.ERROR, error="camera: unplugged"), "camera_lost"),
    ]
    assert [coach_state(snap) for snap, _ in cases] == [want for _, want in cases]
    now = time.time()
    live = LiveSnapshot(state=StationState.FAULT, phase="rising", profile="dowel_hinge", session_reps=4,
                        last_fault="rounded_back", last_fault_at=now - 1, buzzer_enabled=False, athlete="Sam")
    message = state_message("wall-1", live, {"reps": 8, "clean": 6, "last_fault": "head_not_neutral"}, now)
    assert message.model_dump(exclude={"at"}, by_alias=True) == {
        "schema": 1, "station": "wall-1", "state": "in_rep", "drill": "dowel_hinge", "reps_this_session": 4,
        "reps_today": 8, "last_fault": "rounded_back", "clean_share_today": 0.75, "buzzer_on": False, "waiting": None,
        "athlete": "Sam"}  # who is up, for the floor's card
    yesterday = LiveSnapshot(last_fault="rounded_back", last_fault_at=start_of_today(now) - 60)
    fresh_day = state_message("wall-1", yesterday, {"reps": 0, "clean": 0, "last_fault": None}, now)
    assert fresh_day.last_fault is None and fresh_day.clean_share_today is None and fresh_day.reps_today == 0
