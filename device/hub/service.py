"""The hub's subscriber: one MQTT client reading every station under the prefix, one writer thread
that validates, stores, confirms to each station what it stored, and then acknowledges.

Nothing lost: a station keeps a rep in its outbox until the hub confirms it (its key on the
station's `stored` topic, device/contract/topics.py), so a rep the broker could not keep for an
absent hub, or one the hub received and could not store, comes again from the station. The client
also keeps a persistent session (a fixed client id, clean_session off) and acknowledges a QoS 1
message only after the rep it carries is committed (paho's manual ack), so a hub that dies between
receiving and storing gets the message again from the broker. Its availability (retained, its last
will ``offline``) tells the stations when to wait and when to send again. Nothing doubled: the
store ignores a key it holds, and confirms it again. Never stopped by a message: a bad one is
counted under its reason, logged, acknowledged and dropped; a database that refuses writes is
retried with backoff while the unacknowledged messages wait at the broker (which then stops sending
more: that is the back-pressure).
"""
from __future__ import annotations

import logging
import queue
import ssl
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Optional

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from device.hub.floor import Floor
from device.hub.intake import ERROR, REFUSED, Intake, Sorted
from device.hub.store import HubStore, Stored
from device.contract import topics
from device.contract.records import BadRecordError, StorageError, start_of_today

log = logging.getLogger(__name__)

BATCH_MAX = 500  # messages stored per transaction at most
BATCH_WAIT_S = 0.02  # how long the writer gathers a batch once the first message is in
LOGGED_PER_REASON = 10  # drops logged one by one per reason; after that every 1000th


@dataclass(frozen=True)
class Broker:
    """Where the broker is and how to log in (the hub's side of [mqtt])."""

    host: str = "127.0.0.1"
    port: int = 1883
    username: Optional[str] = None
    password: Optional[str] = None
    tls: bool = False
    ca_file: Optional[str] = None  # default: the system's CAs
    cert_file: Optional[str] = None  # a client certificate, for brokers that require one
    key_file: Optional[str] = None
    client_id: str = "hinge-hub"
    keepalive_s: int = 30
    reconnect_min_s: float = 1.0  # first wait before reconnecting; doubles up to reconnect_max_s
    reconnect_max_s: float = 30.0


@dataclass
class Received:
    topic: str
    payload: bytes
    mid: int
    qos: int
    at: float


