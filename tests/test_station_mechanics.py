"""The live loop's plumbing with test backends for the camera and the analysis: newest-frame
hand-off, camera loss and recovery, disk-full pausing. The real pipeline is exercised in
test_station.py."""
from __future__ import annotations

import sqlite3
import threading
import time

import numpy as np
import pytest

from device.errors import SourceError
from device.analysis.vocabulary import Fault, FaultEvent, FaultRaised, Rep, RepFinished
from device.station.live import LiveState
from device.pose.landmarks import Pose, empty_landmarks
from device.station.replog import RepLog
from device.capture.base import Frame, FrameSource
from device.station.loop import END_OF_STREAM, Captured, LatestFrame, PoseStage, Station
from device.station.store import RepStore


class FlakyCamera(FrameSource):
    """A live camera test backend: delivers frames, dies after `fail_after` reads, refuses to
    open `missing_for` times (unplugged), then works again."""

    live = True
    source_id = "flaky"

    def __init__(self, plan: dict):
        self.plan = plan

    def start(self) -> None:
        if self.plan["missing_for"] > 0 and self.plan["died"]:
            self.plan["missing_for"] -= 1
            raise SourceError("no camera")
        self.plan["opens"] += 1

    def stop(self) -> None:
        pass

    def read(self):
        p = self.plan
        if p["served"] >= p["total"]:
            return None
        if p["served"] == p["fail_after"] and not p["died"]:
            p["died"] = True
            raise SourceError("camera unplugged")
        p["served"] += 1
        time.sleep(0.002)
        return Frame(p["served"] / 30.0, np.zeros((8, 8, 3), np.uint8), "flaky", p["served"])


class PresentEngine:
    """Pose engine test backend: somebody is always in view."""

    def process(self, image, timestamp, contrast=None):
        lm = empty_landmarks()
        lm[:, :] = 1.0
        return Pose(timestamp, lm, 1.0, False, (8, 8))

    def reset(self):
        pass

    def process_deferred(self, image, timestamp, contrast=None, before_model=lambda: None):
        before_model()  # as the engine does, just before its model runs
        return self.process(image, timestamp, contrast), lambda: None


class RecordingLive(LiveState):
    """Keeps every snapshot the station publishes: a short-lived state (the camera error while it is
    being reopened) is seen however the test's threads are scheduled."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list = []

    def update(self, **changes) -> None:
        super().update(**changes)
        self.seen.append(self.snapshot()[1])


class EveryNthFrameRep:
    """Analysis test backend: a rep every n frames, every other rep with a fault raised mid-rep."""

    def __init__(self, n=10):
        self.n, self.frames, self.reps = n, 0, 0

    def update(self, pose):
        self.frames += 1
        events = []
        if self.frames % self.n == self.n // 2 and self.reps % 2 == 1:
            events.append(FaultRaised(pose.timestamp, FaultEvent(Fault.ROUNDED_BACK, "cue", pose.timestamp, 30.0, 20.0, self.reps + 1)))
        if self.frames % self.n == 0:
            self.reps += 1
            faults = [FaultEvent(Fault.ROUNDED_BACK, "cue", pose.timestamp, 30.0, 20.0, self.reps)] if self.reps % 2 == 0 else []
            rep = Rep(self.reps, pose.timestamp - 0.3, pose.timestamp - 0.15, pose.timestamp, 0.15, 0.15, 90, 20, 70, 0.3,
                      4.5, True, "left", faults=faults, trace=[(pose.timestamp, 90.0, 20.0)])
            events.append(RepFinished(pose.timestamp, rep))
        return events

    def finish(self, t):
        return []


def test_latest_frame_drops_stale_frames_unless_lossless():
    stop = threading.Event()
    box = LatestFrame()
    for i in range(3):
        box.put(Captured(Frame(i, None, "x", i), 0.0), stop)
    assert box.get(0.1).frame.index == 2 and box.dropped == 2
    assert box.get(0.01) is None
    box.close()
    assert box.get(0.01) is not None  # END_OF_STREAM sentinel

    lossless = LatestFrame(lossless=True)
    got = []
    consumer = threading.Thread(target=lambda: [got.append(lossless.get(1.0).frame.index) for _ in range(5)])
    consumer.start()
    for i in range(5):
        lossless.put(Captured(Frame(i, None, "x", i), 0.0), stop)
    consumer.join(5)
    assert got == [0, 1, 2, 3, 4] and lossless.dropped == 0


class TimelineEngine:
    """Pose engine test backend that writes down when each frame is cropped and its model runs;
    the frames in `dark` are too dark to look at (no model runs, as in PoseEngine)."""

    def __init__(self, timeline: list, dark: frozenset = frozenset()):
        self.timeline, self.dark = timeline, dark

    def process_deferred(self, image, timestamp, contrast=None, before_model=lambda: None):
        self.timeline.append(("crop", timestamp))
        if timestamp not in self.dark:
            before_model()
            self.timeline.append(("model", timestamp))
        return Pose(timestamp, empty_landmarks(), 0.0, False, (8, 8)), lambda: None

    def reset(self):
        pass


class TimelinePoses(LatestFrame):
    """The worker's mailbox, writing down when each pose is handed on."""

    def __init__(self, timeline: list):
        super().__init__(lossless=True)
        self.timeline = timeline

    def put(self, item, stop):
        self.timeline.append(("handed", item.pose.timestamp))
        super().put(item, stop)


