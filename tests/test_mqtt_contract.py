"""The MQTT contract (device/contract/topics.py) and the test broker (tests/support/broker.py):
topics, payload validation, and a real mosquitto that keeps a persistent session over a restart."""
from __future__ import annotations

import json
import queue
import threading
import typing

import paho.mqtt.client as mqtt
import pytest

from device.contract import topics as t
from support.broker import Mosquitto

UUID = "0123456789abcdef0123456789abcdef"


def rep_payload(**changes) -> dict:
    data = {
        "schema": 1, "station": "wall-1", "rep_key": t.rep_key("wall-1", UUID, 7),
        "session_key": t.session_key("wall-1", UUID, 2), "rep_index": 3, "started_at": 1_700_000_000.0,
        "bottom_at": 1_700_000_001.2, "ended_at": 1_700_000_002.5, "movement": "hinge", "side": "left",
        "lowering_s": 1.2, "rising_s": 1.3, "peak_hip_flexion_deg": 80.0, "knee_flexion_at_bottom_deg": 20.0,
        "trunk_angle_at_bottom_deg": 60.0, "hip_shift_at_bottom": 0.3, "hinge_ratio": 4.0, "lockout_reached": True,
        "faults": [{"name": "rounded_back", "cue": "long spine, chest proud", "at": 1_700_000_001.0, "value": 30.0,
                    "threshold": 20.0, "margin": 10.0, "noise": 2.0}],
        "borderline": [], "trace": [[0.0, 5.0, 2.0], [0.5, None, None]],
    }
    data.update(changes)
    return data


def test_topics_of_a_station():
    topics = t.Topics("gym/hinge", "wall-1")
    assert topics.rep == "gym/hinge/wall-1/rep"
    assert topics.buzzer_set == "gym/hinge/wall-1/buzzer/set"
    assert topics.discovery("switch", "buzzer") == "homeassistant/switch/wall-1/buzzer/config"
    assert t.parse_topic("gym/hinge", topics.buzzer_set) == ("wall-1", "buzzer/set")
    assert t.parse_topic("gym/hinge", "gym/hinge/wall-1/other") is None
    assert t.parse_topic("gym/hinge", "gym/hinge/Wall+1/rep") is None
    with pytest.raises(ValueError):
        t.Topics("hinge", "Wall 1")
    with pytest.raises(ValueError):
        t.Topics("hinge/#", "wall-1")
    # A trailing newline is no id and no prefix level (a `$` alone would let it through).
    assert t.is_station_id("wall-1") and not t.is_station_id("wall-1\n")
    with pytest.raises(ValueError):
        t.Topics("hinge", "wall-1\n")
    with pytest.raises(ValueError):
        t.Topics("hinge\n", "wall-1")


def test_a_rep_round_trips_and_hostile_payloads_are_refused():
    topic = "hinge/wall-1/rep"
    station, kind, rep = t.decode("hinge", topic, json.dumps(rep_payload()).encode())
    assert (station, kind, rep.rep_key) == ("wall-1", "rep", "wall-1:" + UUID + ":7")
    assert json.loads(rep.to_json())["schema"] == 1
    cases = {
        "too_big": b"{" + b" " * t.MAX_PAYLOAD_BYTES + b"}",
        "not_json": b"\xff\xfe rep",
        "unknown_schema": json.dumps(rep_payload(schema=2)).encode(),
        "wrong_station": json.dumps(rep_payload(station="wall-2")).encode(),
        "invalid": json.dumps(rep_payload(rep_key="wall-1:x:1")).encode(),
    }
    for reason, body in cases.items():
        with pytest.raises(t.PayloadError) as err:
            t.decode("hinge", topic, body)
        assert err.value.reason == reason
    with pytest.raises(t.PayloadError):  # an unknown field is refused, not ignored
        t.decode("hinge", topic, json.dumps(rep_payload(extra=1)).encode())
    with pytest.raises(t.PayloadError):  # NaN is not JSON
        t.decode("hinge", topic, json.dumps(rep_payload(hinge_ratio=float("nan"))).encode())
    assert t.buzzer_command(b"ON") is True and t.buzzer_command(b"OFF") is False
    assert t.buzzer_command(b"on") is None and t.buzzer_command(b'{"state":"ON"}') is None


