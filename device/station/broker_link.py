"""The station's link to the gym's MQTT broker: committed reps and sessions from the durable outbox,
the live state, alerts and Home Assistant discovery out; the buzzer switch, the drill select and
the hub's confirmations in. Topics and payloads are in device/contract/topics.py.

Everything here runs beside the live loop, never in it: the loop's only part is the outbox row it
writes in the same SQLite transaction as the rep (device/station/store.py). A sender thread reads the
outbox in commit order and publishes its oldest WINDOW rows; a row leaves the outbox only when the
hub says it has stored it (its key on this station's `stored` topic), not when the broker took it:
a broker keeps only so many messages for a hub that is away, and a hub may take a message and fail
to store it. What the hub has not confirmed is sent again, with backoff (RESEND_FIRST_S doubling up
to RESEND_MAX_S), but never while the hub's availability says it is away; soon after the hub says
it is back (HUB_BACK_GRACE_S, time for it to store what the broker kept for it) all of it goes again.
So a broker outage, a hub outage or a flapping network delays reps but never loses them; a rep may
reach the hub more than once, under the same rep_key, and is stored once. A station that stops with
rows in the outbox sends them at its next start.

State and alerts are best effort: QoS 0 while connected, not queued in the outbox nor by the broker
for a reader that is away (where they would crowd out reps). The state message is retained and
republished on every reconnect, so what a reader misses during an outage is replaced by the current
state anyway; an alert is about a fault as it happens and is worthless an hour later, and every
fault that buzzed is in its rep, which is durable.
"""
from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from device.analysis.vocabulary import Fault
from device.config import MqttSettings
from device.contract import topics as t
from device.contract.records import SESSION_FIELDS, StorageError, rep_fields, start_of_today
from device.errors import ConfigError, StationError
from device.station.live import LiveSnapshot, LiveState, StationControls, StationState, UnknownDrill, change_drill
from device.station.store import RepStore

log = logging.getLogger(__name__)

WINDOW = 100  # outbox rows sent and not yet confirmed by the hub, at most (the oldest first)
RESEND_FIRST_S = 30.0  # a row the hub has not confirmed is sent again after this, then after twice as long...
RESEND_MAX_S = 600.0  # ...up to this
HUB_BACK_GRACE_S = 5.0  # after the hub says it is (back) online, what it has not confirmed goes again after this
POLL_S = 0.2  # how often the sender looks at the outbox and the live state when idle
STATE_MIN_INTERVAL_S = 0.5  # the state message at most this often (fps alone never sends one)
DRAIN_AT_STOP_S = 3.0  # at stop, how long to keep sending what the outbox still holds
COMMANDS_PER_S = 2.0  # commands of one kind obeyed at most this often; a flood is ignored, not queued
IGNORED_SAID_S = 10.0  # an ignored command is said in the log at warning level at most this often (the rest: debug)
ALERT_FRESH_S = 5.0  # an alert older than this (raised while the broker was away) is not sent


