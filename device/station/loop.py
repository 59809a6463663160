"""The live loop: a capture thread that keeps only the newest frame, a pose thread that runs the
pose engine on each frame it takes, and a worker that runs analysis -> signals and rep log on each
pose, in order.

An alert must be about now, so frames that arrive while the model is busy are dropped, not queued
(a clip replayed with `--fast` is the exception: there every frame is processed). The model is the
loop's pace: the pose thread does nothing else, so while it runs the model on one frame the worker
judges the frame before (the interpreter lets go of Python's lock while it computes) and the
capture thread reads the next. Every stage is timed; per rep the station logs its stage times and
the frame-to-signal latency of each alert.
"""
from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Iterator, Optional, Protocol, TypeVar

import cv2
import numpy as np

from device.pose.draw import draw_pose
from device.pose.engine import frame_contrast
from device.errors import SourceError, StationError
from device.analysis.cues import CueWords
from device.analysis.vocabulary import (
    FRAMING_CUES,
    AnalysisEvent,
    FaultRaised,
    Framing,
    FramingChanged,
    RepFinished,
    RepStarted,
)
from device.station.live import LiveState, StationState
from device.pose.landmarks import Pose
from device.station.replog import RepLog, SessionHandle
from device.station.voice import Voice
from device.station.signals import Signals
from device.stats import median, percentile
from device.capture.base import Frame, FrameSource

log = logging.getLogger(__name__)

PREVIEW_MAX_SIDE = 480
STATUS_INTERVAL_S = 1.0
# A camera read that has not returned for this long is hung: stop feeding systemd's watchdog so it
# restarts the service (a camera that is merely unplugged is retried and keeps the watchdog fed).
CAPTURE_HANG_S = 10.0


class Analyzer(Protocol):
    def update(self, pose: Pose) -> list[AnalysisEvent]: ...

    def finish(self, time: float) -> list[AnalysisEvent]: ...


class Notifier(Protocol):
    """systemd's sd_notify (device/station/notify.py), or nothing outside systemd. Whatever a call
    returns (SystemdNotifier: whether it was sent) the station ignores, hence `object`."""

    def ready(self) -> object: ...

    def ping(self) -> object: ...

    def status(self, text: str) -> object: ...

    def stopping(self) -> object: ...


class NoNotifier:
    def ready(self) -> None: ...

    def ping(self) -> None: ...

    def status(self, text: str) -> None: ...

    def stopping(self) -> None: ...


# --- capture --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Captured:
    frame: Frame
    received: float  # monotonic seconds when the capture thread got it
    # Prepared on the capture thread while the worker's model runs on the frame before:
    contrast: Optional[float] = None  # the pose engine's frame_contrast of the frame
    capture_ms: float = 0.0  # reading the frame from its source, and preparing it


END_OF_STREAM = object()


# A fast replay's decoder may run this many frames ahead of the worker: a frame whose decoding was
# held up (by the model's threads, or anything else on the machine) does not stall the worker while
# the frames before it are still queued. A live camera's mailbox holds only the newest frame.
LOSSLESS_AHEAD = 4


Item = TypeVar("Item")


class LatestFrame(Generic[Item]):
    """A one-slot mailbox: a new frame replaces an untaken one (counted as dropped). With
    `lossless=True` the producer waits instead (once LOSSLESS_AHEAD frames wait), so a fast replay
    processes every frame, in order (and every pose reaches the analysis)."""

    def __init__(self, lossless: bool = False):
        self.lossless = lossless
        self.dropped = 0
        self._cond = threading.Condition()
        self._items: "collections.deque[Item]" = collections.deque()
        self._closed = False

    def put(self, item: Item, stop: threading.Event) -> None:
        with self._cond:
            if self.lossless:
                while len(self._items) >= LOSSLESS_AHEAD and not stop.is_set():
                    self._cond.wait(0.1)
            elif self._items:
                self.dropped += 1
                self._items.clear()
            self._items.append(item)
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def get(self, timeout: float):
        """The newest frame, None on timeout, or END_OF_STREAM once closed and drained."""
        with self._cond:
            self._cond.wait_for(lambda: bool(self._items) or self._closed, timeout)
            if self._items:
                item = self._items.popleft()
                self._cond.notify_all()
                return item
            return END_OF_STREAM if self._closed else None


