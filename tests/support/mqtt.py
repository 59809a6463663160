"""A listener on the test broker that records what it receives, as the hub or Home Assistant would
see it: `Listener(broker, ["hinge/#"])` connects, subscribes, and collects every message in order."""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

import paho.mqtt.client as mqtt

from support.broker import Mosquitto


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool
    qos: int = 1  # as delivered: the lower of the publisher's and the subscription's

    def json(self) -> Any:
        return json.loads(self.payload)


class Listener:
    """A paho subscriber with a persistent session (clean_session off), so what is published while
    the broker restarts reaches it afterwards, as it reaches a hub."""

    def __init__(self, broker: Mosquitto, patterns: list[str], name: str = "listener",
                 username: Optional[str] = None, password: Optional[str] = None, clean: bool = False,
                 ca_file: Optional[str] = None, timeout: float = 5.0):
        self.messages: list[Received] = []
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        self.patterns = patterns
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=name, clean_session=clean)
        if username:
            self.client.username_pw_set(username, password)
        if ca_file:
            self.client.tls_set(ca_certs=ca_file)
        # paho annotates the delays int, but takes float seconds (it only waits on them).
        self.client.reconnect_delay_set(0.05, 0.2)  # type: ignore[arg-type]
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port, keepalive=5)
        self.client.loop_start()
        if not self._subscribed.wait(timeout):
            self.close()
            raise RuntimeError("the listener could not subscribe")

    def _on_connect(self, client, userdata, flags, reason, properties) -> None:
        if not reason.is_failure:
            client.subscribe([(p, 1) for p in self.patterns])

    def _on_message(self, client, userdata, message) -> None:
        with self._cond:
            self.messages.append(Received(message.topic, bytes(message.payload), bool(message.retain), message.qos))
            self._cond.notify_all()

    def on(self, suffix: str) -> list[Received]:
        with self._cond:
            return [m for m in self.messages if m.topic.endswith(suffix)]

    def wait_for(self, done: Callable[["Listener"], bool], timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not done(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.1))
        return True

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> "Listener":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
