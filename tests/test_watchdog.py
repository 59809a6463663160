"""The sd_notify client against a real AF_UNIX datagram socket standing in for systemd."""
from __future__ import annotations

import os
import socket
import uuid

import pytest

from device.station.notify import SystemdNotifier


@pytest.fixture
def manager(tmp_path):
    """A bound datagram socket, as systemd's notify socket is; yields (NOTIFY_SOCKET value, socket)."""
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2)
    yield str(path), sock
    sock.close()


def received(sock: socket.socket) -> list[str]:
    return sock.recv(4096).decode().split("\n")


def nothing_waiting(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        sock.recv(4096)
    except BlockingIOError:
        return True
    finally:
        sock.settimeout(2)
    return False


def test_ready_status_and_stopping_reach_the_manager(manager):
    name, sock = manager
    with SystemdNotifier({"NOTIFY_SOCKET": name}) as notifier:
        assert notifier.enabled
        assert notifier.ready("model loaded: float16")
        assert received(sock) == ["READY=1", "STATUS=model loaded: float16"]
        assert notifier.status("tracking, 14 fps")
        assert received(sock) == ["STATUS=tracking, 14 fps"]
        assert notifier.extend_timeout(30)
        assert received(sock) == ["EXTEND_TIMEOUT_USEC=30000000"]
        assert notifier.stopping()
        assert received(sock) == ["STOPPING=1"]


def test_abstract_socket_name_with_at_sign():
    name = f"hinge-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2)
    try:
        with SystemdNotifier({"NOTIFY_SOCKET": "@" + name}) as notifier:
            assert notifier.ready()
            assert received(sock) == ["READY=1"]
    finally:
        sock.close()


def test_watchdog_pings_are_rate_limited_to_a_quarter_of_the_interval(manager):
    name, sock = manager
    now = [100.0]
    notifier = SystemdNotifier({"NOTIFY_SOCKET": name, "WATCHDOG_USEC": "20000000"}, clock=lambda: now[0])
    assert notifier.watchdog_interval == 20.0 and notifier.ping_interval == 5.0
    assert notifier.ping()
    assert received(sock) == ["WATCHDOG=1"]
    now[0] += 4.9  # frames at 30 fps in between send nothing
    assert not notifier.ping()
    assert nothing_waiting(sock)
    now[0] += 0.2
    assert notifier.ping()
    assert received(sock) == ["WATCHDOG=1"]
    notifier.close()


def test_watchdog_meant_for_another_process_is_ignored(manager):
    name, _ = manager
    other = SystemdNotifier({"NOTIFY_SOCKET": name, "WATCHDOG_USEC": "20000000", "WATCHDOG_PID": str(os.getpid() + 1)})
    assert other.watchdog_interval is None and not other.ping()
    ours = SystemdNotifier({"NOTIFY_SOCKET": name, "WATCHDOG_USEC": "20000000", "WATCHDOG_PID": str(os.getpid())})
    assert ours.watchdog_interval == 20.0


def test_outside_systemd_everything_is_a_quiet_no_op():
    notifier = SystemdNotifier({})
    assert not notifier.enabled and notifier.watchdog_interval is None
    assert not notifier.ready() and not notifier.ping() and not notifier.status("x") and not notifier.stopping()


def test_a_vanished_manager_does_not_crash_the_station(tmp_path, caplog):
    notifier = SystemdNotifier({"NOTIFY_SOCKET": str(tmp_path / "gone"), "WATCHDOG_USEC": "1000000"})
    assert notifier.enabled
    assert not notifier.ready()
    assert not notifier.ping()
    assert sum("cannot notify systemd" in r.getMessage() for r in caplog.records) == 1


def test_reconnects_after_the_manager_comes_back(tmp_path):
    path = tmp_path / "notify"
    notifier = SystemdNotifier({"NOTIFY_SOCKET": str(path)})
    assert not notifier.status("starting")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2)
    try:
        assert notifier.ready()
        assert received(sock) == ["READY=1"]
    finally:
        notifier.close()
        sock.close()