class Hub:
    """Subscribe, validate, store, acknowledge. `start()` connects in the background (a broker that
    is down is retried); `stop()` disconnects and stores what was received."""

    def __init__(self, store: HubStore, floor: Floor, broker: Broker, intake: Intake,
                 client_factory: Optional[Callable[[Broker], mqtt.Client]] = None):
        self.store = store
        self.floor = floor
        self.broker = broker
        self.intake = intake
        self._queue: "queue.Queue[Received]" = queue.Queue()
        self._stop = threading.Event()
        self._writer: Optional[threading.Thread] = None
        self.drops: Counter[str] = Counter()
        self.stored_reps = 0
        self.connected = threading.Event()  # connected and subscribed
        self._client = (client_factory or make_client)(broker)
        self._availability = topics.hub_availability(intake.prefix)
        self._client.will_set(self._availability, topics.OFFLINE, qos=1, retain=True)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe
        self._client.on_publish = self._on_publish
        self.refused_publishes = 0  # confirmations or availability the broker's ACL would not take

    # --- lifetime ---------------------------------------------------------------------------

    def start(self) -> "Hub":
        try:
            self.floor.stored_today(self.store.reps_per_station(start_of_today()))
        except StorageError as err:  # the floor fills as reps come; the writer retries the database
            log.warning("hub: cannot count today's reps yet: %s", err)
        self._writer = threading.Thread(target=self._write_loop, name="hub-writer", daemon=True)
        self._writer.start()
        # A persistent session (MQTT 5: no clean start, and a session that never expires): what the
        # stations publish while the hub is away waits for it at the broker.
        session = Properties(PacketTypes.CONNECT)
        session.SessionExpiryInterval = 0xFFFFFFFF
        self._client.connect_async(self.broker.host, self.broker.port, keepalive=self.broker.keepalive_s,
                                   clean_start=False, properties=session)
        self._client.loop_start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        if self.connected.is_set():  # a clean goodbye sends no last will: say it
            info = self._client.publish(self._availability, topics.OFFLINE, qos=1, retain=True)
            try:
                info.wait_for_publish(1.0)
            except (RuntimeError, ValueError):
                pass
        self._client.disconnect()
        self._client.loop_stop()
        self._stop.set()
        if self._writer is not None:
            self._writer.join(timeout)

    def __enter__(self) -> "Hub":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def alive(self) -> bool:
        return self._writer is not None and self._writer.is_alive()

    @property
    def backlog(self) -> int:
        return self._queue.qsize()

    # --- the client's thread ----------------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any = None) -> None:
        if reason.is_failure:
            log.error("broker %s:%s refused the hub: %s (check [mqtt] username/password and the broker's ACL)",
                      self.broker.host, self.broker.port, reason)
            return
        # A hub from before the `stored` topic subscribed to everything under the prefix, which its
        # persistent session still holds: it would read its own answers back.
        client.unsubscribe(f"{self.intake.prefix}/+/#")
        client.subscribe([(topic, 1) for topic in topics.hub_subscriptions(self.intake.prefix)])
        log.info("hub connected to %s:%s, reading %s", self.broker.host, self.broker.port,
                 ", ".join(topics.hub_subscriptions(self.intake.prefix)))

    def _on_subscribe(self, _client: Any, _userdata: Any, _mid: int, reasons: Any, _props: Any = None) -> None:
        if any(r.is_failure for r in reasons):
            log.error("the broker refused the hub's subscriptions to %s (%s): check its ACL",
                      ", ".join(topics.hub_subscriptions(self.intake.prefix)), reasons)
            return
        self._client.publish(self._availability, topics.ONLINE, qos=1, retain=True)
        self.connected.set()
        self.floor.set_broker(True)

    def _on_publish(self, _client: Any, _userdata: Any, _mid: int, reason: Any, _props: Any = None) -> None:
        if reason.is_failure:
            self.refused_publishes += 1
            if self.refused_publishes == 1 or self.refused_publishes % 1000 == 0:
                log.error("the broker refused what the hub publishes (%s, %d so far): the stations never hear that "
                          "their reps are stored and keep them; give user %r the ACL of deploy/mosquitto/hinge.acl "
                          "(write hinge/+/stored and hinge/hub/availability)", reason, self.refused_publishes,
                          self.broker.username)

    def _on_disconnect(self, _client: Any, _userdata: Any, _flags: Any, reason: Any, _props: Any = None) -> None:
        self.connected.clear()
        self.floor.set_broker(False)
        if not self._stop.is_set():
            log.warning("hub lost the broker (%s); reconnecting", reason)

    def _on_message(self, _client: Any, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        # Only queued here: the network loop must keep answering pings while the database works.
        self._queue.put(Received(message.topic, bytes(message.payload), message.mid, message.qos, time.time()))

    # --- the writer thread ------------------------------------------------------------------

    def _take_batch(self) -> list[Received]:
        try:
            first = self._queue.get(timeout=0.2)
        except queue.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + BATCH_WAIT_S
        while len(batch) < BATCH_MAX:
            try:
                batch.append(self._queue.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                break
        return batch

    def _write_loop(self) -> None:
        while not (self._stop.is_set() and self._queue.empty()):
            batch = self._take_batch()
            self.floor.set_backlog(self._queue.qsize())
            if not batch:
                continue
            try:
                self.handle(batch)
            except Exception:  # never let one batch end the hub; its messages stay unacknowledged
                log.exception("hub: storing a batch of %d messages failed; they stay at the broker", len(batch))

    def handle(self, batch: list[Received]) -> None:
        """Validate, store (retrying while the database refuses), update the floor, acknowledge."""
        sorted_ = self.intake.sort([(m.topic, m.payload) for m in batch])
        for reason, detail in sorted_.dropped:
            self._drop(reason, detail)
        held: list[Stored] = []
        self._store(sorted_, batch[-1].at, held)
        self._confirm(held)
        for station, online in sorted_.availability:
            self.floor.set_availability(station, online)
        for station, state in sorted_.states:
            self.floor.set_state(station, state)
        for m in batch:
            if m.qos > 0:
                self._client.ack(m.mid, m.qos)

    def _confirm(self, held: list[Stored]) -> None:
        """Tell each station which of its reps and sessions are in the database now (committed), so
        it lets them go from its outbox; also those that were there already (a second delivery)."""
        reps: dict[str, list[str]] = {}
        sessions: dict[str, list[topics.StoredSession]] = {}
        for stored in held:
            for station, key in stored.reps_held:
                reps.setdefault(station, []).append(key)
            for station, key, ended_at in stored.sessions_held:
                sessions.setdefault(station, []).append(topics.StoredSession(session_key=key, ended_at=ended_at))
        for station in sorted(set(reps) | set(sessions)):
            these, those = reps.get(station, []), sessions.get(station, [])
            for i in range(0, max(len(these), len(those)), topics.MAX_STORED_KEYS):
                answer = topics.StoredPayload(station=station, reps=these[i:i + topics.MAX_STORED_KEYS],
                                              sessions=those[i:i + topics.MAX_STORED_KEYS])
                self._client.publish(topics.Topics(self.intake.prefix, station).stored, answer.to_json(), qos=1)

    def _store(self, sorted_: Sorted, received_at: float, held: list[Stored]) -> None:
        """Store a batch in one transaction. Whatever one message's rows make the database or its
        driver raise (a constraint, a value it cannot bind) drops that message alone: the batch is
        tried again one message at a time. Only a database that refuses every write (StorageError:
        a full disk, PostgreSQL away) is waited for, with backoff, the messages unacknowledged."""
        if not sorted_.sessions and not sorted_.reps:
            return
        delay = 0.5
        while True:
            try:
                stored = self.store.ingest(sorted_.sessions, sorted_.reps, received_at)
                break
            except StorageError as err:
                if isinstance(err, BadRecordError):
                    return self._one_by_one(sorted_, received_at, REFUSED, err, held)
                self.floor.set_write_error(str(err))
                if self._stop.is_set():
                    raise
                log.error("hub: %s; retrying in %.0f s (the broker keeps the messages)", err, delay)
                self._stop.wait(delay)
                delay = min(delay * 2, 30.0)
            except Exception as err:  # a driver error about one message's values
                return self._one_by_one(sorted_, received_at, ERROR, err, held)
        held.append(stored)
        self.floor.set_write_error("")
        self.stored_reps += len(stored.new_reps)
        for station, rep_id, ended_at, started_at in stored.new_reps:
            self.floor.rep_stored(station, rep_id, ended_at, started_at)

    def _one_by_one(self, sorted_: Sorted, received_at: float, reason: str, err: Exception,
                    held: list[Stored]) -> None:
        messages = [Sorted(sessions=[s]) for s in sorted_.sessions] + [Sorted(reps=[r]) for r in sorted_.reps]
        if len(messages) > 1:
            for one in messages:
                self._store(one, received_at, held)
            return
        record = (sorted_.sessions or sorted_.reps)[0]
        key = record.get("rep_key") or record.get("session_key")
        self._drop(reason, f"{key}: {type(err).__name__}: {err}")

    def _drop(self, reason: str, detail: str) -> None:
        self.drops[reason] += 1
        self.floor.dropped(reason)
        n = self.drops[reason]
        if n <= LOGGED_PER_REASON or n % 1000 == 0:
            log.warning("hub dropped a message (%s, %d so far): %s", reason, n, detail[:300])


def make_client(broker: Broker) -> mqtt.Client:
    """The hub's paho client: MQTT 5 (so the broker says when its ACL refuses what the hub publishes),
    a persistent session under a fixed id (Hub.start), manual acks."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=broker.client_id, protocol=mqtt.MQTTv5,
                         manual_ack=True)
    if broker.username:
        client.username_pw_set(broker.username, broker.password)
    if broker.tls:
        client.tls_set(ca_certs=broker.ca_file, certfile=broker.cert_file, keyfile=broker.key_file,
                       cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT)
    # paho annotates the delays int, but takes float seconds (it only waits on them).
    client.reconnect_delay_set(broker.reconnect_min_s, broker.reconnect_max_s)  # type: ignore[arg-type]
    return client
