"""Tell systemd how the station is doing: ready once the model is loaded, alive while frames flow.

This is the sd_notify protocol (one datagram of KEY=VALUE lines to $NOTIFY_SOCKET) in a few lines
of stdlib, so the station needs no libsystemd binding. Outside systemd every call is a no-op.

The live loop should call `ping()` only after a frame went through the pose engine: if the camera
hangs, pings stop, and after WatchdogSec= systemd kills and restarts the service.
"""
from __future__ import annotations

import logging
import os
import socket
import time
from typing import Callable, Mapping, Optional

log = logging.getLogger(__name__)


class SystemdNotifier:
    """One connection to the service manager's notification socket."""

    def __init__(self, environ: Optional[Mapping[str, str]] = None, clock: Callable[[], float] = time.monotonic):
        env = os.environ if environ is None else environ
        self.socket_name = env.get("NOTIFY_SOCKET", "")
        self.address = _socket_address(self.socket_name)
        self.watchdog_interval = _watchdog_interval(env)
        self._clock = clock
        self._last_ping: Optional[float] = None
        self._sock: Optional[socket.socket] = None
        self._warned = False

    @property
    def enabled(self) -> bool:
        """True when running under a systemd unit with Type=notify (NOTIFY_SOCKET is set)."""
        return self.address is not None

    @property
    def ping_interval(self) -> Optional[float]:
        """How often `ping()` actually sends: a quarter of WatchdogSec=, so one late frame is harmless."""
        return None if self.watchdog_interval is None else self.watchdog_interval / 4

    def ready(self, status: Optional[str] = None) -> bool:
        """The model is loaded and the first frame can be read: systemd marks the unit started."""
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def ping(self) -> bool:
        """Call on every processed frame; sends WATCHDOG=1 at most every `ping_interval` seconds.

        Returns True when a keep-alive was sent."""
        if self.watchdog_interval is None or not self.enabled:
            return False
        now = self._clock()
        assert self.ping_interval is not None
        if self._last_ping is not None and now - self._last_ping < self.ping_interval:
            return False
        sent = self.notify("WATCHDOG=1")
        if sent:
            self._last_ping = now
        return sent

    def status(self, text: str) -> bool:
        """One line shown by `systemctl status` (e.g. 'tracking, 14 fps, 32 reps today')."""
        return self.notify(f"STATUS={text}")

    def extend_timeout(self, seconds: float) -> bool:
        """Ask for more time before READY=1 (a slow first model load on a cold SD card)."""
        return self.notify(f"EXTEND_TIMEOUT_USEC={int(seconds * 1_000_000)}")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1")

    def notify(self, *fields: str) -> bool:
        """Send one message; False (and one logged warning) if systemd cannot be reached."""
        if self.address is None:
            return False
        message = "\n".join(fields).encode()
        try:
            if self._sock is None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                sock.connect(self.address)
                self._sock = sock
            self._sock.sendall(message)
        except OSError as err:
            self.close()
            if not self._warned:
                log.warning("cannot notify systemd at %s: %s", self.socket_name, err)
                self._warned = True
            return False
        return True

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> "SystemdNotifier":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _socket_address(value: str) -> Optional[str]:
    """A filesystem path, or '@name' for an abstract socket (the '@' stands for a leading NUL)."""
    if value.startswith("@"):
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None


def _watchdog_interval(env: Mapping[str, str]) -> Optional[float]:
    """WatchdogSec= in seconds, if the watchdog is armed for this process."""
    usec = env.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    pid = env.get("WATCHDOG_PID", "")
    if pid and (not pid.isdigit() or int(pid) != os.getpid()):
        return None
    return int(usec) / 1_000_000
