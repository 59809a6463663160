"""Runtime paths of the live station no other test walks: a session ending after idle_timeout_s,
the watchdog going quiet when a camera read hangs, the drill switched through the real Station from
the page, the saved drill and buzzer restored at start, and the head-cut and unreliable framings."""
from __future__ import annotations

import threading
import time

import pytest
from support.pipeline import station_settings
from support.synthetic import Motion
from support.web import AUTH
from test_station_mechanics import EveryNthFrameRep, FlakyCamera, PresentEngine

from device.analysis.framing import HEAD_CUT_CUE, classify
from device.analysis.kinematics import AngleTracker
from device.analysis.profiles import load_profile
from device.analysis.vocabulary import FRAMING_CUES, Framing
from device.pose.landmarks import LANDMARK_INDEX, VISIBILITY, Y, Pose, empty_landmarks
from device.station import loop as loop_module
from device.station.live import LiveState
from device.station.loop import Station
from device.station.replog import RepLog
from device.station.store import RepStore


class Script:
    """Pose engine test backend: somebody is in view exactly when `present(timestamp)` says so."""

    def __init__(self, present):
        self.present = present

    def process(self, image, timestamp, contrast=None):
        if self.present(timestamp):
            return PresentEngine().process(image, timestamp)
        return Pose(timestamp, empty_landmarks(), 0.0, True, (8, 8))

    def reset(self):
        pass

    def process_deferred(self, image, timestamp, contrast=None, before_model=lambda: None):
        before_model()  # as the engine does, just before its model runs
        return self.process(image, timestamp, contrast), lambda: None


def test_a_session_ends_after_idle_timeout_s_and_the_next_athlete_starts_a_new_one(tmp_path):
    """In view for 1 s, gone for 2 s (idle_timeout_s 1.5), back for 1 s: two sessions, the first
    ended 1.5 s after the athlete was last seen."""
    store = RepStore(tmp_path / "s.db")
    present = lambda t: t < 1.0 or t >= 3.0  # noqa: E731
    station = Station(engine=Script(present), make_analyzer=lambda name: EveryNthFrameRep(100), profile="hinge",
                      replog=RepLog(store), live=LiveState(), source_id="flaky", idle_timeout_s=1.5)
    plan = {"total": 120, "fail_after": -1, "missing_for": 0, "died": False, "served": 0, "opens": 0}
    summary = station.run(lambda: FlakyCamera(plan), lossless=True)
    station.replog.close()
    assert summary.sessions == 2
    with RepStore(tmp_path / "s.db", readonly=True) as ro:
        first, second = sorted(ro.list_sessions(), key=lambda s: s["started_at"])
    assert first["ended_at"] - first["started_at"] == pytest.approx(1.0 + 1.5, abs=0.1)
    assert second["started_at"] - first["started_at"] == pytest.approx(3.0, abs=0.1)


class HangingCamera(FlakyCamera):
    """Serves frames, then a read that does not return for `hang_s` (a wedged driver)."""

    hang_s = 1.6

    def read(self):
        if self.plan["served"] == 15:
            self.plan["hung_at"] = time.monotonic()
            time.sleep(self.hang_s)
            self.plan["served"] += 1
            return None
        return super().read()


class Pings:
    def __init__(self):
        self.times = []

    def ready(self):
        pass

    def ping(self):
        self.times.append(time.monotonic())

    def stopping(self):
        pass

    def status(self, text):
        pass


def test_the_watchdog_goes_quiet_while_a_camera_read_hangs(tmp_path, monkeypatch):
    monkeypatch.setattr(loop_module, "CAPTURE_HANG_S", 0.4)
    pings = Pings()
    station = Station(engine=PresentEngine(), make_analyzer=lambda name: EveryNthFrameRep(100), profile="hinge",
                      replog=RepLog(RepStore(tmp_path / "s.db")), live=LiveState(), source_id="flaky",
                      idle_timeout_s=60, notifier=pings)
    plan = {"total": 100, "fail_after": -1, "missing_for": 0, "died": False, "served": 0, "opens": 0}
    station.run(lambda: HangingCamera(plan))
    station.replog.close()
    hung = plan["hung_at"]
    assert any(t < hung for t in pings.times), "no pings while frames flowed"
    quiet = [t for t in pings.times if hung + 0.4 + 0.3 < t < hung + HangingCamera.hang_s - 0.05]
    assert quiet == [], "the watchdog was fed while the camera hung"