def test_a_drill_command_names_a_drill_or_nothing():
    """A drill command is a drill's id as plain UTF-8 text; anything that cannot be an id (a
    drill's file name) is nothing, before the station asks whether it has that drill."""
    topics = t.Topics("hinge", "wall-1")
    assert topics.drill_set == "hinge/wall-1/drill/set"
    assert t.parse_topic("hinge", topics.drill_set) == ("wall-1", "drill/set")
    assert t.drill_command(b"dowel_hinge") == "dowel_hinge"
    assert t.drill_command(b"d" * t.MAX_DRILL_ID) == "d" * t.MAX_DRILL_ID  # the longest id fits...
    refused = [b"d" * (t.MAX_DRILL_ID + 1),  # ...one byte more does not
               b"", b"\xff\xfe dowel", b"dowel_hinge\n", b" dowel_hinge", b"dowel\x00hinge", b"O" * 70_000]
    assert [t.drill_command(p) for p in refused] == [None] * len(refused)
    assert t.decode("hinge", topics.drill_set, b"deadlift") == ("wall-1", "drill/set", "deadlift")
    with pytest.raises(t.PayloadError) as err:
        t.decode("hinge", topics.drill_set, b"\xff")
    assert err.value.reason == "invalid"


def _ints(model, where: str = "") -> list[tuple[str, bool]]:
    """(dotted name, has an upper bound) of every integer in a payload model and the records in it,
    however deep (Optional, Annotated, lists, nested models)."""
    out = []
    for name, field in model.model_fields.items():
        out += _walk(field.annotation, list(field.metadata), f"{where or model.__name__}.{name}")
    return out


def _walk(kind, metadata: list, where: str) -> list[tuple[str, bool]]:
    import annotated_types
    from pydantic import BaseModel
    from pydantic.fields import FieldInfo

    if typing.get_origin(kind) is typing.Annotated:
        base, *more = typing.get_args(kind)
        return _walk(base, metadata + [x for m in more for x in (m.metadata if isinstance(m, FieldInfo) else [m])], where)
    if kind is int:
        return [(where, any(isinstance(m, (annotated_types.Le, annotated_types.Lt)) for m in metadata))]
    if isinstance(kind, type) and issubclass(kind, BaseModel):
        return _ints(kind, where)
    union = typing.get_origin(kind) is typing.Union  # Optional[x]: the field's bounds are x's
    return [found for arg in typing.get_args(kind) for found in _walk(arg, metadata if union else [], where)]


def test_every_integer_in_the_contract_is_bounded():
    """An integer past what SQL keeps (SQLite's driver raises OverflowError past 2**63) must be refused
    where it comes in: every int field of every payload has an upper bound, and one past it is dropped."""
    ints = [found for model in t.MODELS.values() for found in _ints(model)]
    assert {name for name, _ in ints} >= {"RepPayload.rep_index", "StatePayload.reps_today", "StatePayload.waiting"}
    assert [name for name, bounded in ints if not bounded] == []
    topic = "hinge/wall-1/rep"
    for huge in (dict(rep_index=10**20), dict(rep_key=t.rep_key("wall-1", UUID, 10**20)),
                 dict(started_at=1e300), dict(session_key="wall-1:" + UUID + ":" + "9" * 25)):
        with pytest.raises(t.PayloadError) as err:
            t.decode("hinge", topic, json.dumps(rep_payload(**huge)).encode())
        assert err.value.reason == "invalid", huge
    assert t.decode("hinge", topic, json.dumps(rep_payload(rep_index=20_000)).encode())[2].rep_index == 20_000


