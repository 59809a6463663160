"""`station bench`: where the time goes, measured in one run on one clip.

Each section is a function (settings, context) -> rows; the command prints one table per section
and writes the same rows under the section's name with `--json`; a new section appends to
SECTIONS. Timings are only compared within one run: the bare models are called round-robin on the
same real inputs, so load from anything else hits them alike. The live loop is wired by
`build_station`, as `station run` wires it; the page section's load generator is bench_page.py and
its 10,000-rep log comes from sample_log.py.
"""
from __future__ import annotations

import argparse
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from device.capture.base import Frame, FrameSource
from device.commands.tables import print_table, write_json
from device.config import Settings
from device.errors import ConfigError, ModelError
from device.pose.engine import PoseEngine
from device.pose.tflite import TFLiteModel
from device.stats import median, percentile

MAX_INPUTS = 40  # real inputs per bare-model timing; enough for a stable median
ROUNDS = 3


@dataclass
class BenchContext:
    """What the sections share: the clip, its real model inputs, and the variants to compare."""

    clip: Path
    settings: Settings
    detector_inputs: list[np.ndarray] = field(default_factory=list)
    landmark_inputs: list[np.ndarray] = field(default_factory=list)
    variants: dict[str, Path] = field(default_factory=dict)  # landmark variant name -> verified file
    selected: str = "float16"
    bare_landmark_ms: dict[str, float] = field(default_factory=dict)
    live_stages: dict[str, list[float]] = field(default_factory=dict)  # the live loop's (a Pi's way) ms per frame and stage
    live_frame_ms: Optional[float] = None  # its steady ms per frame
    thread_ms: dict[int, float] = field(default_factory=dict)  # the selected model's ms per interpreter thread count
    detector_share: float = 0.0  # share of the clip's frames the detector ran on
    budget_basis: dict[str, float] = field(default_factory=dict)  # the Pi budget's measured inputs
    poses: list = field(default_factory=list)  # the float16 engine's poses of the clip, for the analysis section
    frames: list = field(default_factory=list)  # the clip's decoded frames, handed over as a camera does (CameraLike)


class _Recorder:
    """Stands in for a TFLiteModel and keeps a copy of every input it is given."""

    def __init__(self, model: TFLiteModel):
        self._model = model
        self.inputs: list[np.ndarray] = []

    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        self.inputs.append(np.array(tensor[0], np.float32))
        return self._model.run(tensor)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


def _engine(settings: Settings, variant: str) -> PoseEngine:
    models = settings.models.model_copy(update={"landmark_variant": variant})
    return PoseEngine.from_settings(settings.model_copy(update={"models": models}))


def _spread(items: list, n: int) -> list:
    if len(items) <= n:
        return items
    return [items[i] for i in np.linspace(0, len(items) - 1, n).astype(int)]


def prepare(settings: Settings, clip: Path) -> BenchContext:
    """Run the float16 engine over the clip once, keeping the real detector and landmark inputs
    (the detector also runs on every frame here, purely to record its real inputs)."""
    from device.pose.engine import iter_poses
    from device.capture.file import VideoFileSource
    from device.pose.model_files import SHIPPED_VARIANT, read_quantized_record, resolve_models

    context = BenchContext(clip=clip, settings=settings)
    engine = _engine(settings, SHIPPED_VARIANT)
    detector = _Recorder(engine.detector.model)
    # A recording stand-in for the detector's TFLiteModel (it passes every call through): duck-typed, not a subclass.
    engine.detector.model = detector  # type: ignore[assignment]
    with VideoFileSource(clip) as source:
        for frame, pose in iter_poses(engine, source):
            context.poses.append(pose)
            context.detector_share += pose.detector_ran
            if pose.found and pose.roi is not None:
                context.landmark_inputs.append(engine.landmarks.crop(frame.image, pose.roi))
            context.frames.append(frame)
    for image in _spread([frame.image for frame in context.frames], MAX_INPUTS):
        engine.detector.detect(image)
    context.detector_share /= max(len(context.poses), 1)
    context.detector_inputs = _spread(detector.inputs, MAX_INPUTS)
    context.landmark_inputs = _spread(context.landmark_inputs, MAX_INPUTS)
    if not context.landmark_inputs:
        raise ModelError(f"no person found in {clip}; bench needs a clip with someone in view")

    models_dir = settings.models_dir
    context.variants[SHIPPED_VARIANT] = resolve_models(models_dir, SHIPPED_VARIANT).landmark
    record = read_quantized_record(models_dir) or {}
    for entry in record.get("variants", []):
        context.variants[entry["name"]] = resolve_models(models_dir, entry["name"]).landmark
    context.selected = resolve_models(models_dir, settings.models.landmark_variant).landmark_variant
    return context


