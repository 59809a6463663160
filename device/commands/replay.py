"""Run the pose engine over a clip: the landmark stream, an optional annotated video, a summary."""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import cv2

from device.commands.tables import print_table
from device.config import Settings
from device.fileio import json_line
from device.stats import median
from device.pose.draw import draw_pose
from device.errors import SourceError
from device.pose.landmarks import Pose
from device.pose.engine import PoseEngine, iter_poses
from device.capture.file import VideoFileSource


@dataclass
class ReplaySummary:
    clip: str
    variant: str
    frames: int = 0
    clip_seconds: float = 0.0
    wall_seconds: float = 0.0
    found_frames: int = 0
    detector_runs: int = 0
    presences: list[float] = field(default_factory=list)
    landmark_ms: list[float] = field(default_factory=list)
    detector_ms: list[float] = field(default_factory=list)

    def row(self) -> dict:
        """The printed and JSON summary (same names in both)."""
        return {
            "clip": self.clip,
            "variant": self.variant,
            "frames": self.frames,
            "clip_s": round(self.clip_seconds, 2),
            "fps": round(self.frames / self.wall_seconds, 1) if self.wall_seconds else None,
            "person_found_pct": round(100 * self.found_frames / self.frames, 1) if self.frames else 0.0,
            "detector_runs": self.detector_runs,
            "detector_run_pct": round(100 * self.detector_runs / self.frames, 1) if self.frames else 0.0,
            "presence_median": median(self.presences),
            "landmark_ms_median": median(self.landmark_ms),
            "detector_ms_median": median(self.detector_ms),
        }


def replay_clip(
    engine: PoseEngine,
    clip: Path,
    annotate: Optional[Path] = None,
    on_pose: Optional[Callable[[Pose], None]] = None,
    progress: bool = False,
) -> ReplaySummary:
    summary = ReplaySummary(clip=Path(clip).name, variant=engine.landmark_variant)
    writer = None
    bar = None
    with VideoFileSource(Path(clip)) as source:
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=source.frame_count, unit="frame", file=sys.stderr, leave=False)
        started = time.perf_counter()
        try:
            for frame, pose in iter_poses(engine, source):
                summary.frames += 1
                summary.clip_seconds = frame.timestamp
                summary.found_frames += pose.found
                summary.detector_runs += pose.detector_ran
                summary.presences.append(pose.presence)
                if "landmark_ms" in pose.timings_ms:
                    summary.landmark_ms.append(pose.timings_ms["landmark_ms"])
                if "detector_ms" in pose.timings_ms:
                    summary.detector_ms.append(pose.timings_ms["detector_ms"])
                if on_pose:
                    on_pose(pose)
                if annotate is not None:
                    bgr = cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR)
                    tag = " detector" if pose.detector_ran else ""
                    draw_pose(bgr, pose, caption=f"{frame.timestamp:6.2f}s presence {pose.presence:.2f}{tag}")
                    if writer is None:
                        writer = _open_writer(annotate, source.fps or 30.0, bgr.shape[1], bgr.shape[0])
                    writer.write(bgr)
                if bar is not None:
                    bar.update(1)
            summary.wall_seconds = time.perf_counter() - started
        finally:
            if writer is not None:
                writer.release()
            if bar is not None:
                bar.close()
    return summary


def _open_writer(path: Path, fps: float, width: int, height: int) -> cv2.VideoWriter:
    if not path.parent.is_dir():
        raise SourceError(f"cannot write annotated video to {path}: folder {path.parent} does not exist "
                          "(create it, or give --annotate a path in an existing folder)")
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise SourceError(f"cannot write annotated video to {path} (is the directory writable? use a .mp4 name)")
    return writer


def command(args: argparse.Namespace, settings: Settings) -> int:
    engine = PoseEngine.from_settings(settings)
    out = None
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        out = args.json.open("w")

    def record(pose) -> None:
        if out is not None:
            out.write(json_line({"kind": "pose", **pose.to_dict()}) + "\n")

    try:
        summary = replay_clip(engine, args.clip, annotate=args.annotate, on_pose=record, progress=sys.stderr.isatty())
        row = summary.row()
        if out is not None:
            out.write(json_line({"kind": "summary", **row}) + "\n")
    finally:
        if out is not None:
            out.close()
    print_table([row])
    if args.annotate:
        print(f"annotated video: {args.annotate}")
    return 0