def test_the_page_switches_the_drill_of_the_real_station(tmp_path):
    """Through the page's API to Station.set_profile: the new drill's analyzer runs from the next
    frames, the live state says so, and the choice is remembered in the rep log."""
    import warnings

    from support.web import make_app
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    made = []

    def make_analyzer(name):
        load_profile(name)  # an unknown drill fails here, as the real factory does
        made.append(name)
        return EveryNthFrameRep(100)

    store = RepStore(tmp_path / "s.db")
    live = LiveState()
    station = Station(engine=PresentEngine(), make_analyzer=make_analyzer, profile="hinge", replog=RepLog(store),
                      live=live, source_id="flaky", idle_timeout_s=60)
    api = TestClient(make_app(RepStore(tmp_path / "s.db"), live=live, controls=station, page_cpu_share=None))
    plan = {"total": 10**6, "fail_after": -1, "missing_for": 0, "died": False, "served": 0, "opens": 0}
    runner = threading.Thread(target=station.run, args=(lambda: FlakyCamera(plan),))
    runner.start()
    try:
        answer = api.put("/api/settings", json={"profile": "wall_tap_hinge"}, headers=AUTH)
        assert answer.status_code == 200, answer.text
        deadline = time.monotonic() + 5
        while live.snapshot()[1].profile != "wall_tap_hinge" and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        station.stop()
        runner.join(10)
    station.replog.close()
    assert station.profile == "wall_tap_hinge" and made[-1] == "wall_tap_hinge"
    assert live.snapshot()[1].profile == "wall_tap_hinge"
    with RepStore(tmp_path / "s.db", readonly=True) as ro:
        assert ro.get_setting("profile") == "wall_tap_hinge"


def test_the_drill_and_buzzer_chosen_on_the_page_come_back_at_start(tmp_path, settings, clips_dir):
    from gpiozero.pins.mock import MockFactory, MockPWMPin

    from device.station.assembly import build_station

    db = tmp_path / "station.db"
    with RepStore(db) as store:
        store.set_setting("profile", "dowel_hinge")
        store.set_setting("buzzer_enabled", False)
    factory = MockFactory(pin_class=MockPWMPin)
    try:
        with build_station(station_settings(settings, db), str(clips_dir / "jeffchen_deadlift_side_good_1rep.mp4"),
                           engine=PresentEngine(), pin_factory=factory) as rig:
            assert rig.station.profile == "dowel_hinge"
            assert rig.signals is not None and rig.signals.buzzer_enabled is False
            _, snap = rig.live.snapshot()
            assert snap.profile == "dowel_hinge" and snap.buzzer_enabled is False
    finally:
        factory.reset()


def standing_pose() -> Pose:
    return Motion().stand(1.0).render(fps=30)[-1]


def framing_of(pose: Pose) -> tuple[Framing, str]:
    profile = load_profile("hinge")
    tracker = AngleTracker(profile.kinematics)
    view = classify(pose, tracker.update(pose), profile.framing)
    return view.framing, view.cue


def test_a_head_cut_off_at_the_top_asks_to_step_back_for_the_head():
    pose = standing_pose()
    lm = pose.landmarks.copy()
    for name in ("nose", "left_eye", "right_eye", "left_ear", "right_ear"):
        lm[LANDMARK_INDEX[name], Y] = -20.0  # above the picture
    framing, cue = framing_of(Pose(pose.timestamp, lm, pose.presence, pose.detector_ran, pose.image_size))
    assert framing is Framing.OUT_OF_FRAME and cue == HEAD_CUT_CUE != FRAMING_CUES[Framing.OUT_OF_FRAME]


def test_hips_and_knees_the_model_cannot_see_are_unreliable_not_judged():
    pose = standing_pose()
    lm = pose.landmarks.copy()
    for side in ("left", "right"):
        for joint in ("hip", "knee"):
            lm[LANDMARK_INDEX[f"{side}_{joint}"], VISIBILITY] = 0.1
    framing, cue = framing_of(Pose(pose.timestamp, lm, pose.presence, pose.detector_ran, pose.image_size))
    assert framing is Framing.UNRELIABLE and cue == FRAMING_CUES[Framing.UNRELIABLE]
    assert framing_of(standing_pose())[0] is Framing.OK
