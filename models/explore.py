"""`station models quantize --explore`: the full, slow search behind the committed plan.

Needs the real clips. It calibrates on the plan's calibration clips (every frame, as filmed and
mirrored), builds every recipe worth trying, measures each on the held-out clips and on the
calibration clips, and runs a per-layer search: first each layer group alone in int8 (the rest
float) to rank groups by how much they disturb the angles, then int8 for the least disturbing
groups, one more at a time. Every judgement is made twice, on every crop and on the frames the hinge
analysis trusts (models/trust.py); the gate is the latter. The recipe is chosen on calibration frames
only; the gate is then judged on the held-out clips, and every planned variant within the angle floor goes through the
coaching check (models/outcomes.py: reps, verdicts and faults on the labelled clips, whole pipeline). The
gate is float16's own noise floor (models/noise_floor.py): float16 with its crop moved 1 px is judged
the same way on the same crops, and, in the whole pipeline, on the labelled clips and their perturbations.
Results go to models/quantization/*.json and models/QUANTIZATION.md.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from device.fileio import sha256_of
from device.pose.tflite import time_models
from models.accuracy import compare, run_landmarks, smoothed_errors
from models.calibration import CalibrationRanges, measure_extremes
from models.crops import CropSet, collect_crops
from models.graph import float_landmark_graph
from device.pose.model_files import SHIPPED_VARIANT, load_manifest
from models.noise_floor import ANGLE_STATS, CROP_SHIFT_PX, angle_ratios
from models.outcomes import CoachingCheck, describe, labelled_clips, summary
from models.quantize import (
    EVALUATION_PATH, PLAN_PATH, RANGES_PATH, REPORT_PATH, Plan, QuantizeError, VariantSpec,
    _float16_engine, _machine, analysis_profile, build_variant, qualifies, require_quantizer, within_gate,
)
from models.trust import DISAGREEMENT_DEG, TrustedReference

log = logging.getLogger(__name__)

HEADS = ("regression_1", "regression_2", "heatmap_64")
RANGE_POLICIES = ("minmax", "p99.9")
SEARCH_FRAME_STEP = 3  # the per-layer search judges on every 3rd calibration frame (both facings)


def main_variants() -> list[VariantSpec]:
    return [
        VariantSpec("float16_nomask", "float16_pruned",
                    "shipped float16 weights; the unused segmentation-mask branch removed (exact)"),
        VariantSpec("int8_weights", "weight_only", "int8 weights, float compute; mask branch removed"),
        VariantSpec("int8_dynamic", "dynamic", "int8 weights, activations quantized at run time; mask branch removed"),
        VariantSpec("int8_static", "static", "int8 weights and activations (calibrated min/max); mask branch removed"),
        VariantSpec("int8_static_float_heads", "static",
                    "static int8 with the landmark heads kept float (" + ", ".join(HEADS) + ")", float_groups=HEADS),
    ]


def diagnostic_variants() -> list[VariantSpec]:
    return [
        VariantSpec("float16_mask128", "float16_half_mask",
                    "shipped float16 weights; the person mask's last blocks run at 128x128 instead of 256x256 "
                    "(landmarks exact, mask coarser)"),
        VariantSpec("int8_static_withmask", "static", "static int8 of the whole shipped graph, mask branch kept", prune_mask=False),
        VariantSpec("int8_static_p999", "static", "static int8 with 99.9th-percentile activation ranges", ranges="p99.9"),
    ]


def shifted_reference(model_path: Path, crops: CropSet, threads: int, shift: int = CROP_SHIFT_PX) -> np.ndarray:
    """float16 landmarks on each crop moved by `shift` crop pixels right and down, mapped back.
    The tracker's crops move by this much between frames anyway; the disagreement it causes is
    the float16 model's own noise floor."""
    return run_landmarks(model_path, crops, threads, crop_shift=shift)


def _worst(row: dict[str, Any]) -> float:
    return max(row["hip_err_p95"], row["knee_err_p95"])


@dataclass
class Crops:
    """The float16 engine's crops of the calibration and held-out clips (each as filmed and mirrored),
    and how often the engine ran its detector while making them."""

    calibration: CropSet
    held_out: CropSet
    frames: int
    detector_run_pct: float


@dataclass
class References:
    """float16's landmarks and the angles the analysis trusts in them, on each crop set variants are
    judged on: the held-out clips, the calibration clips and the per-layer search's share of those."""

    held_out: TrustedReference
    calibration: TrustedReference
    search: TrustedReference
    search_floor: Optional[dict[str, Any]] = None  # float16 with its crop moved 1 px, on the search frames (trusted row)


@dataclass
class LayerGroups:
    """The landmark model's layer groups in graph order, with their op and convolution counts."""

    order: list[str]
    ops: dict[str, int]
    convs: dict[str, int]


@dataclass
class Findings:
    """Everything the exploration measured; the committed evaluation is written from it."""

    version: str
    profile: Any
    crops: Crops
    references: References
    floor: dict[str, Any]
    per_clip: dict[str, Any]
    sensitivity: list[dict[str, Any]]
    search: list[dict[str, Any]]
    in_plan: list[VariantSpec]
    results: dict[str, dict[str, Any]]
    float16_outcomes: Optional[dict[str, Any]]
    floor_coaching: Optional[dict[str, Any]]
    ms: dict[str, float]
    detector_ms: dict[str, float]


