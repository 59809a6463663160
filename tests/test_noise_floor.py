"""The noise-floor gate on plain numbers: a variant just inside float16's own 1 px jitter passes each
reading, one just outside fails it, and the rule kept from before (no change on the labelled clips
as filmed) still decides on its own. Moving any boundary breaks one of these."""
from __future__ import annotations

import numpy as np
import pytest

from models.noise_floor import ANGLE_STATS, angle_ratios, verdict_judgement, verdicts_within_floor, within_angle_floor
from models.quantize import qualifies

# float16 with its crop moved 1 px against float16 (trusted frames; about the held-out clips' numbers).
FLOOR = {"hip_err_median": 1.09, "hip_err_p95": 6.22, "knee_err_median": 1.18, "knee_err_p95": 14.93}
SAME = {"same_as_float16": True, "changed": []}


def _scaled(factor: float, stat: str = "") -> dict:
    """The floor's numbers, every one (or only `stat`) multiplied by factor."""
    return {k: v * (factor if not stat or k == stat else 1.0) for k, v in FLOOR.items()}


@pytest.mark.parametrize("stat", ANGLE_STATS)
def test_each_statistic_just_inside_the_floor_passes_and_just_outside_fails(stat):
    assert within_angle_floor(_scaled(0.999, stat), FLOOR)
    assert within_angle_floor(_scaled(1.0, stat), FLOOR), "equal to the model's own noise is within it"
    assert not within_angle_floor(_scaled(1.001, stat), FLOOR), stat
    # Below the floor everywhere else does not buy back one statistic above it.
    assert not within_angle_floor({**_scaled(0.1), stat: FLOOR[stat] * 1.001}, FLOOR), stat


def test_the_old_fixed_gate_is_gone_both_ways():
    """4 / 9 deg p95 failed the old 3 deg gate and sits inside this floor; 2 / 2 deg p95 with a median
    above the floor's passed the old gate and is outside this one."""
    inside = {"hip_err_median": 1.0, "hip_err_p95": 4.0, "knee_err_median": 1.1, "knee_err_p95": 9.0}
    assert within_angle_floor(inside, FLOOR)
    steady_but_biased = {"hip_err_median": 1.5, "hip_err_p95": 2.0, "knee_err_median": 1.5, "knee_err_p95": 2.0}
    assert not within_angle_floor(steady_but_biased, FLOOR)


def test_lost_frames_push_a_variant_out_as_they_do_the_floor():
    """A lost frame counts 180 deg in both, so a variant that loses more than 5% of the trusted frames
    has a 180 deg p95 and fails unless the floor itself lost as many."""
    errors = np.concatenate([np.full(94, 0.5), np.full(6, 180.0)])
    lossy = {**_scaled(0.5), "knee_err_p95": float(np.percentile(errors, 95))}
    assert lossy["knee_err_p95"] == 180.0 and not within_angle_floor(lossy, FLOOR)


def test_missing_numbers_never_pass():
    assert not within_angle_floor(None, FLOOR)
    assert not within_angle_floor(_scaled(0.5), None)


def test_ratios_are_variant_over_floor():
    ratios = angle_ratios(_scaled(1.5), FLOOR)
    assert ratios == {stat: 1.5 for stat in ANGLE_STATS}
    zero_floor = dict.fromkeys(ANGLE_STATS, 0.0)
    assert angle_ratios(zero_floor, zero_floor) == dict.fromkeys(ANGLE_STATS, 0.0)
    assert angle_ratios(_scaled(1.0), zero_floor)["hip_err_p95"] is None  # any error over a floor of nothing


def test_verdicts_equal_to_the_floor_pass_one_more_fails():
    floor = {"as filmed": 0, "mirror": 2, "fps_10": 1}
    inside = verdict_judgement({"as filmed": 0, "mirror": 1, "fps_10": 2}, floor, 3 * 26)
    assert inside["changed"] == inside["floor_changed"] == 3 and inside["within"]
    outside = verdict_judgement({"as filmed": 0, "mirror": 2, "fps_10": 2}, floor, 3 * 26)
    assert outside["changed"] == 4 and not outside["within"]
    assert verdicts_within_floor(0, 0) and not verdicts_within_floor(1, 0)