class FrameGrabber(threading.Thread):
    """Reads the source on its own thread. A live camera that fails (missing, unplugged) is
    reopened with exponential backoff until it is back; a clip that cannot be opened is fatal."""

    def __init__(
        self,
        make_source: Callable[[], FrameSource],
        mailbox: LatestFrame[Captured],
        stop: threading.Event,
        on_status: Callable[[str, str], None],
        retry_initial_s: float = 0.5,
        retry_max_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        contrast_of: Optional[Callable[[np.ndarray], float]] = None,
    ):
        super().__init__(name="capture", daemon=True)
        self.contrast_of = contrast_of
        self.make_source = make_source
        self.mailbox = mailbox
        self.stop = stop
        self.on_status = on_status
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.clock = clock
        self.fatal: Optional[StationError] = None
        self.frames = 0
        self.last_activity = clock()  # a read returned or a reopen was tried; stale = hung camera

    def run(self) -> None:
        delay = self.retry_initial_s
        outage = False
        try:
            while not self.stop.is_set():
                source = self.make_source()
                try:
                    source.start()
                except SourceError as err:
                    if not source.live:
                        self.fatal = err
                        return
                    if not outage:
                        outage = True
                        self.on_status("camera_lost", str(err))
                    log.warning("camera unavailable (%s); retrying in %.1f s", err, delay)
                    self.last_activity = self.clock()
                    self.stop.wait(delay)
                    self.last_activity = self.clock()
                    delay = min(delay * 2, self.retry_max_s)
                    continue
                if outage:
                    outage = False
                    self.on_status("camera_back", source.source_id)
                delay = self.retry_initial_s
                try:
                    while not self.stop.is_set():
                        started = self.clock()
                        frame = source.read()
                        self.last_activity = self.clock()
                        if frame is None:
                            return
                        self.frames += 1
                        contrast = self.contrast_of(frame.image) if self.contrast_of is not None else None
                        received = self.clock()
                        self.mailbox.put(Captured(frame, received, contrast, (received - started) * 1000), self.stop)
                except SourceError as err:
                    outage = True
                    self.on_status("camera_lost", str(err))
                    log.warning("%s", err)
                finally:
                    source.stop()
        except Exception as err:  # anything else: say so and end the run non-zero, never a quiet summary
            log.exception("the capture thread failed")
            self.fatal = StationError(f"the capture thread failed ({type(err).__name__}: {err}); "
                                      "check --source / source.camera")
        finally:
            self.mailbox.close()


# --- the pose thread ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Posed:
    """A frame with its pose, from the pose thread to the worker."""

    item: Captured
    pose: Pose
    waited_ms: float  # the pose thread waiting for this frame
    started: float  # monotonic seconds when the pose thread took it...
    done: float  # ...and when its pose was ready
    finish: Callable[[], None]  # what is left of the pose (its torso outline), for the worker


class NobodyPacer:
    """How often the pose thread looks while nobody is there. With nobody found for `after_s`, the
    engine runs on a frame only every 1/`fps` s (the rest are let go): with nobody in view every
    frame runs the person detector, a model larger than the landmark model (430 M MACs against 386 M),
    so an empty gym kept a Pi's cores busy and hot all day, and a hot Pi slows down (it throttles)
    when someone does step up. Somebody stepping in is found within 1/`fps` s, long before a first
    rep: walking up and setting up take seconds. From the first frame somebody is found, every frame
    is looked at again. Frame times, not the clock: a paced replay paces alike."""

    def __init__(self, fps: float, after_s: float):
        if fps <= 0:
            raise ValueError(f"a nobody pacer needs a rate above 0, not {fps}")
        self.interval = 1.0 / fps
        self.after_s = after_s
        self.skipped = 0  # frames let go while nobody was there
        self._seen_at: Optional[float] = None  # frame time somebody was last found (or the first frame's)
        self._looked_at: Optional[float] = None  # frame time the engine last ran

    def should_look(self, t: float) -> bool:
        if self._seen_at is None:
            self._seen_at = t
        quiet = t - self._seen_at >= self.after_s
        if quiet and self._looked_at is not None and t - self._looked_at < self.interval:
            self.skipped += 1
            return False
        return True

    def looked(self, t: float, found: bool) -> None:
        self._looked_at = t
        if found:
            self._seen_at = t