def mqtt_client(cfg: MqttSettings, topics: t.Topics, client_id: str = "") -> mqtt.Client:
    """A paho client for this station, not yet connected: its credentials, TLS (the broker's
    certificate always verified), reconnect backoff, and the last will that marks it offline."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or f"hinge-station-{topics.station}",
                         protocol=mqtt.MQTTv5)
    if cfg.username is not None:
        client.username_pw_set(cfg.username, cfg.secret())
    if cfg.tls:
        client.tls_set(ca_certs=str(cfg.ca_file) if cfg.ca_file else None,
                       certfile=str(cfg.cert_file) if cfg.cert_file else None,
                       keyfile=str(cfg.key_file) if cfg.key_file else None)
    client.will_set(topics.availability, t.OFFLINE, qos=1, retain=True)
    # paho annotates the delays int, but takes float seconds (it only waits on them).
    client.reconnect_delay_set(cfg.reconnect_min_s, cfg.reconnect_max_s)  # type: ignore[arg-type]
    client.max_inflight_messages_set(WINDOW + 10)
    return client


def probe_broker(cfg: MqttSettings, timeout: float = 5.0) -> str:
    """Connect once with the station's settings and say what went wrong ('' when the broker took
    them). Under its own client id and without a will: the running station's connection and its
    availability are left alone."""
    if cfg.host is None:
        return "no broker to try: mqtt.host is not set"
    assert cfg.station_id is not None
    client = mqtt_client(cfg, t.Topics(cfg.topic_prefix, cfg.station_id), client_id=f"hinge-doctor-{cfg.station_id}")
    client.will_clear()
    answer: dict[str, Any] = {}
    done = threading.Event()

    def on_connect(client, userdata, flags, reason, properties) -> None:
        answer["reason"] = reason
        done.set()

    client.on_connect = on_connect
    try:
        client.connect(cfg.host, cfg.broker_port, keepalive=max(cfg.keepalive_s, 5))
    except (OSError, ValueError) as err:
        return f"cannot connect: {err}"
    client.loop_start()
    try:
        if not done.wait(timeout):
            return f"no answer from the broker within {timeout:g} s"
        reason = answer["reason"]
        return f"the broker refused: {reason}" if reason.is_failure else ""
    finally:
        client.disconnect()
        client.loop_stop()


def retire_station(cfg: MqttSettings, timeout: float = 10.0) -> int:
    """Publish `retire_messages` with the station's own credentials (the broker's ACL lets a station
    write only its own topics) and wait until the broker took each; returns how many. Raises
    StationError when the broker cannot be reached or refuses."""
    if cfg.host is None or cfg.station_id is None:
        raise ConfigError("nothing to retire from: mqtt.host and mqtt.station_id are not set")
    topics = t.Topics(cfg.topic_prefix, cfg.station_id)
    problem = probe_broker(cfg, timeout)
    if problem:
        raise StationError(f"mqtt: {problem}")
    client = mqtt_client(cfg, topics, client_id=f"hinge-retire-{cfg.station_id}")
    client.will_clear()  # leaving on purpose: no 'offline' left behind
    client.connect(cfg.host, cfg.broker_port, keepalive=max(cfg.keepalive_s, 5))
    client.loop_start()
    try:
        infos = [client.publish(topic, payload, qos=1, retain=True) for topic, payload in retire_messages(cfg, topics)]
        for info in infos:
            info.wait_for_publish(timeout)
            if not info.is_published():
                raise StationError(f"mqtt: the broker did not take the retirement within {timeout:g} s")
        return len(infos)
    finally:
        client.disconnect()
        client.loop_stop()


# --- payloads ----------------------------------------------------------------------------------


def rep_message(station: str, store_uuid: str, rep: dict[str, Any]) -> t.RepPayload:
    """A committed rep (a row of RepStore.get_rep) as the contract's rep payload: the record's every
    field by name (device/contract/records.py), and its keys."""
    return t.RepPayload(station=station, rep_key=t.rep_key(station, store_uuid, rep["id"]),
                        session_key=t.session_key(station, store_uuid, rep["session_id"]), **rep_fields(rep))


def session_message(station: str, store_uuid: str, session: dict[str, Any]) -> t.SessionPayload:
    fields = {name: session[name] for name in SESSION_FIELDS}
    fields["source"] = (fields["source"] or "")[:200]
    return t.SessionPayload(station=station, session_key=t.session_key(station, store_uuid, session["id"]), **fields)


def coach_state(snap: LiveSnapshot) -> str:
    """The live loop's state in the contract's words."""
    if snap.state == StationState.ERROR:
        return t.CAMERA_LOST
    if snap.state == StationState.TURN_SIDEWAYS:
        return t.TURN_SIDEWAYS
    if snap.state in (StationState.TRACKING, StationState.FAULT, StationState.OUT_OF_FRAME):
        return t.IN_REP if snap.phase else t.IN_VIEW
    return t.NOBODY


def state_message(station: str, snap: LiveSnapshot, day: dict[str, Any], now: float,
                  waiting: Optional[int] = None) -> t.StatePayload:
    recent_fault = snap.last_fault if snap.last_fault_at is not None and snap.last_fault_at >= start_of_today(now) else None
    return t.StatePayload(
        station=station, at=now, state=coach_state(snap), drill=snap.profile, reps_this_session=snap.session_reps,
        reps_today=day["reps"], last_fault=recent_fault or day["last_fault"],
        clean_share_today=round(day["clean"] / day["reps"], 4) if day["reps"] else None, buzzer_on=snap.buzzer_enabled,
        waiting=waiting, athlete=snap.athlete or None,
    )


# A rep's verdict as a Home Assistant event type, worked out from the rep message itself the way
# device/analysis/vocabulary.py's rep_verdict does (a rep without `judged` is from a station that judged
# every rep); tests/test_mqtt_station.py renders it on each kind of rep against rep_verdict.
REP_EVENT_TYPES = ("not_judged", "faults", "borderline", "clean")
REP_EVENT_TEMPLATE = (
    "{% set verdict = 'faults' if value_json.faults else 'not_judged' "
    "if value_json.judged is defined and not value_json.judged "
    "else 'borderline' if value_json.borderline or value_json.movement == 'squat' else 'clean' %}"
    "{{ {'event_type': verdict, 'rep_index': value_json.rep_index, "
    "'faults': value_json.faults | map(attribute='name') | list} | tojson }}")
FAULT_EVENT_TEMPLATE = "{{ {'event_type': value_json.fault, 'cue': value_json.cue} | tojson }}"


def drill_options(drills: Mapping[str, str]) -> dict[str, str]:
    """Drill id -> the option Home Assistant's drill select shows: the drill's title, or "title (id)"
    where two drills share a title (an option must name one drill)."""
    shared = Counter(drills.values())
    return {drill: title if shared[title] == 1 else f"{title} ({drill})" for drill, title in drills.items()}


def drill_templates(drills: Mapping[str, str]) -> tuple[str, str]:
    """The drill select's value_template (the state's drill id -> its option) and command_template
    (the option chosen -> the drill id the station's command topic takes): Jinja dict literals, as
    JSON writes them. A drill the station runs that is not offered shows as its id."""
    options = drill_options(drills)
    ids = {option: drill for drill, option in options.items()}
    return ("{{ " + json.dumps(options, ensure_ascii=False) + ".get(value_json.drill, value_json.drill) }}",
            "{{ " + json.dumps(ids, ensure_ascii=False) + ".get(value, value) }}")


def discovery_messages(cfg: MqttSettings, topics: t.Topics, version: str = "", page_url: Optional[str] = None,
                       drills: Optional[Mapping[str, str]] = None) -> list[tuple[str, Optional[dict[str, Any]]]]:
    """Home Assistant MQTT discovery: one device per station (its page as `configuration_url`) with
    its state, who is up, drill, reps this session and today, last fault, clean-rep percentage,
    online/offline and the reps waiting for the hub (diagnostic), the buzzer switch, the drill
    select (configuration: `drills`, id -> title, in the order offered; without them its config is
    None, to be emptied), and two event entities: each fault as it buzzes and each rep with its
    verdict, for automations. Full key names (no abbreviations); tests/test_mqtt_station.py pins
    them against Home Assistant's documented keys."""
    sid = topics.station
    prefix = cfg.discovery_prefix
    device = {"identifiers": [f"hinge_station_{sid}"], "name": f"Hinge station {sid}", "manufacturer": "Hinge Station",
              "model": "hip-hinge coaching station"}
    if version:
        device["sw_version"] = version
    if page_url:
        device["configuration_url"] = page_url
    available = {"availability_topic": topics.availability, "payload_available": t.ONLINE,
                 "payload_not_available": t.OFFLINE}

    def entity(object_id: str, name: str, unique: str = "", **keys: Any) -> dict[str, Any]:
        return {"name": name, "unique_id": f"hinge_{sid}_{unique or object_id}", "device": device, "qos": 1, **keys}

    def state_value(expr: str) -> dict[str, Any]:
        return {"state_topic": topics.state, "value_template": "{{ " + expr + " }}"}

    def topic(component: str, object_id: str) -> str:
        return f"{prefix}/{component}/{sid}/{object_id}/config"

    choose: Optional[dict[str, Any]] = None
    if drills:
        shows, sends = drill_templates(drills)
        # The drill as the page changes it (a new session starts); its state is the retained state's drill.
        choose = entity("drill", "Drill", unique="drill_select", command_topic=topics.drill_set, command_template=sends,
                        state_topic=topics.state, value_template=shows, options=list(drill_options(drills).values()),
                        **available, entity_category="config", optimistic=False, retain=False,
                        icon="mdi:format-list-numbered")
    messages: list[tuple[str, Optional[dict[str, Any]]]] = [
        (topic("sensor", "state"), entity("state", "State", **state_value("value_json.state"), **available,
                                          device_class="enum", options=list(t.STATES),
                                          json_attributes_topic=topics.state, icon="mdi:human-handsdown")),
        (topic("sensor", "athlete"), entity("athlete", "Who is up",
                                            **state_value("value_json.athlete if value_json.athlete else 'nobody named'"),
                                            **available, icon="mdi:account")),
        (topic("sensor", "drill"), entity("drill", "Drill", **state_value("value_json.drill"), **available,
                                          icon="mdi:weight-lifter")),
        (topic("sensor", "reps_this_session"), entity(
            "reps_this_session", "Reps this session", **state_value("value_json.reps_this_session"), **available,
            unit_of_measurement="reps", state_class="total_increasing", icon="mdi:counter")),
        (topic("sensor", "reps_today"), entity("reps_today", "Reps today", **state_value("value_json.reps_today"),
                                               **available, unit_of_measurement="reps", state_class="total_increasing",
                                               icon="mdi:counter")),
        (topic("sensor", "last_fault"), entity("last_fault", "Last fault",
                                               **state_value("value_json.last_fault or 'none'"), **available,
                                               icon="mdi:alert-outline")),
        # "None" is Home Assistant's word for unknown: no percentage before the day's first rep.
        (topic("sensor", "clean_share"), entity(
            "clean_share", "Clean reps today",
            **state_value("(value_json.clean_share_today * 100) | round(0) if value_json.clean_share_today is not none "
                          "else None"),
            **available, unit_of_measurement="%", state_class="measurement", icon="mdi:check-circle-outline")),
        (topic("sensor", "waiting"), entity(
            "waiting", "Waiting for the hub",
            **state_value("value_json.waiting if value_json.waiting is not none else None"), **available,
            unit_of_measurement="messages", state_class="measurement", entity_category="diagnostic",
            icon="mdi:tray-full")),
        # No availability on this one: it is the availability, shown as a connectivity sensor.
        (topic("binary_sensor", "online"), entity("online", "Online", state_topic=topics.availability,
                                                  payload_on=t.ONLINE, payload_off=t.OFFLINE,
                                                  device_class="connectivity", entity_category="diagnostic")),
        (topic("switch", "buzzer"), entity("buzzer", "Buzzer", command_topic=topics.buzzer_set,
                                           **state_value("'ON' if value_json.buzzer_on else 'OFF'"), **available,
                                           payload_on=t.BUZZER_ON, payload_off=t.BUZZER_OFF, state_on=t.BUZZER_ON,
                                           state_off=t.BUZZER_OFF, optimistic=False, retain=False,
                                           icon="mdi:volume-high")),
        # Each fault as it buzzes (the alert topic: best effort, as it happens), its cue as an attribute.
        (topic("event", "fault"), entity("fault", "Fault", state_topic=topics.alert, **available,
                                         event_types=[f.value for f in Fault], value_template=FAULT_EVENT_TEMPLATE,
                                         icon="mdi:alert")),
        # Each committed rep with its verdict. The rep topic is the outbox's (at least once): a rep the
        # hub had not confirmed is sent again, and fires again.
        (topic("event", "rep"), entity("rep", "Rep", state_topic=topics.rep, **available,
                                       event_types=list(REP_EVENT_TYPES), value_template=REP_EVENT_TEMPLATE,
                                       icon="mdi:human-handsdown")),
        (topic("select", "drill"), choose),
    ]
    return messages


def retire_messages(cfg: MqttSettings, topics: t.Topics) -> list[tuple[str, bytes]]:
    """What a station leaving the gym publishes (retained, empty) so nothing of it lingers: Home
    Assistant removes an entity whose discovery config is emptied, and the broker drops a retained
    message replaced by an empty one (its state and availability, so the hub's floor forgets it)."""
    configs = [topic for topic, _ in discovery_messages(cfg, topics)]
    return [(topic, b"") for topic in [*configs, topics.state, topics.availability]]


# --- the link -------------------------------------------------------------------------------------


@dataclass
class _Sent:
    """An outbox row on its way: when it may go again if the hub does not confirm it, and how often it went."""

    next_at: float
    attempts: int = 1
    acked: bool = False  # the broker took it at least once


class _PubAcks:
    """paho's publish acknowledgements matched to the outbox rows they carried. paho may call back
    before publish() has returned the message's id, so an early answer waits here for its row."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[int, int] = {}  # mid -> outbox id
        self._early: dict[int, bool] = {}  # mid -> accepted, answered before we knew its row
        self._ignored: set[int] = set()  # best-effort messages nobody waits for
        self._done: list[tuple[int, bool]] = []  # (outbox id, accepted by the broker)

    def watch(self, mid: int, row: int) -> None:
        with self._lock:
            early = self._early.pop(mid, None)
            if early is None:
                self._rows[mid] = row
            else:
                self._done.append((row, early))

    def ignore(self, mid: int) -> None:
        with self._lock:
            if self._early.pop(mid, None) is None:
                self._ignored.add(mid)

    def answered(self, mid: int, accepted: bool) -> None:
        with self._lock:
            if mid in self._ignored:
                self._ignored.discard(mid)
            elif mid in self._rows:
                self._done.append((self._rows.pop(mid), accepted))
            else:
                self._early[mid] = accepted

    def take(self) -> list[tuple[int, bool]]:
        with self._lock:
            done, self._done = self._done, []
            return done


class BrokerLink:
    """One station's MQTT link: `start` connects (in the background: a broker that is down is
    retried with backoff, coaching goes on), `stop` sends what it can of the outbox, says offline and
    disconnects. Its own SQLite connection reads and empties the outbox; the live state is read from
    `live`; a buzzer command goes to `controls` like the page's switch, a drill command (one of
    `drills`, id -> title: the drills the page offers) like the page's drill choice. `clock`
    (monotonic seconds) times the resends and the command rate limit."""

    def __init__(
        self,
        cfg: MqttSettings,
        db_path: Path,
        live: LiveState,
        controls: Optional[StationControls] = None,
        make_client: Callable[[MqttSettings, t.Topics], mqtt.Client] = mqtt_client,
        version: str = "",
        clock: Callable[[], float] = time.monotonic,
        page_url: Optional[str] = None,
        drills: Optional[Mapping[str, str]] = None,
    ):
        if cfg.host is None or cfg.station_id is None:
            raise ValueError("a broker link needs mqtt.host and mqtt.station_id")
        self.host = cfg.host
        self.cfg = cfg
        self.topics = t.Topics(cfg.topic_prefix, cfg.station_id)
        self.db_path = Path(db_path)
        self.live = live
        self.controls = controls
        self.version = version
        self.page_url = page_url  # the trainer page a phone opens: Home Assistant's link to the station
        self.drills = dict(drills or {}) if controls is not None else {}  # nothing to choose without a station
        self.clock = clock
        try:
            self.client = make_client(cfg, self.topics)
        except (OSError, ValueError) as err:  # ssl.SSLError is an OSError: a CA or key file it cannot use
            raise ConfigError(f"mqtt: cannot use the credentials or TLS files ({err}); check mqtt.password_file, "
                              "ca_file, cert_file and key_file (PEM files readable by the station's user)") from None
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message
        self.connected = threading.Event()
        self._new_connection = threading.Event()
        self._hub_announced = threading.Event()  # the hub said it is online (again): resend soon
        self._wake = threading.Event()  # a confirmation came: the window may move on
        self._stop = threading.Event()
        self._closing = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._acks = _PubAcks()
        self._confirmations: "queue.SimpleQueue[t.StoredPayload]" = queue.SimpleQueue()
        self._sent: dict[int, _Sent] = {}  # outbox id -> its way so far (the sender thread's)
        self._drain_s = DRAIN_AT_STOP_S
        self._store_uuid = ""
        self._last_command: dict[str, float] = {}  # command topic -> when one was last obeyed
        self._ignored_said = float("-inf")
        self._refusing = False  # the broker refused a row (its ACL): said, and tried again later
        self._store: Optional[RepStore] = None
        # What a test, the page or `station doctor` may read
        self.hub_online: Optional[bool] = None  # the hub's availability (None: no hub has said yet)
        self.sent = 0  # outbox rows the broker took (each counted once, however often it went)
        self.confirmed = 0  # outbox rows the hub confirmed it stored, and so left the outbox
        self.resent = 0  # sends of a row that had gone before
        self.refused = 0  # outbox rows that could not be made into a payload (dropped, logged)
        self.commands = 0  # buzzer and drill commands obeyed
        self.ignored_commands = 0
        self.last_error = ""

    # --- lifetime -----------------------------------------------------------------------------

    def start(self) -> "BrokerLink":
        self._store = RepStore(self.db_path, outbox=False, synchronous="NORMAL")
        self._store_uuid = self._store.store_uuid
        self.client.connect_async(self.host, self.cfg.broker_port, keepalive=self.cfg.keepalive_s)
        self.client.loop_start()
        self._thread = threading.Thread(target=self._run, name="mqtt-sender", daemon=True)
        self._thread.start()
        log.info("MQTT: station %s publishing to %s:%d under %s/", self.topics.station, self.cfg.host,
                 self.cfg.broker_port, self.cfg.topic_prefix)
        return self

    def stop(self, drain_s: float = DRAIN_AT_STOP_S) -> None:
        """Send what the outbox holds and wait for the hub to confirm it, for up to `drain_s` (what is
        left goes at the next start), then mark the station offline and disconnect."""
        if self._thread is None:
            return
        self._drain_s = drain_s
        self._closing.set()
        self._wake.set()
        self._thread.join(drain_s + 1.0)
        self._stop.set()
        self._thread.join(5.0)
        self._thread = None
        if self.connected.is_set():
            info = self.client.publish(self.topics.availability, t.OFFLINE, qos=1, retain=True)
            _wait(info, 1.0)
        self.client.disconnect()
        self.client.loop_stop()
        if self._store is not None:
            left = self._store.outbox_size()
            if left:
                log.info("MQTT: %d reps and sessions wait in the outbox for the hub; they go at the next start", left)
            self._store.close()
            self._store = None

    def __enter__(self) -> "BrokerLink":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None

    # --- paho's callbacks (its network thread) --------------------------------------------------

    def _on_connect(self, client, userdata, flags, reason, properties) -> None:
        if reason.is_failure:
            self._problem(f"the broker refused the connection: {reason}")
            return
        self.last_error = ""
        client.subscribe([(self.topics.buzzer_set, 1), (self.topics.drill_set, 1), (self.topics.stored, 1),
                          (self.topics.hub_availability, 1)])
        self.connected.set()
        self._new_connection.set()
        log.info("MQTT: connected to %s:%d", self.cfg.host, self.cfg.broker_port)

    def _on_connect_fail(self, client, userdata) -> None:
        self._problem("cannot reach the broker (network, port or TLS: `station doctor` says which)")

    def _problem(self, text: str) -> None:
        """Said once per kind of trouble, not at every retry; reps wait in the outbox meanwhile."""
        if text != self.last_error:
            log.warning("MQTT: %s:%d: %s; retrying, reps wait in the outbox", self.cfg.host, self.cfg.broker_port, text)
        self.last_error = text

    def _on_disconnect(self, client, userdata, flags, reason, properties) -> None:
        if self.connected.is_set() and not self._stop.is_set():
            log.warning("MQTT: lost the broker (%s); reps wait in the outbox, retrying", reason)
        self.connected.clear()
        if reason.is_failure:
            self.last_error = str(reason)

    def _on_publish(self, client, userdata, mid, reason, properties) -> None:
        self._acks.answered(mid, not reason.is_failure)

    def _on_message(self, client, userdata, message) -> None:
        # Whatever a message does, it must not raise here: paho would stop its network thread, and
        # with it every command, confirmation and reconnect (coaching itself never waits on this).
        try:
            if message.topic == self.topics.stored:
                self._on_stored(bytes(message.payload))
            elif message.topic == self.topics.hub_availability:
                self._on_hub_availability(bytes(message.payload))
            else:
                self._on_command(message)
        except Exception:
            log.exception("MQTT: a message on %.200s could not be handled; ignored", message.topic)

    def _on_stored(self, payload: bytes) -> None:
        """The hub's word that it stored some of our reps and sessions (only the hub may write here:
        the broker's ACL). Applied by the sender thread, on its own connection."""
        try:
            _, _, stored = t.decode(self.topics.prefix, self.topics.stored, payload)
        except t.PayloadError as err:
            log.warning("MQTT: ignored a confirmation the contract refuses: %s", err)
            return
        if isinstance(stored, t.StoredPayload):
            self._confirmations.put(stored)
            self._wake.set()

    def _on_hub_availability(self, payload: bytes) -> None:
        online = payload == t.ONLINE.encode()
        if online or payload == t.OFFLINE.encode():
            if online != self.hub_online:
                log.info("MQTT: the hub is %s", "online" if online else "away; reps wait in the outbox for it")
            self.hub_online = online
            if online:  # also a retained 'online' at each (re)connection: what was in flight goes again soon
                self._hub_announced.set()
                self._wake.set()

    def _on_command(self, message: mqtt.MQTTMessage) -> None:
        """Home Assistant's buzzer switch (``ON``/``OFF``) and drill select (one of `drills`), obeyed
        as the page's own controls are; anything else is ignored and said. A retained command is
        stale (someone's old command left on the broker) and ignored too: the station remembers its
        own setting. Each kind is obeyed at most COMMANDS_PER_S times a second; a flood is dropped."""
        payload = bytes(message.payload)
        if message.topic == self.topics.buzzer_set:
            command: Optional[Callable[[], None]] = self._buzzer_command(payload)
        elif message.topic == self.topics.drill_set:
            command = self._drill_command(payload)
        else:
            command = None
            self._ignore(message.topic, payload, "not a command topic of this station")
        if command is None:
            return
        now = self.clock()
        if message.retain:
            self._ignore(message.topic, payload, "a retained command is stale")
        elif now - self._last_command.get(message.topic, float("-inf")) < 1.0 / COMMANDS_PER_S:
            self._ignore(message.topic, payload, f"more than {COMMANDS_PER_S:g} commands a second")
        elif self.controls is None:
            self._ignore(message.topic, payload, "no running station to command")
        else:
            self._last_command[message.topic] = now
            try:
                command()
            except (UnknownDrill, ConfigError) as err:  # a drill whose profile no longer loads
                self._ignore(message.topic, payload, str(err))
                return
            self.commands += 1

    def _buzzer_command(self, payload: bytes) -> Optional[Callable[[], None]]:
        on = t.buzzer_command(payload)
        if on is None:
            self._ignore(self.topics.buzzer_set, payload, f"not {t.BUZZER_ON} or {t.BUZZER_OFF}")
            return None

        def switch() -> None:
            assert self.controls is not None
            log.info("MQTT: buzzer %s (command from the broker)", "on" if on else "off")
            self.controls.set_buzzer_enabled(on)

        return switch

    def _drill_command(self, payload: bytes) -> Optional[Callable[[], None]]:
        drill = t.drill_command(payload)
        if drill is None:
            self._ignore(self.topics.drill_set, payload, "not a drill id (plain UTF-8 text, at most "
                         f"{t.MAX_DRILL_ID} bytes, {len(payload)} came)")
            return None
        if drill not in self.drills:
            self._ignore(self.topics.drill_set, payload, f"this station has no drill {drill!r}; its drills: "
                         f"{', '.join(self.drills) or 'none offered'}")
            return None

        def choose() -> None:
            assert self.controls is not None
            change_drill(self.controls, self.drills, drill)  # the page's own path
            log.info("MQTT: drill %s (command from the broker)", drill)

        return choose

    def _ignore(self, topic: str, payload: bytes, why: str) -> None:
        """A command not obeyed: counted, and said (at warning level at most every IGNORED_SAID_S, so a
        flood from a hostile client cannot fill the log)."""
        self.ignored_commands += 1
        now = self.clock()
        loud = now - self._ignored_said >= IGNORED_SAID_S
        if loud:
            self._ignored_said = now
        log.log(logging.WARNING if loud else logging.DEBUG, "MQTT: ignored a command on %.200s (%s): %r",
                topic, why, payload[:40])

    # --- the sender thread ------------------------------------------------------------------------

    def _run(self) -> None:
        last_version = -1
        last_state: Optional[dict[str, Any]] = None
        last_state_at = 0.0
        last_alert_at: Optional[float] = None
        drain_until: Optional[float] = None
        while not self._stop.is_set():
            try:
                confirmed = self._apply_confirmations()
                self._report_link()
                if self._closing.is_set():
                    drain_until = drain_until or self.clock() + self._drain_s
                    if (self.clock() > drain_until or not self.connected.is_set() or self._refusing
                            or self.hub_online is False or not self._outbox_size()):
                        if self.connected.is_set():  # the last word: how the day stands now
                            self._publish_state(self.live.snapshot()[1], last_state)
                        return
                if not self.connected.wait(POLL_S):
                    continue
                if self._new_connection.is_set():
                    self._new_connection.clear()
                    self._announce()
                    last_state = None  # the state goes again on every connection
                if self._hub_announced.is_set():
                    self._hub_announced.clear()
                    soon = self.clock() + HUB_BACK_GRACE_S
                    for way in self._sent.values():
                        way.next_at, way.attempts = min(way.next_at, soon), 1
                version, snap = self.live.snapshot()
                if snap.last_fault_at is not None and snap.last_fault_at != last_alert_at:
                    if time.time() - snap.last_fault_at < ALERT_FRESH_S:
                        self._alert(snap)
                    last_alert_at = snap.last_fault_at
                sent = self._send_due()
                now = self.clock()
                changed = sent or confirmed or version != last_version or last_state is None
                if changed and now - last_state_at >= STATE_MIN_INTERVAL_S:
                    published = self._publish_state(snap, last_state)
                    if published != last_state:
                        last_state, last_state_at = published, now
                    last_version = version
                if not sent and self._wake.wait(POLL_S):
                    self._wake.clear()
            except StorageError as err:  # the rep log is unreadable right now: try again shortly
                self.last_error = str(err)
                log.warning("MQTT: cannot read the outbox: %s", err)
                self._stop.wait(1.0)
            except Exception:  # never let the sender die quietly; it retries
                log.exception("MQTT: the sender failed; retrying")
                self._stop.wait(1.0)

    def _apply_confirmations(self) -> int:
        """Let go of what the hub has stored: a rep by its key; a session only when the hub holds it
        as it stands now (its end), so an end sent after the start is never let go unsent. Returns
        how many outbox rows went."""
        assert self._store is not None
        sid, uuid = self.topics.station, self._store_uuid
        rep_ids: list[int] = []
        sessions: list[tuple[int, Optional[float]]] = []
        while True:
            try:
                stored = self._confirmations.get_nowait()
            except queue.Empty:
                break
            rep_ids += [i for i in (t.key_id(k, sid, uuid) for k in stored.reps) if i is not None]
            sessions += [(i, s.ended_at) for s in stored.sessions
                         if (i := t.key_id(s.session_key, sid, uuid)) is not None]
        if not (rep_ids or sessions):
            return 0
        gone = self._store.outbox_confirm(rep_ids, sessions)
        self.confirmed += len(gone)
        for row in gone:
            self._sent.pop(row, None)
        return len(gone)

    def _report_link(self) -> None:
        """Tell the trainer's page whether reps reach the gym's hub: a station that cannot reach the
        broker or the hub keeps coaching and logging, and its reps wait in the outbox, which the page says."""
        waiting = self._outbox_size()
        queued = f"{waiting} reps and sessions wait in the outbox" if waiting else "nothing waits"
        if not self.connected.is_set():
            text = f"hub link down ({self.last_error or 'connecting'}): {queued}; none is lost, they go when it is back"
        elif self.hub_online is False:
            text = f"hub away (the broker says so): {queued}; none is lost, they go when the hub is back"
        elif waiting:
            text = f"hub link: connected, sending ({waiting} reps and sessions wait for the hub to confirm them)"
        else:
            text = "hub link: connected"
        if text != self.live.snapshot()[1].hub_link:
            self.live.update(hub_link=text)

    def _outbox_size(self) -> int:
        assert self._store is not None
        return self._store.outbox_size()

    def _announce(self) -> None:
        self._fire(self.topics.availability, t.ONLINE.encode(), retain=True, qos=1)
        if self.cfg.discovery:
            for topic, config in discovery_messages(self.cfg, self.topics, self.version, self.page_url, self.drills):
                self._fire(topic, json.dumps(config).encode() if config is not None else b"", retain=True, qos=1)
        else:  # discovery turned off: what an earlier run announced leaves Home Assistant
            for topic, _ in discovery_messages(self.cfg, self.topics):
                self._fire(topic, b"", retain=True, qos=1)

    def _publish_state(self, snap: LiveSnapshot, last: Optional[dict[str, Any]]) -> dict[str, Any]:
        """Publish the retained state when it differs from `last` (its time aside); returns what it stands at."""
        assert self._store is not None
        message = state_message(self.topics.station, snap, self._store.day_summary(start_of_today()), time.time(),
                                waiting=self._outbox_size())
        content = message.model_dump(exclude={"at"})
        if content != last:
            self._fire(self.topics.state, message.to_json(), retain=True, qos=0)
        return content

    def _alert(self, snap: LiveSnapshot) -> None:
        assert self._store is not None and snap.last_fault is not None and snap.last_fault_at is not None
        key = t.session_key(self.topics.station, self._store_uuid, snap.session_id) if snap.session_id else None
        try:
            alert = t.AlertPayload(station=self.topics.station, at=max(snap.last_fault_at, 0.0), fault=snap.last_fault,
                                   cue=snap.last_fault_cue[:200], session_key=key)
        except ValueError as err:  # a fault the contract refuses is the rep's to carry, not an alert's
            log.warning("MQTT: alert not sent: %s", err)
            return
        self._fire(self.topics.alert, alert.to_json(), retain=False, qos=0)

    def _fire(self, topic: str, payload: bytes, retain: bool, qos: int) -> None:
        """Best effort: sent now; nobody waits for its acknowledgement."""
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        self._acks.ignore(info.mid)

    def _message(self, row: dict[str, Any]) -> Optional[tuple[str, bytes]]:
        assert self._store is not None
        sid, uuid = self.topics.station, self._store_uuid
        if row["kind"] == "rep":
            rep = self._store.get_rep(row["rep_id"]) if row["rep_id"] is not None else None
            return (self.topics.rep, rep_message(sid, uuid, rep).to_json()) if rep else None
        session = self._store.get_session(row["session_id"]) if row["session_id"] is not None else None
        return (self.topics.session, session_message(sid, uuid, session).to_json()) if session else None

    def _send_due(self) -> int:
        """Publish the outbox's oldest WINDOW rows that have not gone yet, and those due to go again
        (never while the hub is away). Returns how many went."""
        assert self._store is not None
        self._take_acks()
        rows = self._store.outbox_next(WINDOW)
        here = {row["id"] for row in rows}
        for gone in [i for i in self._sent if i not in here]:  # deleted with its rep or session
            del self._sent[gone]
        now = self.clock()
        resend = self.hub_online is not False  # a row refused by the broker's ACL waits out its own delay
        due = [row for row in rows if row["id"] not in self._sent or (resend and now >= self._sent[row["id"]].next_at)]
        unbuildable: list[int] = []
        for row in due:
            try:
                message = self._message(row)
            except ValueError as err:  # a payload the contract refuses: it would hold up the window forever
                log.error("MQTT: outbox entry %d (%s) cannot be sent and is dropped: %s", row["id"], row["kind"], err)
                message = None
            if message is None:
                unbuildable.append(row["id"])
                continue
            info = self.client.publish(message[0], message[1], qos=1)
            self._acks.watch(info.mid, row["id"])
            before = self._sent.get(row["id"])
            if before is None:
                self._sent[row["id"]] = _Sent(now + RESEND_FIRST_S)
            else:
                self.resent += 1
                before.attempts += 1
                before.next_at = now + min(RESEND_FIRST_S * 2 ** (before.attempts - 1), RESEND_MAX_S)
        if unbuildable:
            self._store.outbox_remove(unbuildable)
            self.refused += len(unbuildable)
        return len(due) - len(unbuildable)

    def _take_acks(self) -> None:
        """The broker's answers: taken (counted once per row) or refused by its ACL (said, and the row
        goes again after RESEND_MAX_S; it stays in the outbox)."""
        refused = False
        for row, accepted in self._acks.take():
            sent = self._sent.get(row)
            if accepted:
                if sent is not None and not sent.acked:
                    sent.acked = True
                    self.sent += 1
                self._refusing = False
            else:
                refused = True
                if sent is not None:
                    sent.next_at = self.clock() + max(self.cfg.reconnect_max_s, 1.0)
        if refused:
            self._refusing = True
            text = (f"the broker refused to take a rep or session from user {self.cfg.username!r} as station "
                    f"{self.topics.station!r} (check the broker's ACL)")
            if text != self.last_error:
                log.error("MQTT: %s; it stays in the outbox", text)
            self.last_error = text


def _wait(info: mqtt.MQTTMessageInfo, timeout: float) -> None:
    try:
        info.wait_for_publish(timeout)
    except (RuntimeError, ValueError):
        pass
