"""Helpers for the hub tests: a station's real rep log turned into the contract's messages, a
plain MQTT publisher standing in for a station's network side, and a hub running on a real broker.

    msgs = station_messages(rep_log_path, "wall-a")
    with Publisher(broker, "wall-a") as station:
        station.send(msgs)
"""
from __future__ import annotations

import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Optional

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from device.hub.floor import Floor
from device.hub.intake import Intake
from device.hub.service import Broker, Hub
from device.hub.store import HubStore
from device.station import topics
from device.station.store import RepStore

PREFIX = "hinge"


def station_messages(db: Path, station: str, store_uuid: Optional[str] = None) -> list[tuple[str, bytes]]:
    """Every session (ended) and rep of a station's rep log as (topic, payload) in commit order:
    what the station's outbox sends."""
    store_uuid = store_uuid or uuid.uuid4().hex
    names = topics.Topics(PREFIX, station)
    out: list[tuple[str, bytes]] = []
    with RepStore(db, readonly=True) as store:
        for s in reversed(store.list_sessions(limit=10_000)):
            skey = topics.session_key(station, store_uuid, s["id"])
            out.append((names.session, topics.SessionPayload(
                station=station, session_key=skey, started_at=s["started_at"], ended_at=None, drill=s["profile"],
                athlete=s["athlete"], source=s["source"]).to_json()))
            for r in store.session_reps(s["id"]):
                evidence = [{k: f.get(k) for k in ("name", "cue", "at", "value", "threshold", "margin", "noise")}
                            for f in r["faults"]]
                out.append((names.rep, topics.RepPayload(
                    station=station, rep_key=topics.rep_key(station, store_uuid, r["id"]), session_key=skey,
                    rep_index=r["rep_index"], started_at=r["started_at"], bottom_at=r["bottom_at"], ended_at=r["ended_at"],
                    movement=r["movement"], side=r["side"], lowering_s=r["lowering_s"], rising_s=r["rising_s"],
                    peak_hip_flexion_deg=r["peak_hip_flexion_deg"], knee_flexion_at_bottom_deg=r["knee_flexion_at_bottom_deg"],
                    trunk_angle_at_bottom_deg=r["trunk_angle_at_bottom_deg"], hip_shift_at_bottom=r["hip_shift_at_bottom"],
                    hinge_ratio=r["hinge_ratio"], lockout_reached=r["lockout_reached"], faults=evidence,
                    borderline=r["borderline"], trace=r["trace"]).to_json()))
            out.append((names.session, topics.SessionPayload(
                station=station, session_key=skey, started_at=s["started_at"], ended_at=s["ended_at"], drill=s["profile"],
                athlete=s["athlete"], source=s["source"]).to_json()))
    return out


def state_message(station: str, state: str = topics.IN_VIEW, drill: str = "hinge", reps: int = 0,
                  last_fault: Optional[str] = None, buzzer_on: bool = True) -> tuple[str, bytes]:
    payload = topics.StatePayload(station=station, at=time.time(), state=state, drill=drill, reps_this_session=reps,
                                  reps_today=reps, last_fault=last_fault, clean_share_today=None, buzzer_on=buzzer_on)
    return topics.Topics(PREFIX, station).state, payload.to_json()


class Publisher:
    """A bare MQTT client that publishes as a station would (QoS 1, retained state), waiting for
    the broker's acknowledgement of each message."""

    def __init__(self, broker, client_id: str):
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def send(self, messages: list[tuple[str, bytes]], retain: bool = False) -> None:
        infos = [self.client.publish(t, p, qos=1, retain=retain or t.endswith(("/state", "/availability")))
                 for t, p in messages]
        for info in infos:
            info.wait_for_publish(10)
            assert info.is_published()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> "Publisher":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@contextmanager
def running_hub(broker, url: str, allowed: Optional[set[str]] = None,
                client_id: str = "test-hub") -> Iterator[Hub]:
    store = HubStore(url)
    hub = Hub(store, Floor(), Broker(host=broker.host, port=broker.port, client_id=client_id), Intake(PREFIX, allowed))
    hub.start()
    try:
        assert hub.connected.wait(10), "the hub did not connect and subscribe"
        yield hub
    finally:
        hub.stop()
        store.close()


def wait_until(check: Callable[[], bool], timeout: float = 15.0, what: str = "condition") -> float:
    """Seconds it took `check` to hold; fails the test after `timeout`."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)
    return time.monotonic() - started
