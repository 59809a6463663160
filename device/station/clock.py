"""Whether the station's clock can be trusted: a Pi has no clock battery, so after a power cut it
may run from a wrong time until NTP sets it, and deleting by age on such a clock deletes the wrong
things. Read by retention (device/station/assembly.py) and `station doctor`."""
from __future__ import annotations

import ctypes
import ctypes.util
from typing import Optional


def kernel_clock_synchronised() -> Optional[bool]:
    """The kernel's own view (adjtimex): False while no NTP client has disciplined the clock.

    This is the flag `timedatectl` shows as 'System clock synchronized'. None off Linux."""
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        adjtimex = libc.adjtimex
    except (OSError, AttributeError):
        return None
    buf = ctypes.create_string_buffer(512)  # struct timex with modes = 0: read only, no privileges
    state = adjtimex(buf)
    time_error = 5
    if state < 0:
        return None
    return state != time_error


def untrusted(now: float, newest: Optional[float], synchronised: Optional[bool]) -> str:
    """Why `now` must not be used to delete by age ('' when it may be): the clock is not known to be
    synchronised, or it reads earlier than the newest time the log holds (it went backwards)."""
    if synchronised is not True:
        return ("the clock is not synchronised (no NTP yet)" if synchronised is False
                else "nobody can say whether the clock is synchronised")
    if newest is not None and now < newest:
        return f"the clock reads {now:.0f}, before the newest row ({newest:.0f})"
    return ""
