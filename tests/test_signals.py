"""LED and buzzer patterns on gpiozero's MockFactory: the pins' states and timings."""
from __future__ import annotations

import datetime as dt
import time
from typing import Optional

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from device.config import SignalSettings
from device.station.signals import FAULT_BUZZ_S, QuietHours, signals_from_settings

RED, GREEN, BLUE, BUZZER = 17, 27, 22, 18


@pytest.fixture
def factory():
    f = MockFactory(pin_class=MockPWMPin)
    yield f
    f.reset()


def make(factory, **overrides):
    cfg = SignalSettings(**{"fault_cooldown_s": 2.0, **overrides})
    signals, _ = signals_from_settings(cfg, factory)
    return signals


def high_periods(pin) -> list[tuple[float, float]]:
    """(start, duration) of each time the pin was driven on, in seconds since its states were
    cleared. A MockPin stamps each state with the time since the pin's previous change, so the
    stamps are summed: read as times, a tone that started late (a loaded machine) looked short."""
    periods, start, now = [], None, 0.0
    for s in pin.states:
        now += s.timestamp
        if s.state and start is None:
            start = now
        elif not s.state and start is not None:
            periods.append((start, now - start))
            start = None
    return periods


def wait_until(predicate, timeout=2.0):
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)
    return predicate()


def test_states_show_distinct_colours(factory):
    s = make(factory)
    assert factory.pin(BLUE).state > 0 and factory.pin(RED).state == 0  # idle: dim blue
    s.tracking()
    assert factory.pin(GREEN).state > 0 and factory.pin(RED).state == 0 and factory.pin(BLUE).state == 0
    s.turn_sideways()  # amber blink: red and green together
    assert wait_until(lambda: factory.pin(RED).state > 0 and factory.pin(GREEN).state > 0)
    s.error()
    assert wait_until(lambda: factory.pin(RED).state > 0 and factory.pin(GREEN).state == 0)
    assert wait_until(lambda: factory.pin(RED).state == 0)  # it flashes, not steady
    s.close()


def test_fault_lights_red_and_buzzes_once_briefly(factory):
    s = make(factory)
    s.tracking()
    factory.pin(BUZZER).clear_states()
    assert s.fault("squatting_the_hinge") is True
    assert factory.pin(RED).state == 1 and factory.pin(GREEN).state == 0
    assert s.state == "fault"
    assert wait_until(lambda: len(high_periods(factory.pin(BUZZER))) == 1)
    (_, duration), = high_periods(factory.pin(BUZZER))
    assert duration == pytest.approx(FAULT_BUZZ_S, abs=0.05)
    s.close()


def test_cooldown_per_rule_and_buzzer_switch(factory):
    s = make(factory)
    assert s.fault("rounded_back") is True
    assert s.fault("rounded_back") is False  # same rule within the cooldown: light only
    assert s.fault("head_not_neutral") is True  # another rule buzzes
    s.set_buzzer_enabled(False)
    assert s.fault("too_fast") is False
    assert factory.pin(RED).state == 1  # the LED still tells
    s.close()


def test_quiet_hours_silence_the_buzzer(factory):
    cfg = SignalSettings(quiet_hours="21:00-07:00")
    signals, _ = signals_from_settings(cfg, factory)
    signals._wall = lambda: dt.datetime(2026, 1, 1, 23, 30)
    assert signals.fault("locked_knees") is False
    signals._wall = lambda: dt.datetime(2026, 1, 1, 12, 0)
    assert signals.fault("too_fast") is True
    assert QuietHours.parse("08:00-09:00").contains(dt.time(8, 30))
    assert not QuietHours.parse("21:00-07:00").contains(dt.time(12, 0))
    signals.close()