class PoseStage(threading.Thread):
    """Runs the pose engine on each frame the capture thread hands over, and hands the poses on to
    the worker in order (it waits for the worker rather than drop one: the analysis sees every pose
    of every frame the model ran on), each as the model starts on the next frame (`_hand_on`). An
    engine failure ends the run with the error, as it would on the worker. `reset()` (the camera
    came back) makes the engine look afresh before its next frame."""

    def __init__(self, engine, frames: LatestFrame[Captured], poses: LatestFrame[Posed], stop: threading.Event,
                 clock: Callable[[], float] = time.monotonic, pacer: Optional[NobodyPacer] = None):
        super().__init__(name="pose", daemon=True)
        self.engine, self.frames, self.poses, self.stop, self.clock = engine, frames, poses, stop, clock
        self.pacer = pacer  # a live camera's: fewer looks while nobody is there (None: every frame)
        self.fatal: Optional[BaseException] = None
        self.last_activity = clock()  # a frame taken, a pose made or a wait timed out; stale = a hung model
        self._reset = threading.Event()
        self._pending: Optional[Posed] = None  # the last pose, until the model runs again (_hand_on)

    def reset(self) -> None:
        self._reset.set()

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                asked = self.clock()
                item = self.frames.get(timeout=0.0) if self._pending is not None else None
                if item is None:  # no frame waiting: the last pose goes on now, not after a wait
                    self._hand_on()
                    item = self.frames.get(timeout=0.25)
                self.last_activity = started = self.clock()
                if item is END_OF_STREAM:
                    return
                if item is None:
                    continue
                if self._reset.is_set():
                    self._reset.clear()
                    self.engine.reset()
                frame = item.frame
                if self.pacer is not None and not self.pacer.should_look(frame.timestamp):
                    self._hand_on()
                    continue
                # The torso outline is left to the worker, which reads it while the model runs on
                # the next frame: off this thread, the one the model's rate depends on.
                pose, finish = self.engine.process_deferred(frame.image, frame.timestamp, item.contrast, self._hand_on)
                self._hand_on()  # no model ran on this frame (too dark to see): nothing to wait for
                if self.pacer is not None:
                    self.pacer.looked(frame.timestamp, pose.found)
                self.last_activity = done = self.clock()
                self._pending = Posed(item, pose, (started - asked) * 1000, started, done, finish)
        except Exception as err:  # the worker raises it once it has closed the session
            log.exception("the pose engine failed")
            self.fatal = err
        finally:
            self._hand_on()
            self.poses.close()

    def _hand_on(self) -> None:
        """The last pose to the worker (in order: it is always handed on before the next is made).
        It waits until this thread is about to run the model on the next frame: the worker's
        analysis is Python, and Python runs one thread at a time, so a worker judging while this
        thread crops and decodes made it wait for its turn (the crop took 1.5-3 ms in the loop
        against 0.6 alone: `station bench`). The model lets go of that lock while it runs, and the
        worker judges then."""
        posed, self._pending = self._pending, None
        if posed is not None:
            self.poses.put(posed, self.stop)

# --- per-rep timing -------------------------------------------------------------------------------


@dataclass
class StageTimes:
    """Stage times of the frames since the last rep ended, summarised into the rep's record."""

    wait_ms: list[float] = field(default_factory=list)
    pose_ms: list[float] = field(default_factory=list)
    analysis_ms: list[float] = field(default_factory=list)
    loop_ms: list[float] = field(default_factory=list)
    signal_latency_ms: list[float] = field(default_factory=list)
    dropped_at_start: int = 0

    def summary(self, dropped_now: int) -> dict[str, Any]:
        return {
            "frames": len(self.loop_ms),
            "dropped_frames": dropped_now - self.dropped_at_start,
            "wait_ms_median": median(self.wait_ms, 2),
            "pose_ms_median": median(self.pose_ms, 2),
            "pose_ms_p95": percentile(self.pose_ms, 95, 2),
            "analysis_ms_median": median(self.analysis_ms, 2),
            "loop_ms_median": median(self.loop_ms, 2),
            "frame_to_signal_ms": [round(x, 2) for x in self.signal_latency_ms],
        }


