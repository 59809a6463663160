"""Helpers for the hub tests: a station's real rep log turned into the contract's messages, a
plain MQTT publisher standing in for a station's network side, and a hub running on a real broker.

    msgs = station_messages(rep_log_path, "wall-a")
    with Publisher(broker, "wall-a") as station:
        station.send(msgs)
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Optional

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from device.hub.floor import Floor
from device.hub.intake import Intake
from device.hub.service import Broker, Hub
from device.hub.store import HubStore
from device.contract import topics
from device.station.broker_link import rep_message, session_message
from device.station.store import RepStore

PREFIX = "hinge"


def station_messages(db: Path, station: str) -> list[tuple[str, bytes]]:
    """Every session and rep of a station's rep log as (topic, payload), made by the station's own
    converters (device/station/broker_link.py): what its outbox sends, here to send again."""
    names = topics.Topics(PREFIX, station)
    out: list[tuple[str, bytes]] = []
    with RepStore(db) as store:
        store_uuid = store.store_uuid
        for s in reversed(store.list_sessions(limit=10_000)):
            out.append((names.session, session_message(station, store_uuid, s).to_json()))
            out += [(names.rep, rep_message(station, store_uuid, r).to_json()) for r in store.session_reps(s["id"])]
    return out


def state_message(station: str, state: str = topics.IN_VIEW, drill: str = "hinge", reps: int = 0,
                  last_fault: Optional[str] = None, buzzer_on: bool = True, athlete: Optional[str] = None) -> tuple[str, bytes]:
    payload = topics.StatePayload(station=station, at=time.time(), state=state, drill=drill, reps_this_session=reps,
                                  reps_today=reps, last_fault=last_fault, clean_share_today=None, buzzer_on=buzzer_on,
                                  athlete=athlete)
    return topics.Topics(PREFIX, station).state, payload.to_json()


class Publisher:
    """A bare MQTT client that publishes as a station would (QoS 1, retained state), waiting for
    the broker's acknowledgement of each message."""

    def __init__(self, broker, client_id: str, username: Optional[str] = None, password: Optional[str] = None):
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
        if username:
            self.client.username_pw_set(username, password)
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
def running_hub(broker, url: str, allowed: Optional[set[str]] = None, client_id: str = "test-hub",
                username: Optional[str] = None, password: Optional[str] = None) -> Iterator[Hub]:
    """The real hub (device/hub/service.py) on `broker`, storing into `url`: it confirms to each
    station what it stored, so a station's outbox empties only while one runs."""
    store = HubStore(url)
    hub = Hub(store, Floor(), Broker(host=broker.host, port=broker.port, client_id=client_id, username=username,
                                     password=password, keepalive_s=5, reconnect_min_s=0.05, reconnect_max_s=0.5),
              Intake(PREFIX, allowed))
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
