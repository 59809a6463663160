"""The landmark model's real inputs: the ROI crops the float16 engine makes on real clips.

Calibration and evaluation both use these, so an int8 model is tuned and judged on exactly what it
will see on the station. Crops are kept as uint8 (the engine's crop is a uint8 warp divided by 255,
so nothing is lost) and mirrored on demand, which stands in for an athlete facing the other way.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from device.errors import SourceError
from device.pose.engine import LANDMARK_SIZE, PoseEngine
from device.pose.landmarks import Roi

log = logging.getLogger(__name__)


@dataclass
class CropSet:
    """Model inputs with where they came from. Entry i is stored crop `source[i]` of `pixels`
    ((M, 256, 256, 3) uint8 RGB, shared between views), flipped left-right when `mirrored[i]`.
    rois: (N, 4) cx, cy, size, rotation in image pixels; clips: (N,) clip file names; times: (N,)
    the frame's timestamp in seconds; image_sizes: (N, 2) the frame's width and height. Times and
    sizes let the hinge analysis' own trust rules (bone history, framing) run on the crop sequence."""

    pixels: np.ndarray
    source: np.ndarray
    mirrored: np.ndarray
    rois: np.ndarray
    clips: np.ndarray
    times: np.ndarray
    image_sizes: np.ndarray

    def __len__(self) -> int:
        return len(self.source)

    def model_input(self, i: int) -> np.ndarray:
        """Float32 (256, 256, 3) in [0, 1], as LandmarkModel.crop returns it."""
        crop = self.pixels[self.source[i]]
        if self.mirrored[i]:
            crop = crop[:, ::-1]
        return crop.astype(np.float32) / 255.0

    def roi(self, i: int) -> Roi:
        return Roi(*(float(v) for v in self.rois[i]))

    def take(self, index: np.ndarray) -> "CropSet":
        index = np.asarray(index)
        return CropSet(self.pixels, self.source[index], self.mirrored[index], self.rois[index], self.clips[index],
                       self.times[index], self.image_sizes[index])

    def with_mirrored(self) -> "CropSet":
        """Each crop twice: as filmed and flipped left-right."""
        return CropSet(
            self.pixels,
            np.concatenate([self.source, self.source]),
            np.concatenate([self.mirrored, ~self.mirrored]),
            np.concatenate([self.rois, self.rois]),
            np.concatenate([self.clips, self.clips]),
            np.concatenate([self.times, self.times]),
            np.concatenate([self.image_sizes, self.image_sizes]),
        )

    def segments(self) -> np.ndarray:
        """One label per crop naming its run of consecutive frames: the clip and the facing."""
        return np.array([f"{clip}|{'mirrored' if m else 'filmed'}" for clip, m in zip(self.clips, self.mirrored)])

    def clip_names(self) -> list[str]:
        return sorted(set(self.clips.tolist()))


def collect_crops(engine: PoseEngine, clips_dir: Path, clip_names: Sequence[str], frame_step: int = 1) -> CropSet:
    """Run the engine over each clip and keep the crop of every frame where it found the person."""
    from device.pose.engine import iter_poses
    from device.capture.file import VideoFileSource

    pixels, rois, clips, times, sizes = [], [], [], [], []
    for name in clip_names:
        path = Path(clips_dir) / name
        if not path.is_file():
            raise SourceError(f"clip {path} is missing (the clip lists live in models/quantization/plan.json)")
        kept = 0
        with VideoFileSource(path) as source:
            for frame, pose in iter_poses(engine, source):
                if not pose.found or pose.roi is None or frame.index % frame_step:
                    continue
                crop = engine.landmarks.crop(frame.image, pose.roi)
                pixels.append(np.rint(crop * 255.0).astype(np.uint8))
                rois.append((pose.roi.cx, pose.roi.cy, pose.roi.size, pose.roi.rotation))
                clips.append(name)
                times.append(frame.timestamp)
                sizes.append(pose.image_size)
                kept += 1
        log.info("%s: %d crops", name, kept)
    if not pixels:
        raise SourceError(f"no person found in any of {list(clip_names)} under {clips_dir}")
    n = len(pixels)
    return CropSet(
        np.stack(pixels).reshape(n, LANDMARK_SIZE, LANDMARK_SIZE, 3),
        np.arange(n),
        np.zeros(n, bool),
        np.asarray(rois, np.float64),
        np.asarray(clips),
        np.asarray(times, np.float64),
        np.asarray(sizes, np.int64).reshape(n, 2),
    )
