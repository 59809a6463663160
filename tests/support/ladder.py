"""A rep log the live loop wrote from real clips, replayed as sessions of two athletes over three
days (the wall clock injected), and a coach's ladder sized to what a handful of clips can show.

Ann trains clean deadlifts on three days and reaches the rule on the third; Ben's latest session
ends in a rounded back.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from device.analysis.ladder import load_ladder
from support.pipeline import log_clips

GOOD = ("bichraix_deadlift_side_good014.mp4", "bichraix_deadlift_side_good016.mp4", "jeffchen_deadlift_side_good_1rep.mp4")
ROUNDED = "jeffchen_deadlift_side_bad_rounded_head_down_1rep.mp4"
DRILL = "kettlebell_deadlift"  # from the floor, a single load: what these side-view deadlift clips show
DAY1 = datetime(2026, 3, 2, 9, 0)
# Who trained which clips on which day (one session per clip).
PLAN = {
    "Ann": [(0, GOOD[:2]), (1, GOOD[2:]), (2, GOOD[1:2])],
    "Ben": [(0, GOOD[:1]), (1, GOOD[1:]), (2, (ROUNDED,))],
}
COACH_LADDER = """
# A coach's short ladder for the test: a handful of clips cannot show twenty reps, so the counts are
# scaled down; every other rule is the shipped default.
[mastery]
min_clean_reps = 4
min_days = 2
min_clean_share = 0.90
recent_sessions = 4
none_in_last_session = ["rounded_back"]

[[step]]
drill = "kettlebell_deadlift"
why = "from the floor with a single load"

[[step]]
drill = "deadlift"
why = "the barbell deadlift"
"""


class WallClock:
    def __init__(self):
        self.at = DAY1.timestamp()

    def __call__(self) -> float:
        return self.at


@pytest.fixture(scope="session")
def ladder_log(clips_dir, clip_poses, settings, tmp_path_factory) -> tuple[Path, Path]:
    """(rep log, ladder file): the plan above replayed through the live loop."""
    folder = tmp_path_factory.mktemp("ladder")
    db, ladder = folder / "station.db", folder / "ladder.toml"
    ladder.write_text(COACH_LADDER)
    load_ladder(ladder)  # a bad test ladder fails here, not as a puzzling page
    clock = WallClock()
    for athlete, days in PLAN.items():
        for day, clips in days:
            for n, clip in enumerate(clips):
                clock.at = (DAY1 + timedelta(days=day, hours=n + (3 if athlete == "Ben" else 0))).timestamp()
                log_clips(db, [clips_dir / clip], clip_poses, settings, athlete=athlete, profile=DRILL, wall_clock=clock)
    return db, ladder