# Where a live-loop frame's time goes, in the order a frame meets them, by thread. The capture
# thread reads and prepares it. The pose thread, the loop's pace, waits for it and runs the pose
# engine's steps (the detector only when tracking is lost). The worker judges the pose beside the
# model's next run: the torso outline the engine left to it, the analysis, and what its events cost
# (the LED and buzzer and voice, the rep log, the live state and preview the page reads).
CAPTURE_STAGES = ("capture",)
POSE_STAGES = ("detector", "crop", "inference", "decode")
PACE_STAGES = ("wait", *POSE_STAGES)  # the pose thread's
WORKER_STAGES = ("outline", "analysis", "signals", "store", "live")
LIVE_STAGES = (*CAPTURE_STAGES, *PACE_STAGES, *WORKER_STAGES)
STAGE_THREADS = {**dict.fromkeys(CAPTURE_STAGES, "capture"), **dict.fromkeys(PACE_STAGES, "pose"),
                 **dict.fromkeys(WORKER_STAGES, "worker")}


@dataclass
class RunSummary:
    frames: int = 0
    dropped: int = 0
    sessions: int = 0
    reps: int = 0
    faults: int = 0
    wall_s: float = 0.0
    signal_latency_ms: list[float] = field(default_factory=list)  # frame captured -> LED/buzzer, per alert
    verdict_latency_ms: list[float] = field(default_factory=list)  # frame captured -> analysed, every frame
    loop_ms: list[float] = field(default_factory=list)
    unwritten: int = 0  # rep-log items that reached neither SQLite nor the pending file (set at close)
    nobody_skipped: int = 0  # camera frames let go while nobody was there (NobodyPacer; set at close)
    stage_ms: dict[str, list[float]] = field(default_factory=lambda: {stage: [] for stage in LIVE_STAGES})
    first_done: Optional[float] = None  # monotonic seconds when the first frame was analysed...
    last_done: Optional[float] = None  # ...and the last

    @property
    def fps(self) -> float:
        """Frames over the whole run, start-up (models warming, the first detection) and close included."""
        return self.frames / self.wall_s if self.wall_s else 0.0

    @property
    def steady_fps(self) -> float:
        """Frames per second from the first analysed frame to the last: the loop's own rate."""
        if self.first_done is None or self.last_done is None or self.last_done <= self.first_done:
            return 0.0
        return (self.frames - 1) / (self.last_done - self.first_done)


# --- the worker -----------------------------------------------------------------------------------


