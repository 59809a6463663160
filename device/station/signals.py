"""The station's LED and buzzer, on gpiozero.

Small classes for the two real things on the wall — `StatusLight` (an RGB or single LED) and
`Beeper` (an active or passive buzzer) — and `Signals`, which maps what the athlete is doing to
patterns they can read from across the room:

| state                      | RGB LED                      | single LED            | buzzer                 |
|----------------------------|------------------------------|-----------------------|------------------------|
| idle (nobody there)        | dim blue                     | off                   | -                      |
| tracking (side-on, in view)| green                        | on                    | -                      |
| fault                      | red until the rep ends       | fast blink            | one 150 ms buzz        |
| clean rep after a fault    | two green blinks             | two slow blinks       | two 40 ms ticks        |
| turn sideways/out of frame | slow amber blink             | slow blink            | -                      |
| device error               | red flash, 0.1 s every 0.5 s | short flash every 1 s | one 0.5 s tone on entry|

All hardware sits behind gpiozero's pin factory, so tests and demos use its MockFactory and the
same code drives real pins on a Pi.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable, Optional

log = logging.getLogger(__name__)

Colour = tuple[float, float, float]
OFF: Colour = (0.0, 0.0, 0.0)
GREEN: Colour = (0.0, 0.8, 0.0)
RED: Colour = (1.0, 0.0, 0.0)
AMBER: Colour = (1.0, 0.45, 0.0)
DIM_BLUE: Colour = (0.0, 0.0, 0.15)

FAULT_BUZZ_S = 0.15
TICK_S = 0.04
ERROR_TONE_S = 0.5
FAULT_HOLD_S = 1.0  # red stays at least this long even if the rep ends sooner


def make_pin_factory(kind: str):
    """'mock' -> MockFactory with PWM pins; 'auto' -> gpiozero's default for this board, or the mock
    with a warning where there is no GPIO (a laptop, CI). Returns (factory, is_mock)."""
    import warnings

    from gpiozero import Device
    from gpiozero.pins.mock import MockFactory, MockPWMPin

    if kind == "mock":
        return MockFactory(pin_class=MockPWMPin), True
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return Device._default_pin_factory(), False
    except Exception as err:  # BadPinFactory and friends: no pin library works here
        log.warning("no GPIO on this machine (%s); driving mock pins instead", err)
        return MockFactory(pin_class=MockPWMPin), True


class StatusLight:
    """The status LED: RGB (three PWM pins) or a single LED (colour reduced to on/off)."""

    def __init__(self, pins: tuple[int, ...], active_high: bool, pin_factory):
        from gpiozero import LED, PWMLED, RGBLED

        self.rgb = len(pins) == 3
        if self.rgb:
            self._led = RGBLED(*pins, active_high=active_high, pin_factory=pin_factory)
        else:
            cls = PWMLED if getattr(pin_factory, "pin_class", None) is not None else LED
            self._led = cls(pins[0], active_high=active_high, pin_factory=pin_factory)

    def _value(self, colour: Colour):
        return colour if self.rgb else (1 if max(colour) > 0 else 0)

    def steady(self, colour: Colour) -> None:
        self._led.value = self._value(colour)

    def blink(self, colour: Colour, on_time: float, off_time: float, n: Optional[int] = None) -> None:
        if self.rgb:
            self._led.blink(on_time, off_time, on_color=colour, n=n, background=True)
        else:
            self._led.blink(on_time, off_time, n=n, background=True)

    def off(self) -> None:
        self._led.off()

    @property
    def value(self):
        return self._led.value

    def close(self) -> None:
        self._led.close()


class Beeper:
    """The buzzer. An active buzzer sounds when powered; a passive one needs a tone (PWM)."""

    def __init__(self, kind: str, pin: int, pin_factory):
        from gpiozero import Buzzer, TonalBuzzer

        self.kind = kind
        self._timer: Optional[threading.Timer] = None
        self._dev = TonalBuzzer(pin, pin_factory=pin_factory) if kind == "passive" else Buzzer(pin, pin_factory=pin_factory)

    def beep(self, on_time: float, n: int = 1, off_time: float = 0.08) -> None:
        if self.kind == "active":
            self._dev.beep(on_time, off_time, n=n, background=True)
            return
        # passive: play a tone for on_time, n times, off the caller's thread
        def run() -> None:
            for i in range(n):
                self._dev.play(880.0)
                time.sleep(on_time)
                self._dev.stop()
                if i < n - 1:
                    time.sleep(off_time)

        threading.Thread(target=run, name="beeper", daemon=True).start()

    def off(self) -> None:
        if self.kind == "active":
            self._dev.off()
        else:
            self._dev.stop()

    def close(self) -> None:
        self._dev.close()


@dataclass(frozen=True)
class QuietHours:
    start: dt.time
    end: dt.time

    @classmethod
    def parse(cls, text: str) -> "QuietHours":
        try:
            a, b = text.split("-")
            return cls(dt.time.fromisoformat(a.strip()), dt.time.fromisoformat(b.strip()))
        except ValueError:
            raise ValueError(f"quiet_hours must look like '21:00-07:00', got {text!r}") from None

    def contains(self, now: dt.time) -> bool:
        if self.start <= self.end:
            return self.start <= now < self.end
        return now >= self.start or now < self.end  # wraps midnight


class Signals:
    """Turns station states and analysis events into LED and buzzer patterns.

    The base state (idle, tracking, turn sideways, out of frame, error) shows until it changes; a
    fault overlays red on it until the rep ends. Each fault buzzes at most once per rep (the
    analysis raises it once) and at most once per `fault_cooldown_s` across reps.
    """

    def __init__(
        self,
        light: Optional[StatusLight],
        beeper: Optional[Beeper],
        buzzer_enabled: bool = True,
        quiet_hours: Optional[QuietHours] = None,
        fault_cooldown_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], dt.datetime] = dt.datetime.now,
    ):
        self.light = light
        self.beeper = beeper
        self.buzzer_enabled = buzzer_enabled
        self.quiet_hours = quiet_hours
        self.fault_cooldown_s = fault_cooldown_s
        self._clock = clock
        self._wall = wall_clock
        self._lock = threading.Lock()
        self._state = "off"
        self._fault_until: Optional[float] = None  # while set, red is showing
        self._rep_had_fault = False
        self._last_buzz: dict[str, float] = {}
        self._pending: set[threading.Timer] = set()  # restores of the base light, cancelled on close
        self._closed = False
        self.idle()

    # --- the buzzer ------------------------------------------------------------------------

    def set_buzzer_enabled(self, enabled: bool) -> None:
        self.buzzer_enabled = enabled
        if not enabled and self.beeper:
            self.beeper.off()

    def _buzzer(self) -> Optional[Beeper]:
        """The beeper when it may sound now (there is one, it is on, it is not quiet hours), else None."""
        if not (self.beeper and self.buzzer_enabled):
            return None
        if self.quiet_hours and self.quiet_hours.contains(self._wall().time()):
            return None
        return self.beeper

    # --- base states -----------------------------------------------------------------------

    def _later(self, delay: float, action: Callable[..., None], *args: object) -> None:
        """Run `action` after `delay` s on a timer that `close` cancels: a light restored after the
        station has closed its pins would write to a closed device."""
        def run() -> None:
            with self._lock:
                self._pending.discard(timer)
            action(*args)

        timer = threading.Timer(delay, run)
        timer.daemon = True
        with self._lock:
            if self._closed:
                return
            self._pending.add(timer)
        timer.start()

    def _show_base(self) -> None:
        if not self.light or self._closed:
            return
        if self._state == "idle":
            self.light.steady(DIM_BLUE)
        elif self._state == "tracking":
            self.light.steady(GREEN)
        elif self._state in ("turn_sideways", "out_of_frame"):
            self.light.blink(AMBER, 0.6, 0.6)
        elif self._state == "error":
            self.light.blink(RED, 0.1, 0.4 if self.light.rgb else 0.9)

    def _set_state(self, state: str) -> None:
        with self._lock:
            if state == self._state:
                return
            entering_error = state == "error"
            self._state = state
            if self._fault_until is None or state in ("idle", "error"):
                self._fault_until = None
                self._show_base()
        if entering_error and (beeper := self._buzzer()) is not None:
            beeper.beep(ERROR_TONE_S)

    def idle(self) -> None:
        self._set_state("idle")

    def tracking(self) -> None:
        self._set_state("tracking")

    def turn_sideways(self) -> None:
        self._set_state("turn_sideways")

    def out_of_frame(self) -> None:
        self._set_state("out_of_frame")

    def error(self) -> None:
        self._set_state("error")

    def warn(self) -> None:
        """Something needs a look but coaching goes on (the rep log was damaged and replaced): the
        error tone and three red flashes, then the current state shows again."""
        if self.light:
            self.light.blink(RED, 0.1, 0.2, n=3)
            self._later(1.0, self._reshow_base)
        if (beeper := self._buzzer()) is not None:
            beeper.beep(ERROR_TONE_S)

    @property
    def state(self) -> str:
        return "fault" if self._fault_until is not None else self._state

    # --- events ----------------------------------------------------------------------------

    def fault(self, name: str) -> bool:
        """Show a fault now; returns whether the buzzer sounded."""
        now = self._clock()
        with self._lock:
            self._rep_had_fault = True
            self._fault_until = now + FAULT_HOLD_S
            if self.light:
                if self.light.rgb:
                    self.light.steady(RED)
                else:
                    self.light.blink(RED, 0.08, 0.08)
            last = self._last_buzz.get(name)
            cooled = last is None or now - last >= self.fault_cooldown_s
            beeper = self._buzzer() if cooled else None
            if beeper is not None:
                self._last_buzz[name] = now
        if beeper is not None:
            beeper.beep(FAULT_BUZZ_S)
        return beeper is not None

    def rep_finished(self, clean: bool, buzzed: bool) -> None:
        """End of a rep: a clean rep straight after one that buzzed earns a green blink and a tick.
        Praise answers a buzz the athlete heard and fixed: a rep that was only borderline, or not
        judged (camera off side-on), buzzed nothing, so the rep after it earns nothing either."""
        with self._lock:
            praise = clean and self._rep_had_fault
            self._rep_had_fault = buzzed
            hold = self._fault_until
        if hold is not None:
            delay = max(0.0, hold - self._clock())
            if delay > 0:
                self._later(delay, self._clear_fault, hold)
            else:
                self._clear_fault(hold)
        if praise:
            if self.light:
                self.light.blink(GREEN, 0.15, 0.15, n=2)
                self._later(0.65, self._reshow_base)
            if (beeper := self._buzzer()) is not None:
                beeper.beep(TICK_S, n=2)

    def _clear_fault(self, stamp: float) -> None:
        with self._lock:
            if self._fault_until == stamp:
                self._fault_until = None
                self._show_base()

    def _reshow_base(self) -> None:
        with self._lock:
            if self._fault_until is None:
                self._show_base()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pending, self._pending = self._pending, set()
        for timer in pending:
            timer.cancel()
        for dev in (self.light, self.beeper):
            if dev is not None:
                try:
                    dev.off()
                finally:
                    dev.close()


def signals_from_settings(cfg, pin_factory=None) -> tuple[Signals, object]:
    """Build Signals from settings.signals; returns (signals, pin_factory) so tests can read pins."""
    factory = pin_factory
    if factory is None:
        factory, _ = make_pin_factory(cfg.pin_factory)
    pins = (cfg.led_red_pin, cfg.led_green_pin, cfg.led_blue_pin) if cfg.led == "rgb" else (cfg.led_red_pin,)
    light = StatusLight(pins, cfg.led_active_high, factory)
    beeper = Beeper(cfg.buzzer, cfg.buzzer_pin, factory) if cfg.buzzer != "none" else None
    quiet = QuietHours.parse(cfg.quiet_hours) if cfg.quiet_hours else None
    return Signals(light, beeper, cfg.buzzer_enabled, quiet, cfg.fault_cooldown_s), factory
