"""The live loop: a capture thread that keeps only the newest frame, and a worker that runs
pose -> analysis -> signals and rep log for each frame it takes.

An alert must be about now, so frames that arrive while the model is busy are dropped, not queued
(a clip replayed with `--fast` is the exception: there every frame is processed). Every stage is
timed; per rep the station logs its stage times and the frame-to-signal latency of each alert.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Protocol

import cv2
import numpy as np

from device.pose.draw import draw_pose
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


END_OF_STREAM = object()


class LatestFrame:
    """A one-slot mailbox: a new frame replaces an untaken one (counted as dropped). With
    `lossless=True` the producer waits instead, so a fast replay processes every frame."""

    def __init__(self, lossless: bool = False):
        self.lossless = lossless
        self.dropped = 0
        self._cond = threading.Condition()
        self._item: Optional[Captured] = None
        self._closed = False

    def put(self, item: Captured, stop: threading.Event) -> None:
        with self._cond:
            if self.lossless:
                while self._item is not None and not stop.is_set():
                    self._cond.wait(0.1)
            elif self._item is not None:
                self.dropped += 1
            self._item = item
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def get(self, timeout: float):
        """The newest frame, None on timeout, or END_OF_STREAM once closed and drained."""
        with self._cond:
            self._cond.wait_for(lambda: self._item is not None or self._closed, timeout)
            if self._item is not None:
                item, self._item = self._item, None
                self._cond.notify_all()
                return item
            return END_OF_STREAM if self._closed else None


class FrameGrabber(threading.Thread):
    """Reads the source on its own thread. A live camera that fails (missing, unplugged) is
    reopened with exponential backoff until it is back; a clip that cannot be opened is fatal."""

    def __init__(
        self,
        make_source: Callable[[], FrameSource],
        mailbox: LatestFrame,
        stop: threading.Event,
        on_status: Callable[[str, str], None],
        retry_initial_s: float = 0.5,
        retry_max_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        super().__init__(name="capture", daemon=True)
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
                        frame = source.read()
                        self.last_activity = self.clock()
                        if frame is None:
                            return
                        self.frames += 1
                        self.mailbox.put(Captured(frame, self.clock()), self.stop)
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

    @property
    def fps(self) -> float:
        return self.frames / self.wall_s if self.wall_s else 0.0


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
        self._mailbox: Optional[LatestFrame] = None
        self._last_preview = 0.0
        self._last_status = 0.0
        self._last_fault_mono: Optional[float] = None
        self._fps_window: list[float] = []

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
        mailbox = LatestFrame(lossless=lossless)
        self._mailbox = mailbox
        grabber = FrameGrabber(make_source, mailbox, self.stop_event, self._camera_status, retry_initial_s, retry_max_s, self.clock)
        self.replog.device_event("station_start", f"profile={self.profile}")
        self._live(state=StationState.IDLE, profile=self.profile, cue=FRAMING_CUES[Framing.NOBODY], error="",
                   athlete=self.athlete)
        if self.signals:
            self.signals.idle()
        self.notifier.ready()
        started = self.clock()
        grabber.start()
        try:
            while True:
                self._run_commands()
                item = mailbox.get(timeout=0.25)
                if self.clock() - grabber.last_activity < CAPTURE_HANG_S:
                    self.notifier.ping()
                if item is END_OF_STREAM:
                    break
                if item is None:
                    self._on_no_frame()
                    continue
                self._process(item)
        finally:
            self.stop_event.set()
            grabber.join(timeout=5)
            self.notifier.stopping()
            self.summary.wall_s = self.clock() - started
            self.summary.dropped = mailbox.dropped
            self._finish()
        if grabber.fatal is not None:
            raise grabber.fatal
        return self.summary

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

    def _process(self, item: Captured) -> None:
        frame = item.frame
        t_start = self.clock()
        if self._wall_offset is None:
            self._wall_offset = self.wall_clock() - frame.timestamp
        self._last_ts = frame.timestamp
        pose = self.engine.process(frame.image, frame.timestamp)
        t_pose = self.clock()
        events = self.analyzer.update(pose)
        t_analysis = self.clock()

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
        self._times.pose_ms.append((t_pose - t_start) * 1000)
        self._times.analysis_ms.append((t_analysis - t_pose) * 1000)
        self._times.loop_ms.append((t_end - t_start) * 1000)
        self.summary.frames += 1
        self.summary.loop_ms.append((t_end - t_start) * 1000)
        self.summary.verdict_latency_ms.append((t_end - item.received) * 1000)
        self._fps_window.append(t_end)
        self._maybe_preview(frame, pose, t_end)
        self._maybe_status(t_end)

    def _on_no_frame(self) -> None:
        """No frame for a while (camera lost or slow): still end a session nobody is in."""
        if self.session is not None and self.clock() - self._last_present_mono > self.idle_timeout_s:
            self._end_session(self._now_ts())
        self.replog.flush()

    def _handle(self, event: AnalysisEvent, item: Optional[Captured]) -> None:
        if isinstance(event, FaultRaised):
            self.summary.faults += 1
            if self.signals:
                self.signals.fault(event.event.fault.value)
            if item is not None:
                latency = (self.clock() - item.received) * 1000
                self._times.signal_latency_ms.append(latency)
                self.summary.signal_latency_ms.append(latency)
            if self.voice:  # after the LED and buzzer: it only queues the cue
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
        if self.signals:
            self.signals.rep_finished(rep.clean)
        if self.voice:
            self.voice.rep_finished(rep.clean)
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
            {StationState.IDLE: self.signals.idle, StationState.TRACKING: self.signals.tracking,
             StationState.TURN_SIDEWAYS: self.signals.turn_sideways,
             StationState.OUT_OF_FRAME: self.signals.out_of_frame}[state]()
        self._live(state=state, cue=FRAMING_CUES[framing])

    # --- sessions --------------------------------------------------------------------------------

    def _start_session(self, ts: float) -> None:
        wall = ts + (self._wall_offset or self.wall_clock() - ts)
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
        self.engine.reset()
        self._live(error="")
        self._show_framing()

    # --- live view -------------------------------------------------------------------------------

    def _live(self, **changes: Any) -> None:
        if self.live is not None:
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
        self.replog.flush()


def _scaled(pose: Pose, scale: float) -> Pose:
    lm = pose.landmarks.copy()
    lm[:, :3] *= scale
    return Pose(pose.timestamp, lm, pose.presence, pose.detector_ran, pose.image_size, pose.roi)