class Station:
    """Wires one frame's journey: pose -> analysis -> signals, rep log and live state.

    Collaborators are passed in so the same loop runs on a Pi, in headless logging, and in tests.
    """

    def __init__(
        self,
        *,
        engine,
        make_analyzer: Callable[[str], Analyzer],
        profile: str,
        replog: RepLog,
        signals: Optional[Signals] = None,
        live: Optional[LiveState] = None,
        notifier: Optional[Notifier] = None,
        idle_timeout_s: float = 20.0,
        preview_fps: float = 3.0,
        camera_preview: bool = False,
        athlete: Optional[str] = None,
        source_id: str = "",
        on_event: Optional[Callable[[AnalysisEvent], None]] = None,
        clock: Callable[[], float] = time.monotonic,
        voice: Optional[Voice] = None,
        phrases: Optional[Callable[[str], list[str]]] = None,
        wall_clock: Callable[[], float] = time.time,
        cues: Optional[CueWords] = None,
        nobody_fps: float = 0.0,
        nobody_after_s: float = 2.0,
    ):
        self.wall_clock = wall_clock  # Unix seconds the rep log is stamped with (tests replay clips on chosen days)
        self.engine = engine
        self.voice = voice  # spoken cues, after the LED and buzzer
        self.phrases = phrases  # drill name -> what the voice may say under it (rendered on a drill change)
        self.make_analyzer = make_analyzer
        self.cues = cues  # the coach's own cue words, which make_analyzer's analyzers read (None: the drills' own)
        self.profile = profile
        self.analyzer = make_analyzer(profile)
        self.replog = replog
        self.storage_note = ""  # a rep-log problem found at start (a damaged file moved aside)
        self.signals = signals
        self.live = live
        self.notifier = notifier or NoNotifier()
        self.idle_timeout_s = idle_timeout_s
        # A live camera's looks while nobody is there (NobodyPacer; 0: every frame). A replay that
        # processes every frame (lossless) always does.
        self.nobody_fps, self.nobody_after_s = nobody_fps, nobody_after_s
        self.preview_interval = 1.0 / preview_fps
        self.camera_preview = camera_preview
        self.athlete = athlete
        self.source_id = source_id
        self.on_event = on_event
        self.clock = clock
        self.stop_event = threading.Event()
        self._commands: "queue.SimpleQueue[Callable[[], None]]" = queue.SimpleQueue()
        self.session: Optional[SessionHandle] = None
        self.summary = RunSummary()
        self._wall_offset: Optional[float] = None
        self._last_ts = 0.0
        self._last_present_ts: Optional[float] = None
        self._last_present_mono = clock()
        self._framing = Framing.NOBODY
        self._camera_error = ""
        self._times = StageTimes()
        self._mailbox: Optional[LatestFrame[Captured]] = None
        self._pose_stage: Optional[PoseStage] = None
        self._last_preview = 0.0
        self._last_status = 0.0
        self._last_fault_mono: Optional[float] = None
        self._fps_window: list[float] = []
        self._frame_ms: Optional[dict[str, float]] = None  # stage times of the frame in hand

    # --- controls (called from the page's threads; applied on the worker) ------------------------

    def set_profile(self, name: str) -> None:
        self.make_analyzer(name)  # validate now so the caller gets the error
        self._commands.put(lambda: self._apply_profile(name))

    def set_buzzer_enabled(self, enabled: bool) -> None:
        self._commands.put(lambda: self._apply_buzzer(enabled))

    def set_athlete(self, label: Optional[str]) -> None:
        self._commands.put(lambda: self._apply_athlete(label))

    def set_voice_enabled(self, enabled: bool) -> None:
        self._commands.put(lambda: self._apply_voice(enabled))

    def set_cues(self, drill: str, cues: dict[str, str]) -> None:
        CueWords().replace(drill, cues)  # validate now so the caller gets the error
        self._commands.put(lambda: self._apply_cues(drill, cues))

    def _apply_profile(self, name: str) -> None:
        if name == self.profile:
            return
        log.info("drill profile: %s -> %s", self.profile, name)
        self.profile = name
        self.replog.setting("profile", name)
        if self.session is not None:
            self._end_session(self._now_ts())  # a session records one drill
        self.analyzer = self.make_analyzer(name)
        self._live(profile=name)
        if self.voice and self.phrases:
            # The new drill's cues are rendered beside the loop, not in it; a cue asked for before
            # its WAV is ready is rendered when it is asked.
            phrases = self.phrases(name)
            threading.Thread(target=self._prepare_voice, args=(self.voice, phrases), name="voice-render",
                             daemon=True).start()

    @staticmethod
    def _prepare_voice(voice: Voice, phrases: list[str]) -> None:
        try:
            voice.prepare(phrases)
        except Exception as err:
            log.warning("could not render the new drill's cues: %s", err)

    def _apply_buzzer(self, enabled: bool) -> None:
        self.replog.setting("buzzer_enabled", enabled)
        if self.signals:
            self.signals.set_buzzer_enabled(enabled)
        self._live(buzzer_enabled=enabled)

    def _apply_voice(self, enabled: bool) -> None:
        if self.voice is None:
            return  # no voice set up here (voice.enabled off, or no espeak-ng or speaker): nothing to switch
        self.replog.setting("voice_enabled", enabled)
        self.voice.enabled = enabled
        self._live(voice_enabled=enabled)

    def _apply_cues(self, drill: str, cues: dict[str, str]) -> None:
        if self.cues is None:
            return  # a station built without cue words (tests, benches) says the drills' own
        self.cues.replace(drill, cues)  # in place: the running analyzer's judge reads it at the next fault
        log.info("cue words for %s: %s", drill, self.cues.to_saved().get(drill, "the drill's own"))
        if self.voice and self.phrases and drill == self.profile:
            threading.Thread(target=self._prepare_voice, args=(self.voice, self.phrases(drill)), name="voice-render",
                             daemon=True).start()

    def _apply_athlete(self, label: Optional[str]) -> None:
        self.athlete = label
        if self.session is not None:
            self.replog.set_athlete(self.session, label)
        self._live(athlete=label)  # the page sees who is up, so renaming or deleting them reaches the station

    # --- lifetime --------------------------------------------------------------------------------

    def stop(self) -> None:
        self.stop_event.set()

    def run(self, make_source: Callable[[], FrameSource], lossless: bool = False, retry_initial_s: float = 0.5, retry_max_s: float = 10.0) -> RunSummary:
        """Run until the source ends or stop() is called; always closes the session and the log."""
        mailbox: LatestFrame[Captured] = LatestFrame(lossless=lossless)
        self._mailbox = mailbox
        grabber = FrameGrabber(make_source, mailbox, self.stop_event, self._camera_status, retry_initial_s, retry_max_s,
                               self.clock, contrast_of=frame_contrast)
        poses: LatestFrame[Posed] = LatestFrame(lossless=True)
        pacer = NobodyPacer(self.nobody_fps, self.nobody_after_s) if self.nobody_fps > 0 and not lossless else None
        pose_stage = PoseStage(self.engine, mailbox, poses, self.stop_event, self.clock, pacer)
        self._pose_stage = pose_stage
        self.replog.device_event("station_start", f"profile={self.profile}")
        self._live(state=StationState.IDLE, profile=self.profile, cue=FRAMING_CUES[Framing.NOBODY], error="",
                   athlete=self.athlete)
        if self.signals:
            self.signals.idle()
        self.notifier.ready()
        started = self.clock()
        grabber.start()
        pose_stage.start()
        try:
            while True:
                self._run_commands()
                # Fed before each wait as well as after it: the worker may wait on the pose thread a
                # while, and a camera and model that are both answering are alive however soon.
                self._feed_watchdog(grabber, pose_stage)
                posed = poses.get(timeout=0.25)
                self._feed_watchdog(grabber, pose_stage)
                if posed is END_OF_STREAM:
                    break
                if posed is None:
                    self._on_no_frame()
                    continue
                self._process(posed)
        finally:
            self.stop_event.set()
            grabber.join(timeout=5)
            pose_stage.join(timeout=5)
            self.notifier.stopping()
            self.summary.wall_s = self.clock() - started
            self.summary.dropped = mailbox.dropped
            self.summary.nobody_skipped = pacer.skipped if pacer is not None else 0
            self._finish()
        if grabber.fatal is not None:
            raise grabber.fatal
        if pose_stage.fatal is not None:
            raise pose_stage.fatal
        return self.summary

    def _feed_watchdog(self, grabber: FrameGrabber, pose_stage: PoseStage) -> None:
        """systemd's watchdog is fed while the camera and the model both answer: a read or an
        inference that hangs starves it, and systemd restarts the station."""
        now = self.clock()
        if now - grabber.last_activity < CAPTURE_HANG_S and now - pose_stage.last_activity < CAPTURE_HANG_S:
            self.notifier.ping()

    def _finish(self) -> None:
        if self._last_present_ts is not None:
            for event in self.analyzer.finish(self._now_ts()):
                self._handle(event, None)
        if self.session is not None:
            self._end_session(self._now_ts())
        self.replog.device_event("station_stop", f"frames={self.summary.frames} reps={self.summary.reps}")
        self._live(state=StationState.STOPPED, cue="")
        if self.signals:
            self.signals.idle()

    def _run_commands(self) -> None:
        while True:
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                return
            command()

    # --- per frame -------------------------------------------------------------------------------

    def _now_ts(self) -> float:
        return self._last_ts

    @contextmanager
    def _stage(self, stage: str) -> Iterator[None]:
        """Adds the block's time to `stage` of the frame in hand (nothing between frames)."""
        started = self.clock()
        try:
            yield
        finally:
            if self._frame_ms is not None:
                self._frame_ms[stage] += (self.clock() - started) * 1000

    def _process(self, posed: Posed) -> None:
        item, pose = posed.item, posed.pose
        frame = item.frame
        t_start = posed.started
        self._frame_ms = dict.fromkeys(WORKER_STAGES, 0.0)
        if self._wall_offset is None:
            self._wall_offset = self.wall_clock() - frame.timestamp
        self._last_ts = frame.timestamp
        with self._stage("outline"):
            posed.finish()  # the pose's outline, before the analysis reads it
        t_pose = self.clock()
        events = self.analyzer.update(pose)
        t_analysis = self.clock()
        analysis_ms = self._frame_ms["analysis"] = (t_analysis - t_pose) * 1000

        present = pose.found
        if present:
            self._last_present_ts = frame.timestamp
            self._last_present_mono = t_start
            if self.session is None:
                self._start_session(frame.timestamp)
        for event in events:
            self._handle(event, item)
        if self.session is not None and not present and self._last_present_ts is not None:
            if frame.timestamp - self._last_present_ts > self.idle_timeout_s:
                self._end_session(frame.timestamp)

        t_end = self.clock()
        self._times.wait_ms.append((t_start - item.received) * 1000)
        self._times.pose_ms.append((posed.done - t_start) * 1000)
        self._times.analysis_ms.append(analysis_ms)
        self._times.loop_ms.append((t_end - t_start) * 1000)
        self.summary.frames += 1
        self.summary.loop_ms.append((t_end - t_start) * 1000)
        self.summary.verdict_latency_ms.append((t_end - item.received) * 1000)
        self._fps_window.append(t_end)
        with self._stage("live"):
            self._maybe_preview(frame, pose, t_end)
        self._maybe_status(t_end)
        stage_ms = self.summary.stage_ms
        stage_ms["capture"].append(item.capture_ms)
        stage_ms["wait"].append(posed.waited_ms)
        for stage in POSE_STAGES:
            stage_ms[stage].append(pose.timings_ms.get(f"{stage}_ms", 0.0))
        for stage, ms in self._frame_ms.items():
            stage_ms[stage].append(ms)
        self._frame_ms = None
        if self.summary.first_done is None:
            self.summary.first_done = self.clock()
        self.summary.last_done = self.clock()

    def _on_no_frame(self) -> None:
        """No frame for a while (camera lost or slow): still end a session nobody is in."""
        if self.session is not None and self.clock() - self._last_present_mono > self.idle_timeout_s:
            self._end_session(self._now_ts())
        self.replog.flush()

    def _handle(self, event: AnalysisEvent, item: Optional[Captured]) -> None:
        if isinstance(event, FaultRaised):
            self.summary.faults += 1
            if self.signals:
                with self._stage("signals"):
                    self.signals.fault(event.event.fault.value)
            if item is not None:
                latency = (self.clock() - item.received) * 1000
                self._times.signal_latency_ms.append(latency)
                self.summary.signal_latency_ms.append(latency)
            if self.voice:  # after the LED and buzzer: it only queues the cue
                with self._stage("signals"):
                    self.voice.fault(event.event.fault.value, event.event.cue)
            self._last_fault_mono = self.clock()
            self._live(state=StationState.FAULT, last_fault=event.event.fault.value, last_fault_cue=event.event.cue,
                       last_fault_at=event.time + (self._wall_offset or 0.0), cue=event.event.cue)
        elif isinstance(event, RepFinished):
            self._rep_finished(event)
        elif isinstance(event, FramingChanged):
            self._framing_changed(event)
        elif isinstance(event, RepStarted):
            self._live(phase="lowering")
        if self.on_event:
            self.on_event(event)

    def _rep_finished(self, event: RepFinished) -> None:
        rep = event.rep
        if self.session is None:
            self._start_session(rep.start_time)
        assert self.session is not None
        with self._stage("signals"):
            if self.signals:
                self.signals.rep_finished(rep.clean, buzzed=bool(rep.faults))
            if self.voice:
                self.voice.rep_finished(rep.clean, buzzed=bool(rep.faults))
        dropped = self._mailbox.dropped if self._mailbox else 0
        timings = self._times.summary(dropped)
        self._times = StageTimes(dropped_at_start=dropped)
        self.summary.reps += 1
        session = self.session
        rep_line = (f"rep {rep.index} ({self.profile}): {', '.join(rep.fault_names) or rep.verdict}; pose {timings['pose_ms_median']} ms, "
                    f"analysis {timings['analysis_ms_median']} ms, loop {timings['loop_ms_median']} ms, "
                    f"frame-to-signal {timings['frame_to_signal_ms'] or '-'} ms")

        def written(rep_id: Optional[int]) -> None:
            log.info("%s; logged as #%s", rep_line, rep_id)  # said only once it is on disk
            self._live(last_rep_id=rep_id)

        with self._stage("store"):
            self.replog.add_rep(session, rep, self._wall_offset or 0.0, timings, on_written=written)
        if self.replog.paused:
            log.info("%s; queued until logging resumes", rep_line)
        self._live(session_reps=session.reps, phase="", logging_paused=self.replog.paused,
                   storage=self.replog.status or self.storage_note)

    def _framing_changed(self, event: FramingChanged) -> None:
        self._framing = event.framing
        self._show_framing()
        if self.voice and event.framing in (Framing.FACING_CAMERA, Framing.OUT_OF_FRAME) and not self._camera_error:
            self.voice.framing(event.cue)

    def _show_framing(self) -> None:
        if self._camera_error:
            return
        framing = self._framing
        state = {
            Framing.NOBODY: StationState.IDLE,
            Framing.OK: StationState.TRACKING,
            Framing.UNRELIABLE: StationState.TRACKING,
            Framing.FACING_CAMERA: StationState.TURN_SIDEWAYS,
            Framing.OUT_OF_FRAME: StationState.OUT_OF_FRAME,
        }[framing]
        if self.signals:
            with self._stage("signals"):
                {StationState.IDLE: self.signals.idle, StationState.TRACKING: self.signals.tracking,
                 StationState.TURN_SIDEWAYS: self.signals.turn_sideways,
                 StationState.OUT_OF_FRAME: self.signals.out_of_frame}[state]()
        self._live(state=state, cue=FRAMING_CUES[framing])

    # --- sessions --------------------------------------------------------------------------------

    def _start_session(self, ts: float) -> None:
        wall = ts + (self._wall_offset or self.wall_clock() - ts)
        with self._stage("store"):
            self.session = self.replog.start_session(wall, self.profile, self.source_id, self.athlete)
        self.summary.sessions += 1
        if self.voice:
            self.voice.new_session()
        log.info("session started (%s)", self.profile)
        self._live(session_id=None, session_reps=0, last_fault=None, last_fault_cue="", last_rep_id=None)
        self._live_session_id()

    def _live_session_id(self) -> None:
        if self.session is not None and self.session.db_id is not None:
            self._live(session_id=self.session.db_id)

    def _end_session(self, ts: float) -> None:
        if self.session is None:
            return
        with self._stage("store"):
            self.replog.end_session(self.session, ts + (self._wall_offset or 0.0))
        log.info("session ended after %d reps", self.session.reps)
        self.session = None
        self.analyzer = self.make_analyzer(self.profile)  # the next athlete starts fresh
        self._live(session_id=None, session_reps=0, phase="")

    # --- device faults ---------------------------------------------------------------------------

    def _camera_status(self, kind: str, detail: str) -> None:
        """Called from the capture thread; the rep log is written on the worker."""
        self._commands.put(lambda: self.replog.device_event(kind, detail))
        if kind == "camera_lost":
            self._camera_error = detail
            if self.signals:
                self.signals.error()
            self._live(state=StationState.ERROR, error=f"camera: {detail}", cue="camera lost, retrying")
            self.notifier.status(f"camera lost: {detail}")
        else:
            self._camera_error = ""
            self._commands.put(self._after_camera_back)
            self.notifier.status("camera back")

    def _after_camera_back(self) -> None:
        if self._pose_stage is not None:  # the run whose camera came back has its pose thread
            self._pose_stage.reset()  # the engine is the pose thread's: it forgets before its next frame
        self._live(error="")
        self._show_framing()

    # --- live view -------------------------------------------------------------------------------

    def _live(self, **changes: Any) -> None:
        if self.live is not None:
            with self._stage("live"):
                self.live.update(**changes)

    def _maybe_preview(self, frame: Frame, pose: Pose, now: float) -> None:
        if self.live is None or now - self._last_preview < self.preview_interval or not self.live.preview_wanted():
            return
        self._last_preview = now
        height, width = frame.image.shape[:2]
        scale = min(1.0, PREVIEW_MAX_SIDE / max(height, width))
        size = (round(width * scale), round(height * scale))
        if self.camera_preview:
            bgr = cv2.cvtColor(cv2.resize(frame.image, size, interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2BGR)
        else:  # privacy by default: the skeleton alone, no camera pixels
            bgr = np.full((size[1], size[0], 3), 32, np.uint8)
        draw_pose(bgr, _scaled(pose, scale) if scale < 1 else pose)
        ok, jpeg = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 70])
        if ok:
            self.live.set_preview(jpeg.tobytes())

    def _maybe_status(self, now: float) -> None:
        if now - self._last_status < STATUS_INTERVAL_S:
            return
        self._last_status = now
        window = [t for t in self._fps_window if now - t <= 2.0]
        self._fps_window = window
        fps = len(window) / 2.0 if window else 0.0
        self._live_session_id()
        changes: dict[str, Any] = {"fps": round(fps, 1), "logging_paused": self.replog.paused,
                                   "storage": self.replog.status or self.storage_note}
        if self._last_fault_mono is not None and now - self._last_fault_mono > 1.5 and not self._camera_error:
            self._last_fault_mono = None
            self._show_framing()
        self._live(**changes)
        with self._stage("store"):
            self.replog.flush()


def _scaled(pose: Pose, scale: float) -> Pose:
    lm = pose.landmarks.copy()
    lm[:, :3] *= scale
    return Pose(pose.timestamp, lm, pose.presence, pose.detector_ran, pose.image_size, pose.roi)
