"""The gate for a landmark variant: no worse than the shipped float16 model's own noise.

The shipped float16 model does not give the same landmarks when its crop moves by one pixel, and
the tracked crop moves that much between frames anyway. On the barbell clips that moves trusted
hip/knee flexion by several degrees at p95 (models/QUANTIZATION.md, *Noise floor*), so a fixed
per-frame gate of a few degrees asked a variant to be steadier than the model it replaces. The
yardstick here is float16 with its crop moved 1 px (models/accuracy.py CropShiftedLandmarkModel),
measured on the same crops and the same clips as the variant:

- **angles**: on the frames the analysis trusts (models/trust.py, a lost frame counting as 180 deg),
  the variant's hip and knee flexion error against float16 at the median and at p95 is no larger than
  the shifted float16's error against float16. The ratios (variant / floor) are reported; every one
  must be <= 1.
- **verdicts**: over the labelled clips and their perturbations (`station evaluate --perturb`'s
  VERDICT_PERTURBATIONS below), the
  whole pipeline with the variant changes no more clip outcomes (rep count, a rep's hinge/squat
  verdict, faults raised) against float16 than the pipeline with float16's crop moved 1 px does.

And the rule kept from before: a selected variant changes no rep count, verdict or fault against
float16 on the labelled clips as filmed (models/outcomes.py). The functions here work on plain
numbers so each reading is testable alone.
"""
from __future__ import annotations

from typing import Any, Optional

CROP_SHIFT_PX = 1
# The `station evaluate --perturb` perturbations the verdicts reading runs, besides the clips as filmed:
# two slower cameras and the mirrored view. The others (scaled, shifted 1 and 2 px) cost a whole
# clip set of pose runs each per model (about 5,200 frames; minutes per model on the shared 2-core
# machine) for every variant judged and for the floor, so they are left to `station evaluate --perturb`.
VERDICT_PERTURBATIONS = ("fps_15", "fps_10", "mirror")
# The statistics of the trusted-frames error distributions compared, per joint.
ANGLE_STATS = ("hip_err_median", "hip_err_p95", "knee_err_median", "knee_err_p95")


def angle_ratios(trusted: dict[str, Any], floor: dict[str, Any]) -> dict[str, Optional[float]]:
    """variant / floor for each compared statistic; None where the floor is 0 and the variant is not."""
    ratios: dict[str, Optional[float]] = {}
    for stat in ANGLE_STATS:
        variant, own = float(trusted[stat]), float(floor[stat])
        ratios[stat] = round(variant / own, 3) if own > 0 else (0.0 if variant <= 0 else None)
    return ratios


def within_angle_floor(trusted: Optional[dict[str, Any]], floor: Optional[dict[str, Any]]) -> bool:
    """Every compared error statistic of the variant is no larger than float16's own 1-px jitter."""
    if not trusted or not floor:
        return False
    return all(float(trusted[stat]) <= float(floor[stat]) for stat in ANGLE_STATS)


def verdicts_within_floor(changed: int, floor_changed: int) -> bool:
    """The variant changes no more clip outcomes than float16 does with its crop moved 1 px."""
    return changed <= floor_changed


def verdict_judgement(variant_changes: dict[str, int], floor_changes: dict[str, int], clip_runs: int) -> dict[str, Any]:
    """The verdicts reading over the same runs (as filmed and each perturbation): changed clip
    outcomes per run for the variant and for the shifted float16, totals and the decision."""
    runs = list(floor_changes)
    if set(variant_changes) != set(runs):
        raise ValueError(f"variant judged on runs {sorted(variant_changes)}, the floor on {sorted(runs)}")
    changed, floor_changed = sum(variant_changes.values()), sum(floor_changes.values())
    return {"runs": runs, "clip_runs": clip_runs, "changed": changed, "floor_changed": floor_changed,
            "changed_per_run": dict(variant_changes), "floor_changed_per_run": dict(floor_changes),
            "within": verdicts_within_floor(changed, floor_changed)}