def _pose_stage(frames: int, dark: frozenset = frozenset()) -> tuple[list[tuple[str, float]], TimelinePoses]:
    """Runs a pose thread over `frames` frames that are all waiting from the start (a loop that is
    behind its camera, or a fast replay) and returns what happened, in order."""
    stop = threading.Event()
    timeline: list[tuple[str, float]] = []
    waiting: LatestFrame = LatestFrame(lossless=True)
    poses = TimelinePoses(timeline)
    for i in range(frames):
        waiting.put(Captured(Frame(float(i), np.zeros((8, 8, 3), np.uint8), "x", i), 0.0), stop)
    waiting.close()
    stage = PoseStage(TimelineEngine(timeline, dark), waiting, poses, stop)
    stage.start()
    stage.join(5)
    assert not stage.is_alive() and stage.fatal is None
    return timeline, poses


def test_a_pose_goes_to_the_worker_as_the_model_starts_on_the_next_frame_not_before():
    """With the next frame waiting, the worker gets a pose between the next frame's crop and its
    model run: its Python then runs while the model holds no lock, not while the pose thread crops
    (remove the wait and the pose is handed on before the next crop)."""
    timeline, poses = _pose_stage(3)
    assert timeline == [("crop", 0.0), ("model", 0.0),
                        ("crop", 1.0), ("handed", 0.0), ("model", 1.0),
                        ("crop", 2.0), ("handed", 1.0), ("model", 2.0),
                        ("handed", 2.0)]  # the last pose at the end of the stream
    assert [poses.get(0.1).pose.timestamp for _ in range(3)] == [0.0, 1.0, 2.0]


def test_a_frame_too_dark_to_look_at_still_hands_the_last_pose_on_in_order():
    timeline, _ = _pose_stage(3, dark=frozenset({1.0}))
    handed = [t for what, t in timeline if what == "handed"]
    assert handed == [0.0, 1.0, 2.0]
    assert timeline.index(("handed", 0.0)) < timeline.index(("crop", 2.0))  # not held past a frame with no model


def test_with_no_frame_waiting_the_last_pose_goes_on_at_once():
    """The model faster than the camera (the next frame not there yet): the pose thread does not
    hold a pose until the next frame comes (that would delay every alert by a frame)."""
    stop, timeline = threading.Event(), []
    waiting: LatestFrame = LatestFrame()
    poses = TimelinePoses(timeline)
    stage = PoseStage(TimelineEngine(timeline), waiting, poses, stop)
    stage.start()
    try:
        waiting.put(Captured(Frame(0.0, None, "x", 0), 0.0), stop)
        first = poses.get(2.0)
        assert first is not None and first is not END_OF_STREAM and first.pose.timestamp == 0.0
    finally:
        waiting.close()
        stage.join(5)


def test_a_fast_replay_decodes_a_few_frames_ahead_and_no_further():
    """A replay's decoder runs up to LOSSLESS_AHEAD frames ahead, so one slow decode does not stall
    the worker, and then waits: every frame is processed, in order, and memory stays bounded."""
    from device.station.loop import LOSSLESS_AHEAD

    stop = threading.Event()
    box = LatestFrame(lossless=True)
    for i in range(LOSSLESS_AHEAD):
        box.put(Captured(Frame(i, None, "x", i), 0.0), stop)  # returns at once
    late = threading.Thread(target=box.put, args=(Captured(Frame(9, None, "x", 9), 0.0), stop))
    late.start()
    late.join(0.3)
    assert late.is_alive()  # one more waits for the worker...
    assert box.get(0.1).frame.index == 0
    late.join(2)
    assert not late.is_alive()  # ...until it takes one
    assert [box.get(0.1).frame.index for _ in range(LOSSLESS_AHEAD)] == [*range(1, LOSSLESS_AHEAD), 9]
    assert box.dropped == 0


