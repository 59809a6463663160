"""The real live loop over real clips, for tests that need a rep log the pipeline wrote.

Poses come from the real model (recorded once per test session by the `clip_poses` fixture), so the
real analysis, signals and SQLite writes run at full speed.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from device.station.assembly import build_station


class RecordedPoses:
    """Pose backend that returns the real model's pose recorded for each frame timestamp."""

    def __init__(self, poses):
        self.by_time = {round(p.timestamp, 4): p for p in poses}

    def process(self, image, timestamp, contrast=None):
        return self.by_time[round(timestamp, 4)]

    def process_deferred(self, image, timestamp, contrast=None, before_model=lambda: None):
        before_model()  # as the engine does, just before its model runs
        return self.process(image, timestamp, contrast), lambda: None

    def reset(self):
        pass


def station_settings(settings, db: Path, **sections: dict[str, Any]):
    """`settings` with the rep log at `db` and the given fields of other sections replaced, e.g.
    `web={"preview_fps": 15.0}`."""
    changes = {"store": {"db_path": db}, **sections}
    return settings.model_copy(update={name: getattr(settings, name).model_copy(update=fields)
                                       for name, fields in changes.items()})


def log_clips(db: Path, clips: list[Path], poses_of, settings, athlete=None, profile=None, wall_clock=None) -> None:
    """Replay each clip through the live loop into the rep log at `db`, one session per clip, wired
    as `station log` wires it; `wall_clock` sets the Unix time the sessions are logged at."""
    extra = {"wall_clock": wall_clock} if wall_clock is not None else {}
    for clip in clips:
        with build_station(station_settings(settings, db), str(clip), headless=True, fast=True, profile=profile,
                           engine=RecordedPoses(poses_of(clip.name)), athlete=athlete, **extra) as rig:
            rig.run()


PIPELINE_CLIPS = ["formfit_squat_side.mp4", "crossfit_bb_deadlift_side_female_annot.mp4",
                  "jeffchen_deadlift_side_bad_rounded_head_down_1rep.mp4"]


@pytest.fixture(scope="session")
def pipeline_db(clips_dir, clip_poses, settings, tmp_path_factory) -> Path:
    """A rep log the live loop wrote from three real clips (a squat, a clean deadlift, a rounded one)."""
    db = tmp_path_factory.mktemp("pipeline") / "station.db"
    log_clips(db, [clips_dir / c for c in PIPELINE_CLIPS], clip_poses, settings, athlete="Alex")
    return db