def bench_models(context: BenchContext) -> list[dict[str, Any]]:
    """Bare model calls: the detector and every landmark variant, on the clip's real inputs."""
    from device.pose.tflite import time_models
    from device.pose.model_files import load_manifest

    settings = context.settings
    threads, runtime = settings.models.threads, settings.models.runtime
    detector_path = settings.models_dir / load_manifest().by_role("detector").file
    paths = {"detector": detector_path}
    inputs = {"detector": context.detector_inputs}
    for name, path in context.variants.items():
        paths[f"landmark {name}"] = path
        inputs[f"landmark {name}"] = context.landmark_inputs
    ms = time_models(paths, inputs, rounds=ROUNDS, threads=threads, runtime=runtime)
    context.bare_landmark_ms = {name: ms[f"landmark {name}"] for name in context.variants}
    float16_ms = ms["landmark float16"]
    rows = [{"model": "detector", "variant": "float32", "ms_per_frame": round(ms["detector"], 2), "speedup": None,
             "inputs": len(context.detector_inputs), "selected": None}]
    for name in context.variants:
        rows.append({"model": "landmark", "variant": name, "ms_per_frame": round(ms[f"landmark {name}"], 2),
                     "speedup": round(float16_ms / ms[f"landmark {name}"], 2), "inputs": len(context.landmark_inputs),
                     "selected": name == context.selected})
    return rows


def bench_pipeline(context: BenchContext) -> list[dict[str, Any]]:
    """The whole replay (decode, detector when tracking is lost, crop, landmarks, refinement) with
    the variant the station uses (models.landmark_variant, 'auto' by default), and with float16
    when that differs."""
    from device.commands.replay import replay_clip

    rows = []
    for variant in dict.fromkeys([context.selected, "float16"]):
        engine = _engine(context.settings, variant)
        summary = replay_clip(engine, context.clip)
        fps = summary.frames / summary.wall_seconds
        ms = 1000.0 / fps
        bare = context.bare_landmark_ms.get(variant)
        rows.append({
            "variant": variant, "frames": summary.frames, "fps": round(fps, 1), "ms_per_frame": round(ms, 2),
            "pipeline_per_bare_landmark": round(ms / bare, 2) if bare else None,
            "detector_run_pct": round(100 * summary.detector_runs / summary.frames, 1),
        })
    return rows


def bench_analysis(context: BenchContext) -> list[dict[str, Any]]:
    """Kinematics, framing, rep counting and fault rules alone, per frame, on the clip's real poses."""
    import time

    from device.station.assembly import analyzer_factory

    settings = context.settings
    analyzer = analyzer_factory(settings)(settings.analysis.profile)
    ms = []
    for pose in context.poses:
        t0 = time.perf_counter()
        analyzer.update(pose)
        ms.append((time.perf_counter() - t0) * 1000)
    return [{"profile": settings.analysis.profile, "frames": len(ms), "analysis_ms_median": median(ms, 3),
             "analysis_ms_p99": percentile(ms, 99, 3), "analysis_ms_max": round(max(ms), 3)}]


class CameraLike(FrameSource):
    """A clip's frames decoded beforehand, each handed over as a fresh copy (as picamera2's
    capture_array copies the camera's buffer): a camera's frames come from its image processor,
    not a video decoder, and a clip's decoder takes the very cores the model runs on."""

    live = False

    def __init__(self, frames: list[Frame], source_id: str):
        self.frames, self.source_id = frames, source_id
        self._next = 0

    def start(self) -> None:
        self._next = 0

    def stop(self) -> None:
        pass

    def read(self) -> Optional[Frame]:
        if self._next >= len(self.frames):
            return None
        frame = self.frames[self._next]
        self._next += 1
        return Frame(frame.timestamp, frame.image.copy(), self.source_id, frame.index)


