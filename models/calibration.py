"""Activation ranges for static int8: measured once on real crops, committed as small JSON.

ai-edge-quantizer's calibrator runs the float32 model and reports each tensor's min/max per frame.
Its default merge is a moving average, which lets the last few dozen frames decide the range; here
every frame's extremes are kept and merged explicitly (the global min/max, or a percentile of the
per-frame extremes), so the result does not depend on clip order. Only these per-tensor numbers are
committed (no pixels), which lets a Pi without clips rebuild the same int8 model.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from models.crops import CropSet
from models.graph import INPUT_NAME, SIGNATURE_KEY
from models.quiet import quiet_stderr

log = logging.getLogger(__name__)

CHUNK = 32  # crops per calibrator call; bounds memory (the calibrator materialises its dataset)


class ExtremesRecorder:
    """A QSV merge function for ai-edge-quantizer that keeps every frame's min and max."""

    def __call__(self, old: dict, new: dict) -> dict:
        mins = old.get("mins", [float(np.ravel(old["min"])[0])])
        maxs = old.get("maxs", [float(np.ravel(old["max"])[0])])
        return {
            "min": np.minimum(old["min"], new["min"]),
            "max": np.maximum(old["max"], new["max"]),
            "mins": mins + [float(np.ravel(new["min"])[0])],
            "maxs": maxs + [float(np.ravel(new["max"])[0])],
        }


@dataclass
class FrameExtremes:
    """Per-tensor, per-crop minima and maxima of the float model's activations."""

    mins: dict[str, np.ndarray]
    maxs: dict[str, np.ndarray]
    samples: int

    def ranges(self, policy: str) -> dict[str, tuple[float, float]]:
        """'minmax': the widest range seen; 'pNN.N': the NN.N-th percentile of per-crop maxima
        (and the matching low percentile of minima), which ignores rare outlier frames."""
        out = {}
        for name in self.mins:
            lo, hi = self.mins[name], self.maxs[name]
            if policy == "minmax":
                low, high = float(lo.min()), float(hi.max())
            elif policy.startswith("p"):
                q = float(policy[1:])
                low, high = float(np.percentile(lo, 100 - q)), float(np.percentile(hi, q))
            else:
                raise ValueError(f"unknown range policy {policy!r}")
            out[name] = (float(np.float32(low)), float(np.float32(high)))
        return out


def measure_extremes(float_model: bytes, crops: CropSet, threads: int = 2, progress: Callable[[int, int], None] | None = None) -> FrameExtremes:
    """Run ai-edge-quantizer's profiler-based calibrator over every crop."""
    from ai_edge_quantizer import calibrator, recipe, recipe_manager

    manager = recipe_manager.RecipeManager()
    manager.load_quantization_recipe(recipe.static_wi8_ai8())
    cal = calibrator.Calibrator(
        bytes(float_model),
        num_threads=threads,
        mode=calibrator.CalibrationMode.CALIBRATION_PROFILER_BASED,
        qsv_update_func=ExtremesRecorder(),
    )
    for start in range(0, len(crops), CHUNK):
        batch = [{INPUT_NAME: crops.model_input(i)[None]} for i in range(start, min(start + CHUNK, len(crops)))]
        with quiet_stderr():
            cal.calibrate({SIGNATURE_KEY: batch}, manager)
        if progress:
            progress(min(start + CHUNK, len(crops)), len(crops))
    qsvs = cal.get_model_qsvs()
    mins, maxs = {}, {}
    for name, qsv in qsvs.items():
        mins[name] = np.asarray(qsv.get("mins", [float(np.ravel(qsv["min"])[0])]))
        maxs[name] = np.asarray(qsv.get("maxs", [float(np.ravel(qsv["max"])[0])]))
    return FrameExtremes(mins, maxs, len(crops))


@dataclass
class CalibrationRanges:
    """What gets committed: per-tensor ranges for each range policy, and how they were measured."""

    policies: dict[str, dict[str, tuple[float, float]]]
    source: dict[str, Any] = field(default_factory=dict)

    def qsvs(self, policy: str, tensor_names: set[str]) -> dict[str, dict[str, np.ndarray]]:
        """The quantizer's calibration result for the tensors of one graph."""
        if policy not in self.policies:
            raise KeyError(f"no calibration ranges for policy {policy!r} (have {sorted(self.policies)})")
        return {
            name: {"min": np.array([lo], np.float32), "max": np.array([hi], np.float32)}
            for name, (lo, hi) in self.policies[policy].items()
            if name in tensor_names
        }

    def to_json(self) -> str:
        data = {
            "source": self.source,
            "policies": {p: {n: [lo, hi] for n, (lo, hi) in sorted(r.items())} for p, r in sorted(self.policies.items())},
        }
        return json.dumps(data, indent=1, sort_keys=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "CalibrationRanges":
        data = json.loads(text)
        policies = {p: {n: (float(v[0]), float(v[1])) for n, v in r.items()} for p, r in data["policies"].items()}
        return cls(policies, data.get("source", {}))

    @classmethod
    def load(cls, path: Path) -> "CalibrationRanges":
        return cls.from_json(Path(path).read_text())