def test_clean_rep_after_a_faulty_one_blinks_green(factory):
    s = make(factory)
    s.tracking()
    s.fault("squatting_the_hinge")
    s.rep_finished(clean=False, buzzed=True)
    assert wait_until(lambda: s.state == "tracking", timeout=2.5)  # red holds about a second, then clears
    factory.pin(GREEN).clear_states()
    factory.pin(BUZZER).clear_states()
    s.rep_finished(clean=True, buzzed=False)
    assert wait_until(lambda: len(high_periods(factory.pin(GREEN))) >= 2)
    assert wait_until(lambda: len(high_periods(factory.pin(BUZZER))) == 2)  # two short ticks
    assert wait_until(lambda: factory.pin(GREEN).state > 0)  # back to steady tracking green
    factory.pin(GREEN).clear_states()
    s.rep_finished(clean=True, buzzed=False)  # a clean rep after a clean one: nothing to celebrate
    time.sleep(0.4)
    assert high_periods(factory.pin(GREEN)) == []
    s.close()


def test_a_clean_rep_after_one_that_buzzed_nothing_is_not_praised(factory):
    """A borderline or unjudged rep is not clean, but it buzzed nothing: the athlete had nothing to
    fix, so the next clean rep gets no praise ticks (a tick with no fault heard before it reads as noise)."""
    s = make(factory)
    s.tracking()
    s.rep_finished(clean=False, buzzed=False)  # borderline, or filmed off side-on
    factory.pin(BUZZER).clear_states()
    factory.pin(GREEN).clear_states()
    s.rep_finished(clean=True, buzzed=False)
    time.sleep(0.4)
    assert high_periods(factory.pin(BUZZER)) == [] and high_periods(factory.pin(GREEN)) == []
    s.close()


def test_single_led_and_passive_buzzer(factory):
    s = make(factory, led="single", buzzer="passive")
    s.tracking()
    assert factory.pin(RED).state == 1
    assert s.fault("too_fast") is True
    assert wait_until(lambda: factory.pin(BUZZER).frequency is not None)  # a tone plays
    assert wait_until(lambda: factory.pin(BUZZER).frequency is None or factory.pin(BUZZER).state == 0)
    s.close()


def test_bad_quiet_hours_is_a_config_error():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="quiet_hours"):
        SignalSettings(quiet_hours="late")


def test_entering_the_error_state_sounds_the_half_second_error_tone_once(factory):
    from device.station.signals import ERROR_TONE_S

    s = make(factory)
    factory.pin(BUZZER).clear_states()
    s.error()
    s.error()  # already in error: no second tone
    assert wait_until(lambda: len(high_periods(factory.pin(BUZZER))) == 1)
    time.sleep(0.2)
    (_, duration), = high_periods(factory.pin(BUZZER))
    assert ERROR_TONE_S == 0.5 and duration == pytest.approx(0.5, abs=0.05)
    s.close()


def test_a_damaged_rep_log_warning_flashes_and_sounds_then_shows_the_state_again(factory):
    s = make(factory)
    s.tracking()
    factory.pin(BUZZER).clear_states()
    s.warn()
    assert wait_until(lambda: factory.pin(RED).state > 0)
    assert wait_until(lambda: len(high_periods(factory.pin(BUZZER))) == 1)
    assert wait_until(lambda: factory.pin(GREEN).state > 0 and factory.pin(RED).state == 0, timeout=3.0)  # tracking again
    s.close()


def test_closing_while_a_light_restore_is_pending_writes_nothing_to_the_closed_pins(factory):
    """Praise blinks green, then a timer restores the base light; a station stopping in between must
    not have that timer write to an LED it has already closed (gpiozero raises on its thread)."""
    import threading

    raised: list[Optional[BaseException]] = []
    previous = threading.excepthook
    threading.excepthook = lambda args: raised.append(args.exc_value)
    try:
        s = make(factory)
        s.tracking()
        s.fault("squatting_the_hinge")
        s.rep_finished(clean=False, buzzed=True)  # red holds on a timer
        s.rep_finished(clean=True, buzzed=False)  # praise: a restore of the base light on a timer
        s.close()
        time.sleep(1.5)  # past both the red hold and the restore
    finally:
        threading.excepthook = previous
    assert raised == []
