"""`station bench`: where the time goes, measured in one run on one clip.

Each section is a function (settings, context) -> rows; the command prints one table per section
and writes the same rows under the section's name with `--json`. Sections added later (live-loop
latency, page load) append to SECTIONS. Timings are only compared within one run: the bare models
are called round-robin on the same real inputs, so load from anything else hits them alike.
"""
from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from device.config import Settings
from device.errors import ModelError
from device.pose import PoseEngine
from device.runtime import TFLiteModel

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
    from device.replay import iter_poses
    from device.sources import VideoFileSource
    from models.manifest import SHIPPED_VARIANT, read_quantized_record, resolve_models

    context = BenchContext(clip=clip, settings=settings)
    engine = _engine(settings, SHIPPED_VARIANT)
    detector = _Recorder(engine.detector.model)
    engine.detector.model = detector  # type: ignore[assignment]
    with VideoFileSource(clip) as source:
        frames = []
        for frame, pose in iter_poses(engine, source):
            if pose.found and pose.roi is not None:
                context.landmark_inputs.append(engine.landmarks.crop(frame.image, pose.roi))
            frames.append(frame.image)
    for image in _spread(frames, MAX_INPUTS):
        engine.detector.detect(image)
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
    from models.evaluation import time_models
    from models.manifest import load_manifest

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
    from device.replay import replay_clip

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


Section = Callable[[BenchContext], list[dict[str, Any]]]
SECTIONS: list[tuple[str, str, Section]] = [
    ("models", "bare model calls (ms per call, same real inputs, round-robin)", bench_models),
    ("pipeline", "full replay pipeline", bench_pipeline),
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
    return result


def section_titles() -> dict[str, str]:
    return {name: title for name, title, _ in SECTIONS}
