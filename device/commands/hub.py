"""`station hub`: one gym's stations into one database and one page.

Subscribes to every station under the topic prefix, stores their sessions and reps (SQLite by
default, PostgreSQL by URL), and serves the trainer page in gym mode: the whole floor live,
history across stations, an athlete's sessions across stations, the same exports. Its own
process, its own systemd unit (deploy/systemd/hinge-hub.service); it never opens a camera or a
model. `station hub bench` measures how many stations one hub keeps up with (bench_hub.py).
"""
from __future__ import annotations

import argparse
import logging
import signal
import threading
from typing import Optional

from device.config import Settings
from device.errors import ConfigError
from device.hub.floor import Floor
from device.hub.intake import Intake
from device.hub.service import Broker, Hub
from device.contract import topics
from device.hub.store import HubStore
from device.station.notify import SystemdNotifier
from web.app import create_app
from web.page_server import PageServer

log = logging.getLogger("station.hub")
HEALTH_EVERY_S = 5.0


def broker_from(settings: Settings) -> tuple[Broker, str]:
    """The broker the hub reads and the topic prefix, from the same [mqtt] section a station
    publishes with (its station_id is the station's; the hub has none)."""
    mqtt = settings.mqtt
    if not mqtt.enabled:
        raise ConfigError("the hub needs the broker: set [mqtt] host (and port, username, password, tls) in its config; "
                          "see deploy/README.md, \"Many stations\"")
    assert mqtt.host is not None
    broker = Broker(host=mqtt.host, port=mqtt.broker_port, username=mqtt.username, password=mqtt.secret(), tls=mqtt.tls,
                    ca_file=str(mqtt.ca_file) if mqtt.ca_file else None,
                    cert_file=str(mqtt.cert_file) if mqtt.cert_file else None,
                    key_file=str(mqtt.key_file) if mqtt.key_file else None,
                    client_id=settings.hub.client_id, keepalive_s=mqtt.keepalive_s,
                    reconnect_min_s=mqtt.reconnect_min_s, reconnect_max_s=mqtt.reconnect_max_s)
    return broker, mqtt.topic_prefix


def run_hub(settings: Settings, host: Optional[str] = None, port: Optional[int] = None) -> int:
    host = host or settings.web.host
    port = settings.web.port if port is None else port
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port must be 0..65535, not {port}")
    broker, prefix = broker_from(settings)
    assert settings.hub.database_url is not None
    store = HubStore(settings.hub.database_url)
    floor = Floor()
    allowed = set(settings.hub.stations)
    if not allowed:
        log.warning("hub.stations is empty: every station the broker lets publish under %s/ is accepted "
                    "(list the gym's station ids there to drop the rest)", prefix)
    hub = Hub(store, floor, broker, Intake(prefix, allowed))
    app = create_app(store, settings.web, floor=floor, profiles=store.profiles_used(), page_cpu_share=0.5)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with SystemdNotifier() as notifier:
        server = PageServer(app, host=host, port=port)
        try:
            hub.start()
            url = server.start()
            print(f"hub: reading {', '.join(topics.hub_subscriptions(prefix))} on {broker.host}:{broker.port}, storing in {store.path}; "
                  f"gym page on {url}/ ; Ctrl-C stops", flush=True)
            notifier.ready(f"page on port {server.port}")
            while not stop.wait(min(HEALTH_EVERY_S, notifier.ping_interval or HEALTH_EVERY_S)):
                if hub.alive:
                    notifier.ping()  # only while the writer runs: a stuck hub is restarted by systemd
                notifier.status(f"{len(floor.snapshot().stations)} stations, {hub.stored_reps} reps stored, "
                                f"backlog {hub.backlog}, dropped {sum(hub.drops.values())}")
            notifier.stopping()
        finally:
            server.stop()
            hub.stop()
            store.close()
    return 0


def command(args: argparse.Namespace, settings: Settings) -> int:
    if getattr(args, "action", "serve") == "bench":
        from device.commands.bench_hub import command as bench

        return bench(args, settings)
    return run_hub(settings, host=args.host, port=args.port)