def run_live_loop(settings: Settings, clip: Path, db_path: Path, fast: bool, speaker=None,
                  frames: Optional[list[Frame]] = None):
    """The real live loop (pose, analysis, mock LED and buzzer, SQLite at `db_path`) over a clip,
    wired as `station run` wires it: as fast as it goes with every frame (`fast`), or at the clip's
    own rate as a camera would deliver it. With `speaker`, spoken cues go to it (voice on). With
    `frames` (the clip's, decoded beforehand), no decoder runs beside the loop (CameraLike)."""
    from gpiozero.pins.mock import MockFactory, MockPWMPin

    from device.station.assembly import build_station

    # MQTT off: a benchmark's reps are not a workout, and must never reach the gym's hub.
    settings = settings.model_copy(update={"store": settings.store.model_copy(update={"db_path": db_path}),
                                           "voice": settings.voice.model_copy(update={"enabled": speaker is not None}),
                                           "mqtt": settings.mqtt.model_copy(update={"host": None})})
    make_source = None if frames is None else (lambda: CameraLike(frames, f"camera-like:{clip.name}"))
    with build_station(settings, str(clip), fast=fast, pin_factory=MockFactory(pin_class=MockPWMPin),
                       speaker=speaker, make_source=make_source) as rig:
        summary = rig.run()
        if speaker is not None:
            speaker.drain(15.0)  # the last cue, before the station closes
        return summary


def bench_stages(context: BenchContext) -> list[dict[str, Any]]:
    """Where the flat-out live loop's frames went (the `live` section's run the Pi's way: a core
    left to the loop, no video decoder), stage by stage and thread by thread: the median and mean
    ms per frame and the mean's share of the loop's steady frame time. The pose thread sets the
    pace; `other` is its time no stage accounts for (handing frames and poses on, the interpreter
    waiting for a core). The capture and worker threads run beside it: their shares overlap the
    pose thread's, and a loop keeps the model's pace while each stays below 100%."""
    from device.station.loop import LIVE_STAGES, PACE_STAGES, STAGE_THREADS

    stages, frame_ms = context.live_stages, context.live_frame_ms
    if not stages or not frame_ms:
        bench_live(context)
        stages, frame_ms = context.live_stages, context.live_frame_ms
    if not stages or not frame_ms:
        raise ModelError("the live loop analysed no frame of the clip")
    rows = []
    for stage in LIVE_STAGES:
        values = stages[stage]
        mean = float(np.mean(values)) if values else 0.0
        rows.append({"stage": stage, "thread": STAGE_THREADS[stage], "ms_median": median(values, 2),
                     "ms_mean": round(mean, 2), "share_of_frame_pct": round(100 * mean / frame_ms, 1)})
    paced = sum(float(np.mean(stages[s])) for s in PACE_STAGES if stages[s])
    rows.append({"stage": "other", "thread": "pose", "ms_median": None, "ms_mean": round(frame_ms - paced, 2),
                 "share_of_frame_pct": round(100 * (frame_ms - paced) / frame_ms, 1)})
    rows.append({"stage": "frame (steady)", "thread": "pose", "ms_median": None, "ms_mean": round(frame_ms, 2),
                 "share_of_frame_pct": 100.0})
    return rows