def test_camera_unplugged_mid_stream_is_retried_logged_and_resumed(tmp_path):
    plan = {"total": 120, "fail_after": 40, "missing_for": 3, "died": False, "served": 0, "opens": 0}
    store = RepStore(tmp_path / "s.db")
    live = RecordingLive()
    station = Station(engine=PresentEngine(), make_analyzer=lambda name: EveryNthFrameRep(), profile="hinge",
                      replog=RepLog(store), live=live, source_id="flaky", idle_timeout_s=60)
    summary = station.run(lambda: FlakyCamera(plan), retry_initial_s=0.01, retry_max_s=0.05)
    assert plan["opens"] == 2  # opened, died, refused three times, reopened
    assert summary.frames == 120 or summary.frames + summary.dropped == 120
    with RepStore(tmp_path / "s.db", readonly=True) as ro:
        kinds = [e["kind"] for e in reversed(ro.device_events())]
        assert kinds.count("camera_lost") == 1 and kinds.count("camera_back") == 1
        assert kinds.index("camera_lost") < kinds.index("camera_back")
        assert ro.rep_count() == summary.reps > 5  # reps before and after the outage are logged
    assert any(snap.state == "error" and "camera" in snap.error for snap in live.seen)


def test_disk_full_pauses_logging_keeps_alerting_and_resumes(tmp_path):
    db = tmp_path / "s.db"
    store = RepStore(db)
    replog = RepLog(store, retry_interval_s=0.0)
    live = LiveState()
    seen = {"faults": 0, "reps_while_full": 0, "paused_live": False}
    pages = store._db.execute("PRAGMA page_count").fetchone()[0]
    store._db.execute(f"PRAGMA max_page_count = {pages}")  # the file can grow no more: SQLITE_FULL

    def on_event(event):
        if isinstance(event, FaultRaised):
            seen["faults"] += 1
        if isinstance(event, RepFinished) and replog.paused:
            seen["reps_while_full"] += 1
            seen["paused_live"] |= live.snapshot()[1].logging_paused
            if seen["reps_while_full"] == 5:  # space comes back mid-run
                store._db.execute("PRAGMA max_page_count = 1000000")

    station = Station(engine=PresentEngine(), make_analyzer=lambda name: EveryNthFrameRep(5), profile="hinge",
                      replog=replog, live=live, source_id="flaky", idle_timeout_s=60, on_event=on_event)
    plan = {"total": 100, "fail_after": -1, "missing_for": 0, "died": False, "served": 0, "opens": 0}
    summary = station.run(lambda: FlakyCamera(plan), lossless=True)
    assert seen["reps_while_full"] >= 5 and seen["paused_live"], "the full database never paused logging"
    assert seen["faults"] == 10, "alerts must keep firing while logging is paused"
    assert not replog.paused and replog.queued == 0, "logging did not resume when space returned"
    replog.close()
    raw = sqlite3.connect(db)
    assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert raw.execute("SELECT COUNT(*) FROM reps").fetchone()[0] == summary.reps == 20
    assert raw.execute("SELECT COUNT(*) FROM faults").fetchone()[0] == 10
    assert [r[0] for r in raw.execute("SELECT rep_index FROM reps ORDER BY id")] == list(range(1, 21))


def test_page_controls_reach_the_running_session_through_the_rep_log(tmp_path):
    store = RepStore(tmp_path / "s.db")
    station = None

    def on_event(event):
        if isinstance(event, RepFinished) and event.rep.index == 1:
            station.set_athlete("Jo")  # as the page does, from another thread
            station.set_buzzer_enabled(False)

    station = Station(engine=PresentEngine(), make_analyzer=lambda name: EveryNthFrameRep(5), profile="hinge",
                      replog=RepLog(store), live=LiveState(), source_id="flaky", idle_timeout_s=60, on_event=on_event)
    plan = {"total": 30, "fail_after": -1, "missing_for": 0, "died": False, "served": 0, "opens": 0}
    station.run(lambda: FlakyCamera(plan), lossless=True)
    station.replog.close()
    with RepStore(tmp_path / "s.db", readonly=True) as ro:
        [session] = ro.list_sessions()
        assert session["athlete"] == "Jo"
        assert ro.get_setting("buzzer_enabled") is False  # remembered across restarts


class CrashingCamera(FlakyCamera):
    """A camera backend whose driver raises something no one planned for after a few frames."""

    def read(self):
        if self.plan["served"] == 5:
            raise OverflowError("Python int too large to convert to C int")
        return super().read()


def test_a_capture_thread_that_dies_ends_the_run_with_an_error_not_a_quiet_summary(tmp_path):
    import pytest

    from device.errors import StationError

    store = RepStore(tmp_path / "s.db")
    station = Station(engine=PresentEngine(), make_analyzer=lambda name: EveryNthFrameRep(5), profile="hinge",
                      replog=RepLog(store), live=LiveState(), source_id="crashing", idle_timeout_s=60)
    plan = {"total": 100, "fail_after": -1, "missing_for": 0, "died": False, "served": 0, "opens": 0}
    with pytest.raises(StationError, match="capture thread failed.*OverflowError"):
        station.run(lambda: CrashingCamera(plan), lossless=True)
    station.replog.close()
    with RepStore(tmp_path / "s.db", readonly=True) as ro:
        assert ro.rep_count() == 1  # the rep finished before the crash is logged