class Explorer:
    def __init__(self, settings, clips_dir: Path, plan: Plan, work_dir: Path, say: Callable[[str], None], pose_runs=None):
        self.settings, self.clips_dir, self.plan, self.work = settings, clips_dir, plan, work_dir
        self.say, self.pose_runs = say, pose_runs
        self.threads = settings.models.threads
        manifest = load_manifest()
        self.shipped_path = settings.models_dir / manifest.by_role("landmark").file
        self.shipped = self.shipped_path.read_bytes()

    def run(self) -> dict[str, Any]:
        started = time.perf_counter()
        version = require_quantizer()
        profile = analysis_profile(self.settings)
        crops = self._collect_crops()
        ranges = self._calibrate(crops.calibration, version)
        references = self._float16_references(crops, profile)
        floor, per_clip = self._noise_floor(references.held_out)
        references.search_floor = self._judge(references.search, shifted_reference(
            self.shipped_path, references.search.crops, self.threads))["trusted"]
        groups = self._layer_groups()
        sensitivity = self._probe_each_group(groups, ranges, references.search)
        search, mixed = self._search_int8_groups(groups, _least_disturbing_first(sensitivity), ranges, references)
        in_plan = main_variants() + ([mixed] if mixed else [])
        paths, results = self._judge_variants(in_plan + diagnostic_variants(), ranges, references, per_clip)
        float16_outcomes, floor_coaching = self._coaching(profile, in_plan, paths, results, floor["trusted"])
        ms, detector_ms = self._time_variants(crops.held_out, paths)
        findings = Findings(version, profile, crops, references, floor, per_clip, sensitivity, search, in_plan, results,
                            float16_outcomes, floor_coaching, ms, detector_ms)
        plan = replace(self.plan, variants=[replace(s, expected_sha256=results[s.name]["sha256"]) for s in in_plan])
        return {"plan": plan, "ranges": CalibrationRanges({"minmax": ranges.policies["minmax"]}, ranges.source),
                "evaluation": self._evaluation(findings, started)}

    # --- the steps of run(), in order ---------------------------------------------------------

    def _collect_crops(self) -> Crops:
        engine = _float16_engine(self.settings)
        self.say("collecting crops from the calibration and held-out clips")
        cal = collect_crops(engine, self.clips_dir, self.plan.calibration_clips).with_mirrored()
        held = collect_crops(engine, self.clips_dir, self.plan.evaluation_clips).with_mirrored()
        self.say(f"{len(cal)} calibration crops, {len(held)} held-out crops (as filmed and mirrored)")
        return Crops(cal, held, engine.frames, 100.0 * engine.detector_runs / max(engine.frames, 1))

    def _calibrate(self, cal: CropSet, version: str) -> CalibrationRanges:
        """Activation ranges of every range policy, from every calibration crop's extremes."""
        self.say("calibrating activation ranges on every calibration crop")
        float_graph = float_landmark_graph(self.shipped, prune_segmentation=False).to_bytes()
        extremes = measure_extremes(float_graph, cal, self.threads)
        return CalibrationRanges(
            {p: extremes.ranges(p) for p in RANGE_POLICIES},
            source={"clips": self.plan.calibration_clips, "crops": len(cal), "mirrored": True,
                    "calibrator": f"ai-edge-quantizer {version}, profiler-based, every crop's extremes kept"},
        )

    def _float16_references(self, crops: Crops, profile) -> References:
        self.say("float16 reference landmarks, and the angles the analysis trusts in them")
        ref_held = TrustedReference.of(run_landmarks(self.shipped_path, crops.held_out, self.threads), crops.held_out, profile)
        ref_cal = TrustedReference.of(run_landmarks(self.shipped_path, crops.calibration, self.threads), crops.calibration, profile)
        return References(ref_held, ref_cal, ref_cal.take(np.arange(0, len(crops.calibration), SEARCH_FRAME_STEP)))

    def _noise_floor(self, ref_held: TrustedReference) -> tuple[dict[str, Any], dict[str, Any]]:
        """float16 against itself with the crop moved by one pixel, overall and per clip (the
        per-clip table starts with it; the variants are added as they are judged)."""
        shifted = shifted_reference(self.shipped_path, ref_held.crops, self.threads)
        floor = self._judge(ref_held, shifted)
        floor["smoothed"] = smoothed_errors(ref_held.landmarks, shifted, ref_held.crops.segments())
        per_clip = {"noise floor (float16, crop moved 1 px)": ref_held.judge_by_clip(shifted)}
        self.say(f"float16 noise floor (crop moved 1 px): trusted hip p95 {floor['trusted']['hip_err_p95']:.1f} deg, "
                 f"knee p95 {floor['trusted']['knee_err_p95']:.1f} deg")
        return floor, per_clip

    def _layer_groups(self) -> LayerGroups:
        order: list[str] = []
        sizes: dict[str, int] = {}
        convs: dict[str, int] = {}
        for layer in float_landmark_graph(self.shipped, prune_segmentation=True).layers():
            if layer.group not in sizes:
                order.append(layer.group)
            sizes[layer.group] = sizes.get(layer.group, 0) + 1
            convs[layer.group] = convs.get(layer.group, 0) + (layer.op in ("CONV_2D", "DEPTHWISE_CONV_2D"))
        return LayerGroups(order, sizes, convs)

    def _probe_each_group(self, groups: LayerGroups, ranges: CalibrationRanges, ref_search: TrustedReference) -> list[dict[str, Any]]:
        """Each layer group alone in int8 (the rest float), judged on the search frames."""
        sensitivity = []
        for group in groups.order:
            spec = VariantSpec(f"probe_{group}", "static", f"only {group} in int8",
                               float_groups=tuple(g for g in groups.order if g != group))
            judged = self._judge(ref_search, run_landmarks(self._build(spec, ranges), ref_search.crops, self.threads))
            sensitivity.append({"group": group, "ops": groups.ops[group], "calibration": judged["all_frames"],
                                "calibration_trusted": judged["trusted"]})
            self.say(f"sensitivity {group:14s} trusted hip p95 {judged['trusted']['hip_err_p95']:5.1f}  "
                     f"knee p95 {judged['trusted']['knee_err_p95']:5.1f}")
        return sensitivity

    def _search_int8_groups(self, groups: LayerGroups, order: list[str], ranges: CalibrationRanges,
                            references: References) -> tuple[list[dict[str, Any]], Optional[VariantSpec]]:
        """int8 for the first k groups of `order`, k = 1, 2, ...; each step judged and timed. The
        mixed variant is the last step within float16's noise floor on the search frames that runs
        some convolution in int8."""
        ref_search = references.search
        search, search_paths, mixed = [], {}, None
        for k in range(1, len(order) + 1):
            int8_groups = order[:k]
            spec = VariantSpec(f"search_{k:02d}", "static", "", float_groups=tuple(g for g in groups.order if g not in int8_groups))
            path = self._build(spec, ranges)
            judged = self._judge(ref_search, run_landmarks(path, ref_search.crops, self.threads))
            search.append({"step": k, "int8_groups": int8_groups, "calibration": judged["all_frames"],
                           "calibration_trusted": judged["trusted"],
                           "within_floor": within_gate(judged, references.search_floor)})
            search_paths[spec.name] = path
            self.say(f"search step {k:2d} (+{order[k - 1]}): trusted hip p95 {judged['trusted']['hip_err_p95']:5.1f}  "
                     f"knee p95 {judged['trusted']['knee_err_p95']:5.1f}")
            # A recipe counts only if some convolution runs in int8; quantizing a lone PAD is no int8 model.
            if search[-1]["within_floor"] and any(groups.convs[g] for g in int8_groups):
                mixed = VariantSpec("int8_mixed", "static",
                                    f"per-layer search: int8 for {', '.join(int8_groups)}; the rest float",
                                    float_groups=spec.float_groups)
        search_set = ref_search.crops
        search_ms = time_models({SHIPPED_VARIANT: self.shipped_path, **search_paths},
                                [search_set.model_input(i) for i in range(0, len(search_set), max(1, len(search_set) // 20))],
                                rounds=3, threads=self.threads)
        for step in search:
            ms = search_ms[f"search_{step['step']:02d}"]
            step["ms_per_frame"], step["speedup"] = round(ms, 2), round(search_ms[SHIPPED_VARIANT] / ms, 2)
        return search, mixed

    def _judge_variants(self, specs: list[VariantSpec], ranges: CalibrationRanges, references: References,
                        per_clip: dict[str, Any]) -> tuple[dict[str, Path], dict[str, dict[str, Any]]]:
        """Build each variant and judge it on the held-out and the calibration clips (adds its row to `per_clip`)."""
        ref_held, ref_cal = references.held_out, references.calibration
        segments = ref_held.crops.segments()
        paths, results = {}, {}
        for spec in specs:
            path = self._build(spec, ranges)
            paths[spec.name] = path
            results[spec.name] = {"spec": spec, "sha256": sha256_of(path), "size": path.stat().st_size}
            self.say(f"judging {spec.name}")
            landmarks = run_landmarks(path, ref_held.crops, self.threads)
            judged = self._judge(ref_held, landmarks)
            results[spec.name]["held_out"] = judged["all_frames"]
            results[spec.name]["held_out_trusted"] = judged["trusted"]
            results[spec.name]["held_out_smoothed"] = smoothed_errors(ref_held.landmarks, landmarks, segments)
            per_clip[spec.name] = ref_held.judge_by_clip(landmarks)
            cal_judged = self._judge(ref_cal, run_landmarks(path, ref_cal.crops, self.threads))
            results[spec.name]["calibration"] = cal_judged["all_frames"]
            results[spec.name]["calibration_trusted"] = cal_judged["trusted"]
        return paths, results

    def _coaching(self, profile, in_plan: list[VariantSpec], paths: dict[str, Path], results: dict[str, Any],
                  floor_trusted: dict[str, Any]) -> tuple[Optional[dict[str, Any]], Optional[dict[str, Any]]]:
        """`station evaluate` on the labelled clips, end to end, for float16, float16 with its crop moved
        1 px and every planned variant within the angle floor: as filmed (the kept rule: no change)
        and under the verdicts reading's perturbations."""
        labels = labelled_clips(self.clips_dir)
        if labels is None:
            self.say(f"no labels.csv in {self.clips_dir}: reps, verdicts and faults not checked")
            return None, None
        detector = self.settings.models_dir / load_manifest().by_role("detector").file
        check = CoachingCheck(self.settings, detector, self.shipped_path, labels, profile, self.pose_runs, self.say)
        # Only where it decides (the pipeline runs are the slow part): a variant outside the angle floor
        # cannot qualify whatever its verdicts.
        for spec in in_plan:
            if within_gate({"trusted": results[spec.name]["held_out_trusted"]}, floor_trusted):
                results[spec.name]["outcomes"] = check.outcomes(paths[spec.name], spec.name)
                results[spec.name]["verdicts"] = check.verdicts(paths[spec.name], spec.name)
        floor_changed = check.floor_changed_clips()
        floor_coaching = {"runs": check.runs, "clip_runs": len(labels) * len(check.runs),
                          "changed": sum(len(c) for c in floor_changed.values()),
                          "changed_per_run": {run: len(c) for run, c in floor_changed.items()},
                          "changed_clips": {run: describe(c) for run, c in floor_changed.items() if c}}
        return summary(check.reference()), floor_coaching

    def _time_variants(self, held: CropSet, paths: dict[str, Path]) -> tuple[dict[str, float], dict[str, float]]:
        """ms per call of float16 and every variant on held-out crops, and of the detector beside float16."""
        timing_inputs = [held.model_input(i) for i in np.linspace(0, len(held) - 1, 40).astype(int)]
        ms = time_models({SHIPPED_VARIANT: self.shipped_path, **paths}, timing_inputs, rounds=5, threads=self.threads)
        detector_path = self.settings.models_dir / load_manifest().by_role("detector").file
        rng = np.random.default_rng(0)
        detector_inputs = {"detector": [rng.uniform(-1, 1, (224, 224, 3)).astype(np.float32) for _ in range(20)],
                           SHIPPED_VARIANT: timing_inputs[:20]}
        detector_ms = time_models({"detector": detector_path, SHIPPED_VARIANT: self.shipped_path}, detector_inputs,
                                  threads=self.threads)
        return ms, detector_ms

    def _evaluation(self, found: Findings, started: float) -> dict[str, Any]:
        """The committed evaluation (models/quantization/evaluation.json) the report renders from."""
        profile, crops, held_angles = found.profile, found.crops, found.references.held_out.angles
        in_plan_names = {s.name for s in found.in_plan}
        return {
            "date": dt.date.today().isoformat(),
            "machine": _machine(), "threads": self.threads, "ai_edge_quantizer": found.version,
            "gate": "noise floor",
            "gate_on": "trusted frames",
            "crop_shift_px": CROP_SHIFT_PX,
            "trust_rules": {"profile": profile.name, "min_visibility": profile.kinematics.min_visibility,
                            "min_bone_fraction": profile.kinematics.min_bone_fraction,
                            "bone_window_s": profile.kinematics.bone_window_s},
            "held_out_clips": self.plan.evaluation_clips, "held_out_crops": len(crops.held_out),
            "labelled_clips": len(labelled_clips(self.clips_dir) or []),
            "held_out_trusted_share": {"hip": round(float(held_angles.hip_trusted.mean()), 3),
                                       "knee": round(float(held_angles.knee_trusted.mean()), 3)},
            "calibration_clips": self.plan.calibration_clips, "calibration_crops": len(crops.calibration),
            "float16_ms_per_frame": round(found.ms[SHIPPED_VARIANT], 2),
            "detector": {"ms_per_call": round(found.detector_ms["detector"], 2),
                         "landmark_float16_ms_same_run": round(found.detector_ms[SHIPPED_VARIANT], 2),
                         "run_pct_of_frames": round(crops.detector_run_pct, 2),
                         "frames": crops.frames},
            "noise_floor": {"what": "float16 vs float16 with the crop moved by 1 crop pixel", "held_out": found.floor["all_frames"],
                            "held_out_trusted": found.floor["trusted"], "held_out_smoothed": found.floor["smoothed"],
                            "search_trusted": found.references.search_floor, "coaching": found.floor_coaching},
            "float16_outcomes": found.float16_outcomes,
            "per_clip_trusted": {name: {clip: e.row() for clip, e in clips.items()} for name, clips in found.per_clip.items()},
            "variants": {name: self._variant_record(r, name in in_plan_names, found.ms, found.floor["trusted"])
                         for name, r in found.results.items()},
            "sensitivity": found.sensitivity,
            "search": found.search,
            "search_frame_step": SEARCH_FRAME_STEP,
            "minutes": round((time.perf_counter() - started) / 60, 1),
        }

    def _variant_record(self, r: dict[str, Any], in_plan: bool, ms: dict[str, float], floor: dict[str, Any]) -> dict[str, Any]:
        spec = r["spec"]
        trusted = {"trusted": r["held_out_trusted"]}
        return {
            **spec.to_dict(), "precision": spec.precision, "sha256": r["sha256"], "size": r["size"],
            "in_plan": in_plan,
            "ms_per_frame": round(ms[spec.name], 2), "speedup": round(ms[SHIPPED_VARIANT] / ms[spec.name], 2),
            "floor_ratios": angle_ratios(r["held_out_trusted"], floor),
            "within_angle_floor": within_gate(trusted, floor),
            # Measured here on these very bytes (so judged_this_file holds); an exact rewrite is known by its kind.
            "qualifies": qualifies(trusted, floor, spec.exact, r.get("outcomes"), r.get("verdicts")),
            **{k: r[k] for k in ("held_out", "held_out_trusted", "held_out_smoothed", "calibration",
                                 "calibration_trusted", "outcomes", "verdicts") if k in r},
        }

    # --- helpers ------------------------------------------------------------------------------

    def _build(self, spec: VariantSpec, ranges: CalibrationRanges) -> Path:
        path = self.work / spec.file
        path.write_bytes(build_variant(spec, self.shipped, ranges))
        return path

    def _judge(self, reference: TrustedReference, landmarks: np.ndarray) -> dict[str, Any]:
        return {"all_frames": compare(reference.landmarks, landmarks).row(), "trusted": reference.judge(landmarks).row()}


def _least_disturbing_first(sensitivity: list[dict[str, Any]]) -> list[str]:
    """Layer groups ordered by how much int8 alone disturbs them: trusted-frames p95, then all frames."""
    return [s["group"] for s in sorted(sensitivity, key=lambda s: (_worst(s["calibration_trusted"]), _worst(s["calibration"])))]


def explore(settings, clips_dir: Path, say: Callable[[str], None] = print, out_dir: Optional[Path] = None,
            pose_runs=None) -> dict[str, Any]:
    """Run the search and write the committed plan, ranges, evaluation and report. `pose_runs`
    (device.commands.evaluate.PoseRuns) runs the labelled clips, perturbed too, through the pose cache."""
    import tempfile

    plan = Plan.load(PLAN_PATH)
    missing = [c for c in plan.calibration_clips + plan.evaluation_clips if not (clips_dir / c).is_file()]
    if missing:
        raise QuantizeError(f"--explore needs the real clips; missing under {clips_dir}: {', '.join(missing)}")
    with tempfile.TemporaryDirectory(prefix="hinge-explore-") as tmp:
        result = Explorer(settings, clips_dir, plan, Path(tmp), say, pose_runs).run()
    plan_path, ranges_path, evaluation_path, report_path = PLAN_PATH, RANGES_PATH, EVALUATION_PATH, REPORT_PATH
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        plan_path, ranges_path, evaluation_path, report_path = (out_dir / p.name for p in (PLAN_PATH, RANGES_PATH, EVALUATION_PATH, REPORT_PATH))
    plan_path.write_text(result["plan"].to_json())
    ranges_path.write_text(result["ranges"].to_json())
    evaluation_path.write_text(json.dumps(result["evaluation"], indent=1) + "\n")
    report_path.write_text(render_report(result["evaluation"]))
    say(f"wrote {plan_path}, {ranges_path}, {evaluation_path}, {report_path}")
    return result["evaluation"]


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _pr(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.2f}"


# --- the report -----------------------------------------------------------------------------------


def render_report(ev: dict[str, Any]) -> str:
    """models/QUANTIZATION.md from the committed evaluation: one renderer per section."""
    sections = [_intro(ev), _using_it(ev), _outcome_section(ev), _noise_floor_section(ev), _all_frames_section(ev),
                _trusted_section(ev), _per_clip_section(ev), _coaching_check_section(ev), _calibration_section(ev),
                _sensitivity_section(ev), _search_section(ev)]
    return "\n\n".join(sections) + "\n"


def _intro(ev: dict[str, Any]) -> str:
    rules, shift = ev["trust_rules"], ev["crop_shift_px"]
    return f"""# Landmark model variants: speed and accuracy

Produced by `station models quantize --explore` on {ev['date']} ({ev['machine']}, {ev['threads']} interpreter
threads, ai-edge-quantizer {ev['ai_edge_quantizer']}; {ev['minutes']} min). Regenerate it with that command where
the clips are; the plan, ranges and evaluation it wrote sit in `models/quantization/`.

**How it is judged.** Each variant and the shipped float16 model see the same real crops (the ROI crops the
float16 engine makes on the held-out clips {', '.join(ev['held_out_clips'])}, every frame, as filmed and mirrored
left-right: {ev['held_out_crops']} crops). Landmarks are projected to image pixels and read twice:

- **All frames** (reported, not gated): hip angle (shoulder-hip-knee) and knee angle (hip-knee-ankle) on the side
  nearer the camera by float16's visibility, on every crop. px = distance between the two models' near-side
  shoulder, hip, knee and ankle in image pixels; "sm" = p95 after a 5-frame centred running median.
- **Trusted frames** (the angles reading of the gate): the hinge analysis' own code reads each model's landmarks, one crop sequence (clip,
  facing) at a time in frame order with the frames' timestamps: `AngleTracker` with the `{rules['profile']}` profile
  (a landmark under visibility {rules['min_visibility']:g} is not used; a thigh or shin under {rules['min_bone_fraction']:g} of its
  {rules['bone_window_s']:g} s 90th-percentile length is rejected; camera side, facing and per-segment side as on the
  station) and `classify` (feet or head out of the image, turned to the camera, unreliable). Hip and knee flexion
  are compared on the frames whose framing is OK and whose angle the analysis has: the angles that reach a rep, a
  verdict or an alert. The One Euro smoothing is opened fully, so every frame is judged on its own. A frame float16
  trusts and the variant does not (*lost*) counts as a 180 deg error, so a variant cannot pass by making joints
  "invisible"; frames only the variant trusts (*gained*) are listed, and what they would do is caught by the
  coaching check.
- **Coaching check**: `station evaluate`'s code runs the whole pipeline with the variant (its own landmarks steer
  the tracked crop) on every labelled clip; any change vs float16 in a clip's rep count, a rep's hinge/squat
  verdict or the faults raised (a buzz the athlete hears or not) disqualifies the variant.
- **Noise floor**: the same float16 model with its crop moved {shift} px right and down (about what the tracked ROI moves
  between frames) is judged exactly like a variant: on the same crops, and through the whole pipeline on the labelled
  clips as filmed and under every `station evaluate --perturb` perturbation.

The gate is float16's own noise (models/noise_floor.py): a variant's trusted-frames hip and knee flexion error
against float16 on the held-out clips must be, at the median and at p95, no larger than float16's own with its crop
moved {shift} px (every ratio variant / floor <= 1); over the labelled clips and their perturbations it may change no
more clip outcomes (rep count, a rep's verdict, faults raised) than that shift does; and, as before, it may change
no rep count, verdict or fault on the labelled clips as filmed. Calibration and the per-layer search use only the other clips ({ev['calibration_crops']} crops).
ms/frame = median bare model call ({ev['threads']} threads), all models timed round-robin in one run; speedup = float16
ms / variant ms."""


def _using_it(ev: dict[str, Any]) -> str:
    return f"""## Using it

- `station models quantize` builds the planned variants (`models/quantization/plan.json`) from the shipped model
  and the committed activation ranges (`ranges.json`: per-tensor numbers, no pixels), times them on this machine,
  judges them on the held-out clips (one frame in 3) when `../shared/clips` (or `--clips DIR`) is there, else takes
  the committed accuracy and coaching check (`evaluation.json`) and says so in `quantized.json`. A variant within
  the angle floor that is not an exact rewrite and has no committed coaching check for its bytes is run through
  it (and the perturbations) there and then. It selects the
  fastest qualifying variant; running it again with everything in place rebuilds nothing (`--force` does).
  `--no-clips` skips the re-measurement. `station models status` lists the variants and the one in use.
- `station models quantize --explore` (clips needed, about {max(1, round(ev['minutes'] / 5) * 5)} minutes on 2 cores)
  recalibrates, tries every recipe below, runs the coaching check for every planned variant within the angle floor and rewrites the plan,
  ranges, evaluation and this report.
- `station evaluate --variant NAME` scores one variant on the labelled clips; `station bench CLIP` times the
  detector, every landmark variant and the whole replay pipeline in one run."""


# --- Outcome: what the station selects, and why --------------------------------------------------


def _outcome_section(ev: dict[str, Any]) -> str:
    chosen, int8_qualifying = _selection(ev)
    return f"""## Outcome

{_chosen_text(ev, chosen)} {_int8_text(ev, chosen, int8_qualifying)} {_search_text(ev)} Every variant's file is rebuilt by `station models quantize` on the
station itself and re-timed there, so the choice follows that machine's speed; the accuracy columns come from
here (or are re-measured where the clips are). `models.landmark_variant = "float16"` keeps the shipped model.

{_why_text(ev)}

{_detector_text(ev)}"""


def _selection(ev: dict[str, Any]) -> tuple[Optional[str], list[str]]:
    """The variant the station selects on the explore machine (None: float16), and the qualifying
    planned int8 variants, fastest first."""
    variants = ev["variants"]
    qualifying = sorted((v["ms_per_frame"], n) for n, v in variants.items() if v["qualifies"] and v["in_plan"])
    int8_qualifying = [n for _, n in qualifying if variants[n]["precision"] == "int8"]
    chosen = qualifying[0][1] if qualifying and qualifying[0][0] < ev["float16_ms_per_frame"] else None
    return chosen, int8_qualifying


def _planned_int8(variants: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(n, v) for n, v in variants.items() if v["precision"] == "int8" and v["in_plan"]]


def _fastest_int8(variants: dict[str, Any]) -> Optional[str]:
    fastest = min(((v["ms_per_frame"], n) for n, v in _planned_int8(variants)), default=None)
    return fastest[1] if fastest else None


def _most_accurate_int8(variants: dict[str, Any]) -> Optional[str]:
    best = min(((_worst(v["held_out_trusted"]), n) for n, v in _planned_int8(variants)), default=None)
    return best[1] if best else None


def _chosen_text(ev: dict[str, Any], chosen: Optional[str]) -> str:
    if not chosen:
        return "On this machine no variant is both faster and within the noise floor: the station runs the shipped float16 model."
    v = ev["variants"][chosen]
    t = v["held_out_trusted"]
    return (f"On this machine the station selects **`{chosen}`**: {v['speedup']:.2f}x the shipped "
            f"model's speed with trusted-frame hip/knee p95 error {t['hip_err_p95']:.2f} / {t['knee_err_p95']:.2f} deg.")


def _int8_text(ev: dict[str, Any], chosen: Optional[str], int8_qualifying: list[str]) -> str:
    """What became of the int8 variants: those that qualify, those within the angle floor that change
    the coaching, and why the fastest one fails."""
    variants = ev["variants"]
    within_changed = [n for n, v in variants.items() if v["in_plan"] and v["precision"] == "int8" and v["within_angle_floor"]
                      and not v["qualifies"]]
    parts = []
    if int8_qualifying:
        parts.append(_qualifying_int8_text(variants, int8_qualifying, chosen))
    parts += [_changes_coaching_text(ev, n, chosen) for n in within_changed]
    if not int8_qualifying and not within_changed:
        parts.append("**No int8 variant is within float16's own noise floor on the trusted frames.**")
    fastest = _fastest_int8(variants)
    if fastest and fastest not in int8_qualifying + within_changed:
        parts.append(_fastest_int8_fails_text(ev, fastest, variants[fastest]))
    return " ".join(parts)


def _qualifying_int8_text(variants: dict[str, Any], int8_qualifying: list[str], chosen: Optional[str]) -> str:
    slower = [n for n in int8_qualifying if n != chosen]
    return ("**int8 variants that qualify: " + ", ".join(f"`{n}` ({variants[n]['speedup']:.2f}x)" for n in int8_qualifying)
            + ".**" + (f" {', '.join(f'`{n}`' for n in slower)} {'is' if len(slower) == 1 else 'are'} not faster "
                       f"than `{chosen or 'float16'}` here, so not selected." if slower else ""))


def _changes_coaching_text(ev: dict[str, Any], name: str, chosen: Optional[str]) -> str:
    variants = ev["variants"]
    v = variants[name]
    outcome, verdicts = v.get("outcomes"), v.get("verdicts")
    reasons = []
    if not (outcome and outcome.get("same_as_float16")):
        how = describe(outcome["changed"]) if outcome and outcome["changed"] else "not checked"
        reasons.append(f"changes what the athlete hears on the labelled clips ({how})")
    if not (verdicts and verdicts["within"]):
        reasons.append(f"changes {verdicts['changed']} clip outcomes over the clips and their perturbations where float16 "
                       f"with its crop moved 1 px changes {verdicts['floor_changed']}" if verdicts
                       else "its verdicts over the perturbations were not judged")
    fastest_kept = variants[chosen]["ms_per_frame"] if chosen else ev["float16_ms_per_frame"]
    slower = (f"; it is not faster than `{chosen or 'float16'}` here either" if v["ms_per_frame"] >= fastest_kept else "")
    return (f"`{name}` ({v['speedup']:.2f}x) is within the angle floor ({_ratios_text(v)}) but "
            f"{' and '.join(reasons)}, so it does not qualify{slower}.")


def _ratios_text(v: dict[str, Any]) -> str:
    r = v["floor_ratios"]
    return ", ".join(f"{stat.replace('_err_', ' ')} {_ratio(r[stat])}x" for stat in ANGLE_STATS) + " of the floor"


def _ratio(value: Optional[float]) -> str:
    return "inf" if value is None else f"{value:.2f}"


def _fastest_int8_fails_text(ev: dict[str, Any], name: str, v: dict[str, Any]) -> str:
    t, floor = v["held_out_trusted"], ev["noise_floor"]["held_out_trusted"]
    if _worst(t) >= DISAGREEMENT_DEG:
        trusted_text = (f"on trusted frames it loses {t['hip_lost']} hip and {t['knee_lost']} knee angles that float16 "
                        f"keeps (float16 with its crop moved 1 px loses {floor['hip_lost']} / {floor['knee_lost']}; over 5% of "
                        "them, so its p95 is the 180 deg charged per lost frame)")
    else:
        trusted_text = (f"on trusted frames it moves hip/knee flexion by {t['hip_err_p95']:.1f} / {t['knee_err_p95']:.1f} deg "
                        f"at p95 where the 1 px shift moves them by {floor['hip_err_p95']:.1f} / {floor['knee_err_p95']:.1f}")
    return (f"The fastest int8 variant, `{name}` ({v['speedup']:.2f}x), is outside float16's noise floor: {trusted_text} "
            f"({_ratios_text(v)}).")


def _search_text(ev: dict[str, Any]) -> str:
    variants = ev["variants"]
    if "int8_mixed" in variants:
        return ("The per-layer search, judged on trusted frames, found a recipe within float16's noise floor on the "
                f"calibration clips: `int8_mixed` ({variants['int8_mixed']['description'].split(': ', 1)[-1]}).")
    return ("The per-layer search, judged on trusted frames, found no recipe with any convolution in int8 "
            "within float16's noise floor on the calibration clips, so the plan has no mixed variant.")


def _why_text(ev: dict[str, Any]) -> str:
    floor_trusted = ev["noise_floor"]["held_out_trusted"]
    coaching = ev["noise_floor"].get("coaching")
    verdict_text = (f" Through the whole pipeline the same 1 px crop shift changes {coaching['changed']} of "
                    f"{coaching['clip_runs']} clip outcomes over the labelled clips and their perturbations (*Noise floor* below)."
                    if coaching else "")
    return (
        "Why the yardstick is the model's own noise: the float16 model itself moves when its crop shifts by one "
        f"pixel (trusted frames: hip {floor_trusted['hip_err_p95']:.1f} / knee {floor_trusted['knee_err_p95']:.1f} deg p95, "
        f"{floor_trusted['knee_lost']} knee frames lost and {floor_trusted['knee_gained']} gained), and the tracked crop moves "
        "that much between frames anyway, so a fixed per-frame gate of a few degrees asked a variant to be steadier than the "
        f"model it replaces.{verdict_text} Drawn with device/pose/draw.py, the worst frames of the held-out clips are ones "
        "the station trusts: a knee or shin behind a barbell plate that both models report above the visibility threshold "
        "but place differently, or the bent knee at the bottom of a deep squat. A variant within that noise still has to "
        "leave every count, verdict and fault of the labelled clips as float16 gives them.")


def _detector_text(ev: dict[str, Any]) -> str:
    det = ev["detector"]
    det_share = det["ms_per_call"] * det["run_pct_of_frames"] / 100
    return f"""**The detector** costs {det['ms_per_call']:.1f} ms per call (shipped float16 landmark model {det['landmark_float16_ms_same_run']:.1f}
ms in the same run) but ran on {det['run_pct_of_frames']:.1f}% of the {det['frames']} frames of all clips, i.e. about
{det_share:.2f} ms per frame on average. An int8 detector could save at most that, so it is not quantized."""


# --- the tables -----------------------------------------------------------------------------------


def _all_frames_section(ev: dict[str, Any]) -> str:
    variants = ev["variants"]
    header = ["variant", "size", "ms/frame", "speedup", "hip med", "hip p95", "hip max", "knee med", "knee p95",
              "knee max", "px med", "px p95", "hip p95 sm", "knee p95 sm"]
    rows = [["float16 (shipped)", "-", f"{ev['float16_ms_per_frame']:.2f}", "1.00", "0", "0", "0", "0", "0", "0", "0", "0", "0", "0"]]
    for name, v in variants.items():
        h, sm = v["held_out"], v["held_out_smoothed"]
        rows.append([name, f"{v['size'] / 1e6:.1f} MB", v["ms_per_frame"], v["speedup"],
                     h["hip_err_median"], h["hip_err_p95"], h["hip_err_max"],
                     h["knee_err_median"], h["knee_err_p95"], h["knee_err_max"],
                     h["px_err_median"], h["px_err_p95"], sm["hip_err_p95"], sm["knee_err_p95"]])
    description = "\n".join(f"- `{name}`: {v['description']}" for name, v in variants.items())
    return f"""## Every variant, held-out clips, all frames (reported, not gated)

{_table(header, rows)}

{description}"""


def _trusted_section(ev: dict[str, Any]) -> str:
    share, floor = ev["held_out_trusted_share"], ev["noise_floor"]["held_out_trusted"]
    header = ["variant", "hip trusted", "knee trusted", "hip lost", "hip gained", "knee lost", "knee gained",
              "hip med", "hip p95", "hip max", "knee med", "knee p95", "knee max", "within floor",
              "same coaching"]
    rows = [["float16 (shipped)", f"{100 * share['hip']:.1f}%", f"{100 * share['knee']:.1f}%", 0, 0, 0, 0,
             "0", "0", "0", "0", "0", "0", "yes", "yes"],
            [f"float16, crop moved {ev['crop_shift_px']} px (the floor)", f"{100 * floor['variant_hip_trusted_share']:.1f}%",
             f"{100 * floor['variant_knee_trusted_share']:.1f}%", floor["hip_lost"], floor["hip_gained"], floor["knee_lost"],
             floor["knee_gained"], floor["hip_err_median"], floor["hip_err_p95"], floor["hip_err_max"],
             floor["knee_err_median"], floor["knee_err_p95"], floor["knee_err_max"], "-", "-"]]
    for name, v in ev["variants"].items():
        t = v["held_out_trusted"]
        same = v["outcomes"]["same_as_float16"] if v.get("outcomes") else None
        rows.append([name, f"{100 * t['variant_hip_trusted_share']:.1f}%", f"{100 * t['variant_knee_trusted_share']:.1f}%",
                     t["hip_lost"], t["hip_gained"], t["knee_lost"], t["knee_gained"],
                     t["hip_err_median"], t["hip_err_p95"], t["hip_err_max"],
                     t["knee_err_median"], t["knee_err_p95"], t["knee_err_max"],
                     v["within_angle_floor"], "-" if same is None else same])
    return f"""## Every variant, held-out clips, trusted frames (the angles reading)

Why the trusted frames: the station never acts on an angle from a frame it does not trust. Judging a variant
on every crop also scores angles the analysis throws away (hidden joints guessed behind a plate); the gate should
measure what reaches the athlete: the frames whose angles reach a verdict (median and p95 over the frames float16
trusts), and a variant that loses a frame float16 keeps is charged 180 deg for it. The floor row is float16 with its
crop moved {ev['crop_shift_px']} px judged the same way; "within floor" = every median and p95 no larger than the floor's. "hip/knee trusted" = share of the held-out crops on which that model's angle is
trusted. Angles here are the analysis' hip flexion (trunk + thigh from vertical) and knee flexion (thigh + shin),
each segment from the side the analysis picks; max = largest error on frames both models trust.

{_table(header, rows)}"""


def _per_clip_section(ev: dict[str, Any]) -> str:
    variants, per_clip = ev["variants"], ev["per_clip_trusted"]
    floor_key = next(k for k in per_clip if k.startswith("noise floor"))
    named = {n for n in (_most_accurate_int8(variants), _fastest_int8(variants)) if n}
    shown = [floor_key] + sorted(named, key=lambda n: variants[n]["ms_per_frame"], reverse=True)
    header = ["clip", "crops", "hip trusted", "knee trusted"]
    for name in shown:
        short = "1 px shift" if name == floor_key else name
        header += [f"{short} hip p95", f"{short} knee p95", f"{short} knee lost"]
    rows = []
    for clip in ev["held_out_clips"]:
        ref_row = per_clip[floor_key][clip]
        row = [clip, ref_row["frames"], f"{100 * ref_row['hip_trusted_share']:.0f}%", f"{100 * ref_row['knee_trusted_share']:.0f}%"]
        for name in shown:
            e = per_clip[name][clip]
            row += [e["hip_err_p95"], e["knee_err_p95"], e["knee_lost"]]
        rows.append(row)
    return f"""## Per clip, held-out, trusted frames

float16's trusted share per clip, and trusted-frames p95 (deg) and lost knee frames for float16 with its crop moved by
one pixel (its own noise floor) and for the int8 variants named.

{_table(header, rows)}"""


def _coaching_check_section(ev: dict[str, Any]) -> str:
    return f"""## Coaching check: `station evaluate` on every labelled clip

Whole pipeline per model (detector, tracked crop, landmarks, analysis) on all labelled clips; totals and
per-fault precision / recall over clips.

{_coaching_tables(ev)}"""


def _coaching_tables(ev: dict[str, Any]) -> str:
    ref = ev.get("float16_outcomes")
    if not ref:
        return "Not checked: the clips had no labels.csv when `--explore` ran."
    planned = [(n, v["outcomes"]) for n, v in ev["variants"].items() if v.get("outcomes")]
    runs = [("float16 (shipped)", ref)] + planned
    rows = []
    for name, o in runs:
        t = o["totals"]
        checked = "same_as_float16" in o
        rows.append([name, f"{t['reps_counted']} / {t['reps_true']}", f"{t['clips_reps_exact']} / {t['clips']}",
                     f"{t['clips_movement_right']} / {t['clips']}", ", ".join(f"{k} {n}" for k, n in t["verdicts"].items()),
                     o["same_reps_and_verdicts"] if checked else "-", o["same_faults"] if checked else "-",
                     describe(o["changed"]) if checked and o["changed"] else "-"])
    totals = _table(["model", "reps counted / true", "clips reps exact", "clips verdict right", "verdicts (label->said)",
                     "same reps and verdicts", "same faults", "changes vs float16 (+ raised, - missed)"], rows)
    faults = sorted({f["fault"] for _, o in runs for f in o["faults"]})
    by_model = [{f["fault"]: f for f in o["faults"]} for _, o in runs]
    fault_rows = []
    for fault in faults:
        row = [fault]
        for found in by_model:
            f = found.get(fault)
            row.append("-" if f is None else f"{_pr(f['precision'])} / {_pr(f['recall'])} ({f['tp']}/{f['fp']}/{f['fn']})")
        fault_rows.append(row)
    fault_table = _table(["fault: precision / recall (tp/fp/fn)"] + [n for n, _ in runs], fault_rows)
    return f"{totals}\n\n{fault_table}"


def _calibration_section(ev: dict[str, Any]) -> str:
    rows = [[name, v["calibration"]["hip_err_p95"], v["calibration"]["knee_err_p95"],
             v["calibration_trusted"]["hip_err_p95"], v["calibration_trusted"]["knee_err_p95"],
             v["calibration_trusted"]["knee_lost"]] for name, v in ev["variants"].items()]
    header = ["variant", "hip p95 all", "knee p95 all", "hip p95 trusted", "knee p95 trusted", "knee lost"]
    return f"""## The same variants on the calibration clips

{_table(header, rows)}"""


def _noise_floor_section(ev: dict[str, Any]) -> str:
    floor, floor_trusted = ev["noise_floor"]["held_out"], ev["noise_floor"]["held_out_trusted"]
    smoothed = ev["noise_floor"]["held_out_smoothed"]
    return f"""## Noise floor of the float16 model itself

The float16 model compared with itself on the same held-out crops moved by one crop pixel (about what the
tracked ROI moves between frames). All frames: hip error median {floor['hip_err_median']:.2f} / p95 {floor['hip_err_p95']:.2f} / max
{floor['hip_err_max']:.1f} deg, knee {floor['knee_err_median']:.2f} / {floor['knee_err_p95']:.2f} / {floor['knee_err_max']:.1f} deg,
px {floor['px_err_median']:.2f} / {floor['px_err_p95']:.2f}; after the 5-frame running median, hip p95
{smoothed['hip_err_p95']:.2f} and knee p95 {smoothed['knee_err_p95']:.2f} deg.
Trusted frames: hip {floor_trusted['hip_err_median']:.2f} / {floor_trusted['hip_err_p95']:.2f} / {floor_trusted['hip_err_max']:.1f} deg,
knee {floor_trusted['knee_err_median']:.2f} / {floor_trusted['knee_err_p95']:.2f} / {floor_trusted['knee_err_max']:.1f} deg;
hip frames lost / gained {floor_trusted['hip_lost']} / {floor_trusted['hip_gained']}, knee {floor_trusted['knee_lost']} / {floor_trusted['knee_gained']}.

{_floor_coaching_text(ev)}

{_judgement_table(ev)}"""


def _floor_coaching_text(ev: dict[str, Any]) -> str:
    coaching = ev["noise_floor"].get("coaching")
    if not coaching:
        return "The whole-pipeline reading was not made: the clips had no labels.csv when `--explore` ran."
    per_run = ", ".join(f"{run} {n}" for run, n in coaching["changed_per_run"].items())
    clips = "; ".join(f"{run}: {text}" for run, text in coaching["changed_clips"].items()) or "none"
    return (f"Through the whole pipeline (detector, tracked crop, landmarks, analysis) on the {ev['labelled_clips']} labelled "
            f"clips as filmed and under each `station evaluate --perturb` perturbation ({coaching['clip_runs']} clip runs), "
            f"float16 with its crop moved {ev['crop_shift_px']} px changes the outcome (rep count, a rep's verdict or the "
            f"faults raised) of {coaching['changed']} clip runs: {per_run}. Changed: {clips}.")


def _judgement_table(ev: dict[str, Any]) -> str:
    """Every variant against the floor: the angle ratios and the changed clip outcomes."""
    header = ["variant", "hip med / floor", "hip p95 / floor", "knee med / floor", "knee p95 / floor", "angles within floor",
              "clip outcomes changed (as filmed + perturbed)", "floor changed", "verdicts within floor",
              "same coaching as filmed", "qualifies"]
    rows = []
    for name, v in ev["variants"].items():
        r, verdicts, outcome = v["floor_ratios"], v.get("verdicts"), v.get("outcomes")
        if verdicts:
            changed, floor_changed, within = f"{verdicts['changed']} of {verdicts['clip_runs']}", verdicts["floor_changed"], verdicts["within"]
        else:
            changed = within = ("not run: diagnostic only" if not v["in_plan"] else
                                "not run: outside the angle floor" if not v["within_angle_floor"] else "not run")
            floor_changed = "-"
        rows.append([name] + [_ratio(r[stat]) for stat in ANGLE_STATS] + [v["within_angle_floor"], changed, floor_changed,
                    within, "-" if not outcome else outcome["same_as_float16"], v["qualifies"]])
    return f"""### The noise-floor judgement, every variant

Ratios are the variant's trusted-frames error against float16 over the floor's on the same held-out crops (<= 1 is
within the floor). The verdicts reading runs only for planned variants within the angle floor (the pipeline runs are
the slow part); "same coaching as filmed" is the rule kept from before.

{_table(header, rows)}"""


def _sensitivity_section(ev: dict[str, Any]) -> str:
    rows = [[s["group"], s["ops"], s["calibration"]["hip_err_p95"], s["calibration"]["knee_err_p95"],
             s["calibration"]["px_err_p95"], s["calibration_trusted"]["hip_err_p95"], s["calibration_trusted"]["knee_err_p95"]]
            for s in ev["sensitivity"]]
    header = ["group", "ops", "hip p95 all", "knee p95 all", "px p95 all", "hip p95 trusted", "knee p95 trusted"]
    return f"""## Per-layer sensitivity (calibration clips, one frame in {ev['search_frame_step']})

Only the named group in static int8, everything else float. Groups follow the graph: `backbone_R` feeds both
heads at R x R resolution, `heatmap_R` is the decoder that only feeds the 64x64 heatmap, `regression_R` the tail
that only feeds the landmark/presence/world outputs. The search below adds groups in order of the trusted-frames
p95.

{_table(header, rows)}"""


def _search_section(ev: dict[str, Any]) -> str:
    floor = ev["noise_floor"]["search_trusted"]
    rows = [[s["step"], s["int8_groups"][-1], s["ms_per_frame"], s["speedup"], s["calibration"]["hip_err_p95"],
             s["calibration"]["knee_err_p95"], s["calibration_trusted"]["hip_err_median"], s["calibration_trusted"]["hip_err_p95"],
             s["calibration_trusted"]["knee_err_median"], s["calibration_trusted"]["knee_err_p95"], s["within_floor"]]
            for s in ev["search"]]
    header = ["step", "added group", "ms/frame", "speedup", "hip p95 all", "knee p95 all", "hip med trusted", "hip p95 trusted",
              "knee med trusted", "knee p95 trusted", "within floor"]
    return f"""## Per-layer search (calibration clips, one frame in {ev['search_frame_step']})

Static int8 for the least disturbing groups first, one more group per step, the rest float. Every step is built
on the mask-pruned graph, so its speedup over the shipped model includes the pruning's own
{ev['variants']['float16_nomask']['speedup']:.2f}x (`float16_nomask`); that is the speed an int8 recipe has to beat.
The floor on these frames (float16, crop moved {ev['crop_shift_px']} px, trusted): hip {floor['hip_err_median']:.2f} / {floor['hip_err_p95']:.2f} deg,
knee {floor['knee_err_median']:.2f} / {floor['knee_err_p95']:.2f} deg (median / p95); the mixed variant is the last step within it.

{_table(header, rows)}"""