# --- the Pi 4 budget ---------------------------------------------------------------------------
#
# XNNPACK's README (https://github.com/google/XNNPACK#raspberry-pi, benchmarked 12 February 2020 with
# end2end-bench, multi-threaded on all 4 cores) gives a Raspberry Pi 4 (BCM2711) 44 ms for MobileNet v2
# 1.0 and 75 ms for MobileNet v1 1.0; those networks take 300 M and 569 M multiply-accumulates
# (Sandler et al. 2018, arXiv:1801.04381; Howard et al. 2017, arXiv:1704.04861). MobileNet v2 is
# BlazePose's own kind of network (inverted residual blocks of depthwise convolutions, a few
# hundred M MACs), so its rate is the estimate; v1's (7.6 G MAC/s) would be kinder and is not used.
PI4_MACS_PER_S_4_THREADS = 300e6 / 0.044  # 6.8 G MAC/s
PI4_CORES = 4
# How much of such a network runs in parallel on a 4-core ARM: the same README (its Pixel tables)
# times MobileNet v2 1.0 on a Pixel 2 (4 big cores) at 53 ms on one thread and 18 ms on four, a
# 2.94x speed-up: Amdahl's parallel share 0.88. The Pi's one-thread rate is taken from it. (This
# machine's own 1-to-2-thread share, shown as parallel_share_here, moved from 0.32 to 1.0 with the
# load of the machine between runs, and the Pi estimate with it from 13.5 to 9 fps.)
ARM_4_CORE_SPEEDUP = 53.0 / 18.0
# The interpreter's threads on a Pi 4: one core is left to the rest of the loop (the worker judging
# the last pose, the capture thread, the niced page process). On this project's 2-core machine any
# thread beside the interpreter's made the model itself 20-50% slower inside the live loop than
# alone (`station bench` stages against bare); a fourth interpreter thread would fight the worker
# the same way for Amdahl's last few percent (see the budget basis).
PI4_THREADS = 3
CAMERA_FPS = 30.0  # the camera's rate caps what is analysed, however fast the model
SCHEDULES = (("every camera frame", CAMERA_FPS), ("15 fps", 15.0), ("10 fps", 10.0))
LOWERING_S = 1.0  # a brisk lowering: the fewest frames a rep's faults are judged on
# The pose thread's work between two runs of the model. The torso outline is the worker's (it reads
# a copy of the mask while the model runs on the next frame), on the core the interpreter leaves.
BESIDE_MODEL = ("crop", "decode")


def amdahl_parallel_share(speedup_2: float) -> float:
    """The share of the model's work that runs in parallel, from its measured speed-up on 2 threads
    (Amdahl: speedup(n) = 1 / ((1 - p) + p / n)), clamped to [0, 1]."""
    return min(1.0, max(0.0, 2.0 * (1.0 - 1.0 / speedup_2)))


def amdahl_speedup(parallel: float, threads: int) -> float:
    return 1.0 / ((1.0 - parallel) + parallel / threads)


def arm_parallel_share(speedup: float = ARM_4_CORE_SPEEDUP, threads: int = 4) -> float:
    """Amdahl's parallel share from a published speed-up on `threads` threads."""
    return (1.0 - 1.0 / speedup) / (1.0 - 1.0 / threads)


def pi4_one_thread_rate(parallel: float) -> float:
    """A Pi 4 core's MACs per second on one thread: the published 4-thread rate scaled down by
    Amdahl's law with the parallel share `parallel`."""
    return PI4_MACS_PER_S_4_THREADS / amdahl_speedup(parallel, PI4_CORES)


def pi4_model_ms(macs: float, threads: int, parallel: float) -> float:
    """Estimated Pi 4 ms per inference on `threads` threads: the one-thread rate scaled back up to
    `threads` by Amdahl's law with the parallel share `parallel`."""
    return macs / (pi4_one_thread_rate(parallel) * amdahl_speedup(parallel, threads)) * 1000