def test_verdicts_are_compared_on_the_same_runs_only():
    with pytest.raises(ValueError, match="runs"):
        verdict_judgement({"as filmed": 0}, {"as filmed": 0, "mirror": 0}, 52)


def test_within_both_floors_still_fails_on_a_change_as_filmed():
    """The rule kept from before: the floor itself may change clip outcomes, a selected variant may
    not change any on the clips as filmed."""
    trusted = {"trusted": _scaled(0.5)}
    calm = verdict_judgement({"as filmed": 1, "mirror": 0}, {"as filmed": 1, "mirror": 1}, 52)
    changed = {"same_as_float16": False, "changed": [{"clip": "x.mp4", "faults": {"added": ["rounded_back"], "missed": []}}]}
    assert calm["within"]
    assert qualifies(trusted, FLOOR, False, SAME, calm)
    assert not qualifies(trusted, FLOOR, False, changed, calm)
    assert not qualifies({"trusted": _scaled(1.001)}, FLOOR, False, SAME, calm)
    assert not qualifies(trusted, FLOOR, False, SAME, None), "verdicts not judged: not selected"
    assert qualifies({"trusted": dict.fromkeys(ANGLE_STATS, 0.0)}, FLOOR, True, None, None), "an exact rewrite"


def test_the_floor_pipeline_reads_real_crops_moved_one_pixel(settings, clips_dir, models_dir):
    """The floor's whole-pipeline runs are the station's pipeline with the landmark model reading its
    crop moved 1 px: on a real clip its landmarks differ from float16's by about a pixel, not zero
    (the shift happened) and not wildly (the points were mapped back), and the pose cache keeps
    the shifted poses apart from float16's."""
    from device.commands.evaluate import PoseRuns
    from device.pose.landmarks import LANDMARK_INDEX
    from device.pose.model_files import load_manifest
    from models.outcomes import engine_for

    manifest = load_manifest()
    detector, shipped = models_dir / manifest.by_role("detector").file, models_dir / manifest.by_role("landmark").file
    clip = clips_dir / "jeffchen_deadlift_side_good_1rep.mp4"
    runs = PoseRuns(settings)
    plain = runs.source(lambda: engine_for(settings, detector, shipped), "float16", shipped, detector)(clip)
    moved = runs.source(lambda: engine_for(settings, detector, shipped, crop_shift=1), "float16+crop_shift_1px",
                        shipped, detector)(clip)
    assert len(plain) == len(moved) > 30
    joints = [LANDMARK_INDEX[f"{side}_{j}"] for side in ("left", "right") for j in ("shoulder", "hip", "knee", "ankle")]
    both = [(a, b) for a, b in zip(plain, moved) if a.found and b.found]
    px = np.concatenate([np.linalg.norm(a.landmarks[joints, :2] - b.landmarks[joints, :2], axis=1) for a, b in both])
    assert len(both) > 30
    assert 0.05 < np.median(px) < 5.0, np.median(px)
    cached = sorted(p.name for p in (settings.data_dir / "cache" / "poses").glob(f"{clip.stem}-*.jsonl"))
    assert any("-float16+crop_shift_1px-" in name for name in cached) and any("-float16-" in name for name in cached), cached


def test_the_verdicts_reading_runs_real_perturbations():
    """The verdicts reading names `station evaluate --perturb` perturbations; a rename there must not
    silently shrink it to the clips as filmed."""
    from device.commands.evaluate import PoseRuns
    from models.noise_floor import VERDICT_PERTURBATIONS
    from models.outcomes import AS_FILMED, CoachingCheck

    assert set(VERDICT_PERTURBATIONS) <= set(PoseRuns.perturbations)
    check = CoachingCheck(None, None, None, [], None, PoseRuns(None))
    assert check.runs == [AS_FILMED, *[p for p in PoseRuns.perturbations if p in VERDICT_PERTURBATIONS]]
    assert len(check.runs) == 1 + len(VERDICT_PERTURBATIONS)
