"""The real live loop over real clips, for tests that need a rep log the pipeline wrote.

Poses come from the real model (recorded once per test session by the `clip_poses` fixture), so the
real analysis, signals and SQLite writes run at full speed.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from device.station.replog import RepLog
from device.station.assembly import analyzer_factory
from device.capture.file import VideoFileSource
from device.station.loop import Station
from device.station.store import RepStore


class RecordedPoses:
    """Pose backend that returns the real model's pose recorded for each frame timestamp."""

    def __init__(self, poses):
        self.by_time = {round(p.timestamp, 4): p for p in poses}

    def process(self, image, timestamp):
        return self.by_time[round(timestamp, 4)]

    def reset(self):
        pass


def log_clips(db: Path, clips: list[Path], poses_of, settings, athlete=None) -> None:
    """Replay each clip through the live loop into the rep log at `db`, one session per clip."""
    for clip in clips:
        station = Station(engine=RecordedPoses(poses_of(clip.name)), make_analyzer=analyzer_factory(settings),
                          profile=settings.analysis.profile, replog=RepLog(RepStore(db)), athlete=athlete,
                          source_id=f"file:{clip.name}")
        try:
            station.run(lambda: VideoFileSource(clip), lossless=True)
        finally:
            station.replog.close()


PIPELINE_CLIPS = ["formfit_squat_side.mp4", "crossfit_bb_deadlift_side_female_annot.mp4",
                  "jeffchen_deadlift_side_bad_rounded_head_down_1rep.mp4"]


@pytest.fixture(scope="session")
def pipeline_db(clips_dir, clip_poses, settings, tmp_path_factory) -> Path:
    """A rep log the live loop wrote from three real clips (a squat, a clean deadlift, a rounded one)."""
    db = tmp_path_factory.mktemp("pipeline") / "station.db"
    log_clips(db, [clips_dir / c for c in PIPELINE_CLIPS], clip_poses, settings, athlete="Alex")
    return db