def bench_threads(context: BenchContext) -> list[dict[str, Any]]:
    """The selected landmark model on 1 to 4 interpreter threads on the clip's real inputs: the x86
    scaling the thread choice starts from. The counts are timed in turn, twice over, and each keeps
    its lower median (the one less disturbed by the rest of the machine). Past this machine's cores a
    thread only waits for a core, so those rows show oversubscription, not scaling."""
    from device.pose.tflite import time_models

    counts = range(1, PI4_CORES + 1)
    path, inputs = context.variants[context.selected], context.landmark_inputs[:MAX_INPUTS // 2]
    ms: dict[int, list[float]] = {n: [] for n in counts}
    for _ in range(2):
        for n in counts:
            ms[n].append(time_models({"landmark": path}, inputs, rounds=1, threads=n,
                                     runtime=context.settings.models.runtime)["landmark"])
    context.thread_ms = {n: min(ms[n]) for n in counts}
    cores = os.cpu_count() or 1
    return [{"variant": context.selected, "threads": n, "ms_per_frame": round(context.thread_ms[n], 2),
             "speedup_vs_1_thread": round(context.thread_ms[1] / context.thread_ms[n], 2),
             "past_this_machines_cores": n > cores} for n in counts]


def bench_budget(context: BenchContext) -> list[dict[str, Any]]:
    """The Pi 4 budget per landmark variant, thread count and schedule, on paper: each model's MACs
    (recorded by `station models quantize`) at XNNPACK's published Pi 4 rate, scaled across threads
    by the parallel share from XNNPACK's published 4-core ARM speed-up (ARM_4_CORE_SPEEDUP); plus the
    pose thread's own work beside the model (crop, decoding: measured here in the `stages` run,
    scaled by how much slower a Pi 4 core does the model's arithmetic than this machine's) and the
    detector at the share of frames it ran on. The worker's torso outline and analysis run beside the
    model on a core of its own while the interpreter leaves one (threads <= 3). Frames in a 1 s
    lowering: what the schedule asks for, if the Pi keeps up. Emulated timings mean nothing here; a
    Pi's own `station bench` replaces this."""
    from device.pose.model_files import read_quantized_record

    record = read_quantized_record(context.settings.models_dir) or {}
    macs = record.get("macs") or {}
    if not macs:
        raise ModelError("the quantized record has no MAC counts: run `station models quantize` (it records them)")
    if not context.thread_ms:
        bench_threads(context)
    if not context.live_stages:
        bench_live(context)
    thread_ms = context.thread_ms
    parallel = arm_parallel_share()
    # The pose thread's own work beside the model here (the analysis runs on the worker meanwhile),
    # and how much slower a Pi 4 core is: this machine's one-thread MAC rate on the selected model
    # against the Pi's one-thread estimate.
    beside_ms = sum(float(np.median(context.live_stages[s])) for s in BESIDE_MODEL if context.live_stages[s])
    here_rate = macs[context.selected] / (thread_ms[1] / 1000)
    slower = here_rate / pi4_one_thread_rate(parallel)
    detector_share = context.detector_share
    detector_ms = pi4_model_ms(macs["detector"], PI4_THREADS, parallel)
    rows = []
    for variant in context.variants:
        if variant not in macs:
            continue
        model_ms = pi4_model_ms(macs[variant], PI4_THREADS, parallel)
        frame_ms = model_ms + detector_share * detector_ms + beside_ms * slower
        fps = 1000.0 / frame_ms
        for schedule, asked in SCHEDULES:
            rows.append({
                "variant": variant, "schedule": schedule, "threads": PI4_THREADS, "mmacs": round(macs[variant] / 1e6, 1),
                "pi4_model_ms": round(model_ms, 1), "pi4_frame_ms": round(frame_ms, 1), "pi4_fps": round(min(fps, asked), 1),
                "keeps_up": fps >= asked, "frames_in_1s_lowering": int(min(fps, asked) * LOWERING_S),
                "selected": variant == context.selected,
            })
    context.budget_basis = {"parallel_share": round(parallel, 3),
                            "parallel_share_here": round(amdahl_parallel_share(thread_ms[1] / thread_ms[2]), 3),
                            "beside_ms_here": round(beside_ms, 2),
                            "pi4_core_slower_by": round(slower, 2), "detector_share": round(detector_share, 3),
                            **{f"pi4_model_ms_{n}_threads": round(pi4_model_ms(macs[context.selected], n, parallel), 1)
                               for n in range(1, PI4_CORES + 1)}}
    return rows


def bench_voice(context: BenchContext) -> list[dict[str, Any]]:
    """The live loop paced at the clip's rate, voice off and on: LED/buzzer latency both ways, and
    from frame capture to the start of the spoken cue (frame to buzzer, plus the speaker's wait from
    being asked to playing, which includes waiting for a phrase still playing). The speaker records
    instead of playing (so the machine needs no sound card); it takes each WAV's real duration."""
    import tempfile

    from device.station.voice import RecordingSpeaker, VoiceError

    rows = []
    with tempfile.TemporaryDirectory(prefix="hinge-bench-") as tmp:
        for voice in (False, True):
            speaker = RecordingSpeaker() if voice else None
            try:
                summary = run_live_loop(context.settings, context.clip, Path(tmp) / f"voice-{voice}.db", False, speaker)
            except VoiceError as err:
                raise ModelError(f"the voice bench needs espeak-ng: {err}") from None
            spoken, waited = [], 0
            if speaker is not None:
                cues = [p for p in speaker.played if p[0] not in _NOT_FAULT_CUES]
                spoken = [lat + (started - asked) * 1000
                          for lat, (_, asked, started, _) in zip(summary.signal_latency_ms, cues)]
                waited = sum(started - asked > 0.05 for _, asked, started, _ in cues)
            rows.append({
                "voice": "on" if voice else "off", "frames": summary.frames, "dropped": summary.dropped,
                "alerts": summary.faults, "cues_spoken": len(spoken) if voice else None,
                "cues_waited": waited if voice else None,  # started after a phrase still playing ended
                "frame_to_signal_ms_median": median(summary.signal_latency_ms, 1),
                "frame_to_signal_ms_p95": percentile(summary.signal_latency_ms, 95, 1),
                "frame_to_speech_ms_median": median(spoken, 1) if voice else None,
                "frame_to_speech_ms_p95": percentile(spoken, 95, 1) if voice else None,
            })
    return rows


def _not_fault_cues() -> frozenset[str]:
    from device.analysis.framing import HEAD_CUT_CUE
    from device.analysis.vocabulary import FRAMING_CUES
    from device.station.voice import PRAISE

    return frozenset([*FRAMING_CUES.values(), HEAD_CUT_CUE, PRAISE])


_NOT_FAULT_CUES = _not_fault_cues()


def time_bare_landmark(context: BenchContext, threads: int) -> float:
    """The selected landmark variant's bare ms per call on `threads` interpreter threads, timed now
    on the clip's real inputs: the live loop's rate is compared with the model's measured beside
    it, under the same load."""
    from device.pose.tflite import time_models

    settings = context.settings
    ms = time_models({"landmark": context.variants[context.selected]}, context.landmark_inputs, rounds=1,
                     threads=threads, runtime=settings.models.runtime)
    return ms["landmark"]


def core_left_threads() -> int:
    """Interpreter threads that leave one core to the rest of the loop, as a Pi 4 runs (3 of 4)."""
    return max(1, (os.cpu_count() or 1) - 1)


def bench_live(context: BenchContext) -> list[dict[str, Any]]:
    """The live loop flat out (its FPS against the bare landmark model's on as many threads, timed
    just before and just after it) twice: as `station run --fast` replays the clip (the station's
    interpreter threads, the clip decoded as it plays), and as a Pi 4 runs (`a Pi's way`): one core
    left to the loop's own threads (3 of a Pi's 4; on a 2-core machine the first run gives the
    interpreter every core, and the capture, pose and worker threads take their time from the
    model's) and the frames handed over as a camera does, decoded beforehand (CameraLike). Then
    paced at the clip's frame rate like a camera (latency from frame capture to verdict and to
    LED/buzzer). `fps` counts the whole run (start-up and close too); `fps_steady` the first
    analysed frame to the last, the rate the loop keeps up while someone trains."""
    import tempfile

    rows: list[dict[str, Any]] = []
    configured = context.settings.models.threads
    runs = (("fast", True, configured, None), ("fast, a Pi's way", True, core_left_threads(), context.frames),
            ("camera-paced", False, configured, None))
    bare: dict[int, float] = {}
    with tempfile.TemporaryDirectory(prefix="hinge-bench-") as tmp:
        for mode, fast, threads, frames in runs:
            settings = context.settings.model_copy(
                update={"models": context.settings.models.model_copy(update={"threads": threads})})
            before = time_bare_landmark(context, threads) if fast else 0.0
            summary = run_live_loop(settings, context.clip, Path(tmp) / f"{len(rows)}.db", fast, frames=frames)
            if fast:  # the camera-paced run is compared with the same figure
                bare[threads] = (before + time_bare_landmark(context, threads)) / 2
            if frames is not None:  # the stages and the Pi budget read the run that is run as a Pi runs
                context.live_stages = summary.stage_ms
                context.live_frame_ms = 1000 / summary.steady_fps if summary.steady_fps else None
            bare_ms = bare.get(threads)
            rows.append({
                "mode": mode, "interpreter_threads": threads,
                "frames_from": "the clip's decoder" if frames is None else "memory, as a camera hands them",
                "frames": summary.frames, "dropped": summary.dropped, "fps": round(summary.fps, 1),
                "fps_steady": round(summary.steady_fps, 1),
                "bare_model_ms": round(bare_ms, 2) if bare_ms else None,
                "live_fps_per_bare_model_fps": round(summary.fps * bare_ms / 1000, 2) if bare_ms else None,
                "steady_fps_per_bare_model_fps": round(summary.steady_fps * bare_ms / 1000, 2) if bare_ms else None,
                "reps": summary.reps, "alerts": summary.faults,
                "verdict_latency_ms_median": median(summary.verdict_latency_ms, 1),
                "verdict_latency_ms_p95": percentile(summary.verdict_latency_ms, 95, 1),
                "frame_to_signal_ms_median": median(summary.signal_latency_ms, 1),
                "frame_to_signal_ms_p95": percentile(summary.signal_latency_ms, 95, 1),
            })
    return rows


def bench_memory(context: BenchContext) -> list[dict[str, Any]]:
    """Peak resident memory of a whole `station run` process (mock pins, page up) over the clip."""
    import subprocess
    import sys
    import tempfile

    settings = context.settings
    with tempfile.TemporaryDirectory(prefix="hinge-bench-") as tmp:
        env = {**os.environ, "HINGE_DATA_DIR": tmp, "HINGE_MODELS__DIR": str(settings.models_dir),
               "HINGE_MODELS__LANDMARK_VARIANT": settings.models.landmark_variant}
        cmd = [sys.executable, "-m", "device", "run", "--source", str(context.clip), "--fast", "--mock-pins",
               "--exit-at-end", "--port", "0"]
        # A fork of this (large) process would count its pages in the child's peak, so a small
        # launcher starts `station run` and reports the peak of that process alone.
        proc = subprocess.run([sys.executable, "-c", _PEAK_RSS_LAUNCHER, *cmd], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ModelError(f"`{' '.join(cmd)}` failed: {proc.stderr.strip()[-300:]}")
    peak_kb = int(proc.stdout.split()[-1])
    return [{"process": "station run --fast --mock-pins (page up)", "peak_rss_mb": round(peak_kb / 1024, 1)}]


_PEAK_RSS_LAUNCHER = """
import os, subprocess, sys, tempfile
with tempfile.TemporaryFile() as err:
    child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=err)
    _, status, usage = os.wait4(child.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        err.seek(0)
        sys.stderr.write(err.read().decode(errors="replace"))
        sys.exit(1)
print(usage.ru_maxrss)
"""


def bench_page(context: BenchContext) -> list[dict[str, Any]]:
    """The trainer page over a 10,000-rep, 200-athlete log while the live loop runs flat out in the same
    process (the worst case: `station run` serves the page from a process of its own), and the
    live loop's FPS with and without that load."""
    import tempfile

    from device.commands.bench_page import pipeline_cost
    from device.commands.sample_log import build_bench_db
    from device.station.store import RepStore
    from web.app import create_app
    from web.page_server import PageServer

    with tempfile.TemporaryDirectory(prefix="hinge-bench-") as tmp:
        log = build_bench_db(Path(tmp) / "page.db", reps=PAGE_BENCH_REPS, athletes=PAGE_BENCH_ATHLETES)
        store = RepStore(log.path, readonly=True)
        app = create_app(store, context.settings.web, profiles=[context.settings.analysis.profile])
        runs = iter(range(10_000))

        def pipeline() -> float:
            """The live loop over the clip, again and again for at least PAGE_PIPELINE_S: long enough
            for the page load to overlap it fully."""
            frames, seconds = 0, 0.0
            while seconds < PAGE_PIPELINE_S:
                summary = run_live_loop(context.settings, context.clip, Path(tmp) / f"live{next(runs)}.db", fast=True)
                frames, seconds = frames + summary.frames, seconds + summary.wall_s
            return frames / seconds

        costs = {}
        with PageServer(app) as server:
            for load, rate, requests in PAGE_LOADS:
                costs[load] = pipeline_cost(pipeline, server.base_url, log.session_ids, requests=requests,
                                            concurrency=2, rate_per_s=rate, athlete_ids=log.athlete_ids)
        store.close()
    rows: list[dict[str, Any]] = []
    for load, cost in costs.items():
        before, after = cost["fps_alone_runs"]
        rows.append({"load": load, "phase": "live loop alone (before, after)", "page": "-", "requests": None,
                     "errors": None, "p50_ms": None, "p99_ms": None, "live_fps": f"{before:.1f}, {after:.1f}",
                     "live_fps_cost_pct": None})
        for phase, label in (("pages_alone", "page alone"), ("pages_with_pipeline", "page + live loop")):
            loaded = phase == "pages_with_pipeline"
            for page, stats in cost[phase].items():
                rows.append({"load": load, "phase": label, "page": page, "requests": stats["requests"],
                             "errors": stats["errors"], "p50_ms": _round(stats["p50_ms"], 1),
                             "p99_ms": _round(stats["p99_ms"], 1),
                             "live_fps": round(cost["fps_with_pages"], 1) if loaded else None,
                             "live_fps_cost_pct": round(cost["fps_cost_pct"], 1) if loaded else None})
    return rows


def _round(value: Optional[float], digits: int) -> Optional[float]:
    return None if value is None else round(value, digits)


# (load, requests per second or None for as fast as answered, requests in the page-alone phase):
# a trainer browsing on a phone, and two connections asking as fast as they are answered.
PAGE_LOADS = (("phone, 2 pages/s", 2.0, 30), ("flood, unpaced", None, 150))
PAGE_PIPELINE_S = 8.0
PAGE_BENCH_REPS = 10_000
PAGE_BENCH_ATHLETES = 200  # a busy gym's athletes, each with their ladder page


Section = Callable[[BenchContext], list[dict[str, Any]]]
SECTIONS: list[tuple[str, str, Section]] = [
    ("models", "bare model calls (ms per call, same real inputs, round-robin)", bench_models),
    ("pipeline", "full replay pipeline", bench_pipeline),
    ("analysis", "hinge analysis per frame (ms)", bench_analysis),
    ("live", "live loop: FPS vs bare landmark model, capture-to-verdict and frame-to-signal latency", bench_live),
    ("stages", "the flat-out live loop per stage and thread (ms per frame; the pose thread sets the pace)", bench_stages),
    ("scaling", "the selected landmark model on 1 to 4 interpreter threads (x86 scaling)", bench_threads),
    ("budget", "Pi 4 budget on paper: MACs at XNNPACK's published Pi 4 rate, per variant and schedule",
     bench_budget),
    ("voice", "spoken cues: frame-to-speech start, and LED/buzzer latency with the voice off and on", bench_voice),
    ("memory", "peak RSS of station run", bench_memory),
    ("page", "trainer page (history, session, athlete) on a 10,000-rep, 200-athlete log with the live loop running; "
             "live-loop FPS with and without it", bench_page),
]


def run_bench(settings: Settings, clip: Path, sections: Optional[list[str]] = None) -> dict[str, Any]:
    context = prepare(settings, clip)
    result: dict[str, Any] = {
        "clip": clip.name, "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "threads": settings.models.threads, "selected_variant": context.selected,
    }
    for name, _, section in SECTIONS:
        if sections is None or name in sections:
            result[name] = section(context)
    if context.budget_basis:
        result["budget_basis"] = context.budget_basis
    return result


def section_titles() -> dict[str, str]:
    return {name: title for name, title, _ in SECTIONS}


def command(args: argparse.Namespace, settings: Settings) -> int:
    only = [name.strip() for name in args.only.split(",")] if args.only else None
    unknown = sorted(set(only or ()) - set(section_titles()))
    if unknown:
        raise ConfigError(f"no bench section {', '.join(unknown)}; the sections: {', '.join(section_titles())}")
    result = run_bench(settings, args.clip, only)
    print(f"clip {result['clip']} on {result['machine']}, {result['threads']} interpreter threads; "
          f"the station's landmark variant: {result['selected_variant']}")
    for name, title in section_titles().items():
        if name in result:
            print()
            print_table(result[name], title=f"{name}: {title}")
    if "budget_basis" in result:
        basis = result["budget_basis"]
        by_threads = ", ".join(f"{n}: {basis[f'pi4_model_ms_{n}_threads']}" for n in range(1, PI4_CORES + 1))
        print(f"budget basis: parallel share {basis['parallel_share']} (published, 4-core ARM; here from 1 to 2 "
              f"threads: {basis['parallel_share_here']}), "
              f"{basis['beside_ms_here']} ms of the pose thread's work beside the model here, a Pi 4 core "
              f"{basis['pi4_core_slower_by']}x slower, detector on {100 * basis['detector_share']:.1f}% of frames; "
              f"the selected model's Pi 4 ms by threads: {by_threads}")
    if args.json:
        write_json(args.json, result)
    return 0