def test_cue_words_from_the_page_reach_the_running_drill_between_frames(tmp_path):
    """The page's cue words are checked when asked (a bad one is refused at once, nothing queued),
    then applied on the worker between frames to the table the running analyzer reads."""
    from device.analysis.cues import CueWords

    words = CueWords()
    table = words.for_drill("hinge")  # what the running analyzer's judge holds
    with RepStore(tmp_path / "s.db") as store:
        station = Station(engine=PresentEngine(), make_analyzer=lambda name: EveryNthFrameRep(), profile="hinge",
                          replog=RepLog(store), cues=words)
        with pytest.raises(ValueError):
            station.set_cues("hinge", {"rounded_back": "x" * 200})
        station.set_cues("hinge", {"rounded_back": "proud chest"})
        assert table == {}  # not yet: the worker applies it between frames
        station._run_commands()
        assert table == {Fault.ROUNDED_BACK: "proud chest"}


def paced_looks(fps, after_s, present_from=None, seconds=10.0, camera_fps=30.0):
    """Frame times the pacer lets the engine look at, for a camera at `camera_fps` with somebody in
    view from `present_from` s (None: nobody ever)."""
    from device.station.loop import NobodyPacer

    pacer, looked = NobodyPacer(fps, after_s), []
    for i in range(int(seconds * camera_fps)):
        t = i / camera_fps
        if pacer.should_look(t):
            looked.append(t)
            pacer.looked(t, present_from is not None and t >= present_from)
    return looked, pacer


def test_with_nobody_in_view_the_camera_is_looked_at_a_few_times_a_second_after_a_while():
    looked, pacer = paced_looks(fps=5.0, after_s=2.0)
    first = [t for t in looked if t < 2.0]
    assert len(first) == 60  # every frame while nobody has been gone long
    later = np.diff([t for t in looked if t >= 2.0])
    assert later.min() >= 0.2 - 1e-9 and later.max() < 0.2 + 1 / 30 + 1e-9  # five looks a second, no fewer
    assert pacer.skipped == 300 - len(looked) > 150


def test_somebody_stepping_up_is_looked_at_within_one_slow_look_and_then_on_every_frame():
    arrive = 6.01  # between two slow looks
    looked, pacer = paced_looks(fps=5.0, after_s=2.0, present_from=arrive)
    seen = min(t for t in looked if t >= arrive)
    assert seen - arrive <= 0.2 + 1 / 30  # found within one slow look
    after = [t for t in looked if t >= seen]
    assert len(after) == round((10.0 - seen) * 30)  # every frame from then on


def test_somebody_in_view_all_along_has_every_frame_looked_at():
    looked, pacer = paced_looks(fps=5.0, after_s=2.0, present_from=0.0)
    assert len(looked) == 300 and pacer.skipped == 0


class NobodyThenSomebody(PresentEngine):
    """Nobody in view before `arrive` s of frame time, then somebody; counts the frames it ran on."""

    def __init__(self, arrive):
        self.arrive, self.ran = arrive, []

    def process(self, image, timestamp, contrast=None):
        self.ran.append(timestamp)
        if timestamp < self.arrive:
            return Pose(timestamp, empty_landmarks(), 0.0, True, (8, 8))
        return super().process(image, timestamp, contrast)


def test_a_live_camera_with_nobody_in_view_runs_the_engine_less_and_a_replay_on_every_frame(tmp_path):
    def run(nobody_fps, lossless):
        plan = {"total": 240, "fail_after": -1, "missing_for": 0, "died": False, "served": 0, "opens": 0}
        engine = NobodyThenSomebody(arrive=6.0)
        station = Station(engine=engine, make_analyzer=lambda name: EveryNthFrameRep(), profile="hinge",
                          replog=RepLog(RepStore(tmp_path / f"{nobody_fps}-{lossless}.db")), source_id="flaky",
                          idle_timeout_s=60, nobody_fps=nobody_fps, nobody_after_s=2.0)
        return station.run(lambda: FlakyCamera(plan), lossless=lossless), engine

    paced, engine = run(5.0, lossless=False)
    nobody = [t for t in engine.ran if t < 6.0]
    # Every frame of the first 2 s at most, then five a second: the rest of 6 s of nobody let go.
    assert paced.nobody_skipped > 60 and len(nobody) <= 2.0 * 30 + 4 * 5 + 2
    assert any(t >= 6.0 for t in engine.ran)  # somebody stepping up is looked at
    every, engine = run(5.0, lossless=True)  # a replay processes every frame
    assert every.nobody_skipped == 0 and len(engine.ran) == 240
    off, engine = run(0.0, lossless=False)
    assert off.nobody_skipped == 0