def test_the_shipped_broker_keeps_more_than_a_thousand_messages_for_an_absent_reader(broker):
    """Mosquitto's default keeps 1,000 messages for a client that is away and drops the rest; the
    project's broker config (which this test broker runs) keeps more, for a hub that is away a while.
    1,500 published while the reader is away: all 1,500 arrive when it is back."""
    received: "queue.Queue[bytes]" = queue.Queue()
    reader = _client(broker, "absent-hub", clean=False)
    reader.on_message = lambda c, u, m: received.put(m.payload)
    subscribed = threading.Event()
    reader.on_subscribe = lambda *a: subscribed.set()
    reader.connect(broker.host, broker.port)
    reader.loop_start()
    reader.subscribe("hinge/+/rep", qos=1)
    assert subscribed.wait(5)
    reader.disconnect()
    reader.loop_stop()
    writer = _client(broker, "busy-station")
    writer.connect(broker.host, broker.port)
    writer.loop_start()
    infos = [writer.publish("hinge/wall-1/rep", str(i).encode(), qos=1) for i in range(1500)]
    for info in infos:
        info.wait_for_publish(10)
    writer.disconnect()
    writer.loop_stop()
    back = _client(broker, "absent-hub", clean=False)
    back.on_message = lambda c, u, m: received.put(m.payload)
    back.connect(broker.host, broker.port)
    back.loop_start()
    try:
        got = set()
        while len(got) < 1500:
            try:
                got.add(received.get(timeout=5))
            except queue.Empty:
                break
    finally:
        back.disconnect()
        back.loop_stop()
    assert len(got) == 1500


def _client(broker, name: str, clean: bool = True) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=name, clean_session=clean)
    # paho annotates the delays int, but takes float seconds (it only waits on them).
    client.reconnect_delay_set(0.05, 0.2)  # type: ignore[arg-type]
    return client


def test_the_broker_keeps_a_persistent_session_across_a_restart(broker):
    """What the outage tests rest on: a subscriber with a persistent session gets what was published
    while it was away, also when the broker restarted in between."""
    got: "queue.Queue[bytes]" = queue.Queue()
    subscribed = threading.Event()
    sub = _client(broker, "reader", clean=False)
    sub.on_connect = lambda c, u, f, rc, p: c.subscribe("hinge/+/rep", qos=1)
    sub.on_subscribe = lambda *a: subscribed.set()
    sub.on_message = lambda c, u, m: got.put(m.payload)
    sub.connect(broker.host, broker.port, keepalive=5)
    sub.loop_start()
    assert subscribed.wait(5)
    sub.disconnect()
    sub.loop_stop()
    broker.restart()
    pub = _client(broker, "writer")
    pub.connect(broker.host, broker.port)
    pub.loop_start()
    pub.publish("hinge/wall-1/rep", b"one", qos=1).wait_for_publish(5)
    pub.disconnect()
    pub.loop_stop()
    broker.restart()  # the queued message survives in the broker's persistence
    sub.connect(broker.host, broker.port, keepalive=5)
    sub.loop_start()
    try:
        assert got.get(timeout=5) == b"one"
    finally:
        sub.disconnect()
        sub.loop_stop()


def test_a_broker_with_a_password_file_and_acl_refuses_anonymous_clients(tmp_path):
    acl = "user reader\ntopic read hinge/#\n\npattern write hinge/%u/#\n"
    with Mosquitto(tmp_path, users={"wall-1": "pw1", "reader": "pw2"}, acl=acl) as running:
        refused = _client(running, "anon")
        result: "queue.Queue" = queue.Queue()
        refused.on_connect = lambda c, u, f, rc, p: result.put(rc)
        refused.connect(running.host, running.port)
        refused.loop_start()
        try:
            assert result.get(timeout=5).is_failure  # no anonymous clients
        finally:
            refused.loop_stop()
