"""`station models quantize`: build the landmark model variants, judge them, pick one.

Every variant starts from the sha256-pinned shipped model, rewritten exactly (models/graph.py), and
is quantized with ai-edge-quantizer following a committed plan (models/quantization/plan.json) and
committed activation ranges (ranges.json: per-tensor numbers measured on real crops, no pixels).
So a Pi without the clips rebuilds the same files. Each variant is then judged against float16 in
the coach's units on clips held out from calibration: hip and knee angle error on every crop
(models/accuracy.py, reported) and on the frames the hinge analysis trusts (models/trust.py, the
gate), measured here when the clips are present, otherwise taken from the committed evaluation and
labelled so. The station uses the fastest variant on this machine that is within the shipped model's
own noise floor (models/noise_floor.py: its trusted-frames hip and knee error no larger than float16's
with its crop moved 1 px, and no more changed clip outcomes on the labelled clips and their
perturbations) and which changes no rep count, verdict or fault on the labelled clips (models/outcomes.py);
the shipped float16 model is the fallback.

`--explore` (needs the clips, slow) recalibrates, tries every recipe including the per-layer
search, and rewrites the committed plan, ranges, evaluation and models/QUANTIZATION.md.
"""
from __future__ import annotations

import importlib
import importlib.metadata
import json
import logging
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from device.errors import ModelError, StationError
from device.fileio import sha256_of
from models.calibration import CalibrationRanges
from models.graph import float_landmark_graph, half_mask_float16, pruned_float16
from models.noise_floor import CROP_SHIFT_PX, within_angle_floor
from models.quiet import quiet_stderr
from device.pose.model_files import (
    FETCH_HINT,
    QUANTIZED_RECORD,
    SHIPPED_VARIANT,
    check_file,
    load_manifest,
    read_quantized_record,
)

log = logging.getLogger(__name__)

PLAN_DIR = Path(__file__).with_name("quantization")
PLAN_PATH = PLAN_DIR / "plan.json"
RANGES_PATH = PLAN_DIR / "ranges.json"
EVALUATION_PATH = PLAN_DIR / "evaluation.json"
REPORT_PATH = Path(__file__).with_name("QUANTIZATION.md")
# Bump when the way a plan turns into bytes, or the selection rule, changes, so old records are rebuilt
# (2: a selectable variant must keep the person mask; 3: the record carries each model's MACs, which
# `station bench` turns into the Pi budget).
BUILD_FORMAT = 3
INSTALL_HINT = "install it with `pip install -e '.[quantize]'` (ai-edge-quantizer==0.10.0)"
DEFAULT_EVAL_FRAME_STEP = 3
TIMING_INPUTS = 10
TIMING_ROUNDS = 5


class QuantizeError(StationError):
    """The quantize step cannot run as asked (missing extra, clips, or plan)."""


def require_quantizer() -> str:
    """The installed ai-edge-quantizer version, or a clear error naming the install command."""
    try:
        importlib.import_module("ai_edge_quantizer")
    except ImportError as err:
        raise QuantizeError(f"ai-edge-quantizer is not importable ({err}): {INSTALL_HINT}") from None
    return importlib.metadata.version("ai-edge-quantizer")


# --- recipes ------------------------------------------------------------------------------------


# Kinds that rewrite the shipped float16 graph and keep its weights (no quantizer involved).
FLOAT16_REWRITES = ("float16_pruned", "float16_half_mask")


@dataclass(frozen=True)
class VariantSpec:
    """One recipe. kind: 'float16_pruned' (shipped weights, mask branch removed), 'float16_half_mask'
    (shipped weights, the person mask made at 128x128: models/graph.py halve_person_mask),
    'weight_only' (int8 weights, float compute), 'dynamic' (int8 weights, activations quantized on
    the fly) or 'static' (int8 weights and calibrated int8 activations; `float_groups` stay float)."""

    name: str
    kind: str
    description: str
    prune_mask: bool = True
    ranges: str = "minmax"
    float_groups: tuple[str, ...] = ()
    expected_sha256: Optional[str] = None

    @property
    def file(self) -> str:
        return f"pose_landmark_full_{self.name}.tflite"

    @property
    def exact(self) -> bool:
        """A pure graph rewrite: same arithmetic as the shipped model, so same landmarks."""
        return self.kind == "float16_pruned"

    @property
    def precision(self) -> str:
        return "float16" if self.kind in FLOAT16_REWRITES else "int8"

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "kind": self.kind, "description": self.description}
        if self.kind not in FLOAT16_REWRITES:
            data["prune_mask"] = self.prune_mask
        if self.kind == "static":
            data["ranges"] = self.ranges
            data["float_groups"] = list(self.float_groups)
        if self.expected_sha256:
            data["expected_sha256"] = self.expected_sha256
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "VariantSpec":
        return cls(
            name=data["name"], kind=data["kind"], description=data.get("description", ""),
            prune_mask=bool(data.get("prune_mask", True)), ranges=data.get("ranges", "minmax"),
            float_groups=tuple(data.get("float_groups", ())), expected_sha256=data.get("expected_sha256"),
        )


@dataclass
class Plan:
    """The committed recipe list and the clip split (the gate is the noise floor, models/noise_floor.py)."""

    calibration_clips: list[str]
    evaluation_clips: list[str]
    variants: list[VariantSpec]
    notes: str = ""

    @classmethod
    def load(cls, path: Path = PLAN_PATH) -> "Plan":
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise QuantizeError(f"cannot read the quantization plan {path}: {err}") from None
        return cls(
            calibration_clips=list(data["calibration_clips"]),
            evaluation_clips=list(data["evaluation_clips"]),
            variants=[VariantSpec.from_dict(v) for v in data["variants"]],
            notes=data.get("notes", ""),
        )

    def to_json(self) -> str:
        data = {
            "notes": self.notes,
            "calibration_clips": self.calibration_clips,
            "evaluation_clips": self.evaluation_clips,
            "variants": [v.to_dict() for v in self.variants],
        }
        return json.dumps(data, indent=2) + "\n"


def build_variant(spec: VariantSpec, shipped: bytes, ranges: Optional[CalibrationRanges]) -> bytes:
    """The variant's .tflite bytes. Deterministic for a given shipped model, plan and ranges."""
    if spec.kind == "float16_pruned":
        return pruned_float16(shipped)
    if spec.kind == "float16_half_mask":
        return half_mask_float16(shipped)
    from ai_edge_quantizer import qtyping, quantizer

    ops = qtyping.TFLOperationName
    graph = float_landmark_graph(shipped, prune_segmentation=spec.prune_mask)
    layers = graph.layers()
    unknown = set(spec.float_groups) - {layer.group for layer in layers}
    if unknown:
        raise QuantizeError(f"variant {spec.name}: no layer group(s) {sorted(unknown)} in the landmark model")
    tensors = {t.name.decode() if isinstance(t.name, bytes) else t.name for t in graph.subgraph.tensors}
    q = quantizer.Quantizer(graph.to_bytes())
    calibration = None
    if spec.kind == "weight_only":
        q.add_weight_only_config(".*", ops.ALL_SUPPORTED, 8)
    elif spec.kind == "dynamic":
        q.add_dynamic_config(".*", ops.ALL_SUPPORTED, 8)
    elif spec.kind == "static":
        if ranges is None:
            raise QuantizeError(f"variant {spec.name} needs calibration ranges ({RANGES_PATH})")
        q.add_static_config(".*", ops.ALL_SUPPORTED, activation_num_bits=8, weight_num_bits=8)
        # Float in, float out: the engine feeds float crops and reads float landmarks.
        q.update_quantization_recipe(".*", ops.INPUT, algorithm_key="no_quantize")
        q.update_quantization_recipe(".*", ops.OUTPUT, algorithm_key="no_quantize")
        import re

        for layer in layers:
            if layer.group in spec.float_groups:
                q.update_quantization_recipe(f"^{re.escape(layer.scope)};$", ops.ALL_SUPPORTED, algorithm_key="no_quantize")
        calibration = ranges.qsvs(spec.ranges, tensors)
    else:
        raise QuantizeError(f"variant {spec.name}: unknown kind {spec.kind!r}")
    with quiet_stderr():
        result = q.quantize(calibration, enable_progress_bar=False, enable_progress_report=False)
    return bytes(result.quantized_model)


# --- the record ---------------------------------------------------------------------------------


def fingerprint(shipped_sha: str, plan_path: Path, ranges_path: Path, evaluation_path: Path = EVALUATION_PATH) -> dict[str, Any]:
    """What the record depends on: the built files (shipped model, plan, ranges) and the committed
    evaluation the selection may rest on. A record with the same fingerprint need not be rebuilt."""
    return {
        "shipped_sha256": shipped_sha,
        "plan_sha256": sha256_of(plan_path),
        "ranges_sha256": sha256_of(ranges_path) if ranges_path.is_file() else None,
        "evaluation_sha256": sha256_of(evaluation_path) if evaluation_path.is_file() else None,
        "build_format": BUILD_FORMAT,
    }


def record_is_current(models_dir: Path, expected: dict[str, Any]) -> bool:
    try:
        record = read_quantized_record(models_dir)
    except ModelError:
        return False
    if not record or record.get("fingerprint") != expected:
        return False
    for variant in record.get("variants", []):
        path = models_dir / variant["file"]
        try:
            check_file(path, variant["sha256"], variant.get("size"), "")
        except ModelError:
            return False
    return True


def _write_atomic(path: Path, data: bytes) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, path)


@dataclass
class QuantizeOutcome:
    record: dict[str, Any]
    rebuilt: bool
    seconds: float
    rows: list[dict[str, Any]] = field(default_factory=list)


def default_clips_dir() -> Optional[Path]:
    candidate = Path(__file__).resolve().parents[1].parent / "shared" / "clips"
    return candidate if candidate.is_dir() else None


def _machine() -> str:
    return f"{platform.machine()} {platform.processor() or platform.system()}, {os.cpu_count()} cores"


@dataclass(frozen=True)
class BuiltVariant:
    spec: VariantSpec
    path: Path
    sha256: str
    size: int

    @property
    def matches_committed(self) -> Optional[bool]:
        return self.sha256 == self.spec.expected_sha256 if self.spec.expected_sha256 else None


@dataclass
class Accuracy:
    """Per-variant angle errors and where they come from (measured here, or the committed file).
    errors: name -> {"all_frames": every held-out crop, "trusted": the frames the analysis trusts};
    floor: float16 with its crop moved 1 px judged the same way on the same crops (its trusted row);
    outcomes: name -> the coaching check (models/outcomes.py) where it was made or committed;
    verdicts: name -> the noise floor's verdicts reading (models/noise_floor.py) where made or committed."""

    errors: dict[str, dict[str, Any]]
    meta: dict[str, Any]
    timing_inputs: list[np.ndarray]
    proven_exact: set[str] = field(default_factory=set)
    outcomes: dict[str, dict[str, Any]] = field(default_factory=dict)
    floor: Optional[dict[str, Any]] = None
    verdicts: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def measured(self) -> bool:
        return self.meta["accuracy_source"] == "measured"


def build_all(plan: Plan, shipped: bytes, ranges: Optional[CalibrationRanges], models_dir: Path) -> list[BuiltVariant]:
    built = []
    for spec in plan.variants:
        t0 = time.perf_counter()
        data = build_variant(spec, shipped, ranges)
        path = models_dir / spec.file
        _write_atomic(path, data)
        variant = BuiltVariant(spec, path, sha256_of(path), len(data))
        built.append(variant)
        same = {True: "matches the committed build", False: "differs from the committed build", None: "no committed build"}
        log.info("built %s (%.1f MB, %.1fs; sha256 %s… %s)", spec.file, len(data) / 1e6, time.perf_counter() - t0,
                 variant.sha256[:12], same[variant.matches_committed])
    return built


def analysis_profile(settings):
    """The drill profile whose trust rules (visibility, bone check, framing) decide which angles count."""
    from device.analysis.profiles import load_profile

    return load_profile(settings.analysis.profile, settings.analysis.profiles_dir)


def _proven_exact(built: list[BuiltVariant], shipped_path: Path, settings) -> set[str]:
    from models.accuracy import identical_outputs

    threads, runtime = settings.models.threads, settings.models.runtime
    return {b.spec.name for b in built if b.spec.exact and identical_outputs(shipped_path, b.path, threads, runtime)}


def measure_accuracy(settings, plan: Plan, built: list[BuiltVariant], shipped_path: Path, clips_dir: Path,
                     frame_step: int) -> Accuracy:
    """Each variant against float16 on the held-out clips' real crops, as filmed and mirrored: on
    every crop, and on the frames the hinge analysis trusts (models/trust.py)."""
    from models.crops import collect_crops
    from models.accuracy import compare, run_landmarks
    from models.trust import TrustedReference

    threads, runtime = settings.models.threads, settings.models.runtime
    profile = analysis_profile(settings)
    crops = collect_crops(_float16_engine(settings), clips_dir, plan.evaluation_clips, frame_step=frame_step).with_mirrored()
    log.info("judging on %d held-out crops (one frame in %d of %d clips, as filmed and mirrored)",
             len(crops), frame_step, len(plan.evaluation_clips))
    reference = TrustedReference.of(run_landmarks(shipped_path, crops, threads, runtime), crops, profile)
    floor = reference.judge(run_landmarks(shipped_path, crops, threads, runtime, crop_shift=CROP_SHIFT_PX)).row()
    errors = {}
    for b in built:
        landmarks = run_landmarks(b.path, crops, threads, runtime)
        errors[b.spec.name] = {"all_frames": compare(reference.landmarks, landmarks).row(),
                               "trusted": reference.judge(landmarks).row()}
    meta = {"accuracy_source": "measured", "clips": plan.evaluation_clips, "crops": len(crops),
            "frame_step": frame_step, "mirrored": True, "trust_rules": f"drill profile {profile.name}"}
    filmed = len(crops) // 2
    inputs = [crops.model_input(i) for i in np.linspace(0, filmed - 1, TIMING_INPUTS).astype(int)]
    return Accuracy(errors, meta, inputs, _proven_exact(built, shipped_path, settings), floor=floor)


def committed_checks(built: list[BuiltVariant], evaluation_path: Path, what: str) -> dict[str, dict[str, Any]]:
    """The committed coaching check (`what` = "outcomes") or verdicts reading ("verdicts") of each
    variant whose bytes are the ones it was made on."""
    if not evaluation_path.is_file():
        return {}
    committed = json.loads(evaluation_path.read_text()).get("variants", {})
    return {b.spec.name: committed[b.spec.name][what] for b in built
            if b.matches_committed and committed.get(b.spec.name, {}).get(what)}


def committed_accuracy(plan: Plan, built: list[BuiltVariant], evaluation_path: Path, shipped_path: Path, settings) -> Accuracy:
    """The accuracy and coaching check `--explore` measured and committed, for machines without the
    clips. An exact rewrite whose outputs are checked bit-identical here needs no committed numbers."""
    if not evaluation_path.is_file():
        raise QuantizeError(f"no clips to judge on and no committed evaluation at {evaluation_path}; "
                            "pass --clips DIR or run `station models quantize --explore` where the clips are")
    committed = json.loads(evaluation_path.read_text())
    errors = {}
    for b in built:
        entry = committed.get("variants", {}).get(b.spec.name, {})
        if entry.get("held_out"):
            errors[b.spec.name] = {"all_frames": entry["held_out"], "trusted": entry.get("held_out_trusted")}
    meta = {
        "accuracy_source": "committed",
        "note": "accuracy is the committed evaluation from `station models quantize --explore` "
                f"({committed.get('held_out_crops', '?')} held-out crops, {committed.get('date', '?')}); not re-measured here "
                "(no clips, or --no-clips)",
        "clips": plan.evaluation_clips,
    }
    # Speed does not depend on the picture; any fixed input times the model.
    rng = np.random.default_rng(0)
    inputs = [rng.random((256, 256, 3), dtype=np.float32) for _ in range(TIMING_INPUTS)]
    return Accuracy(errors, meta, inputs, _proven_exact(built, shipped_path, settings),
                    committed_checks(built, evaluation_path, "outcomes"),
                    (committed.get("noise_floor") or {}).get("held_out_trusted"),
                    committed_checks(built, evaluation_path, "verdicts"))


def within_gate(errors: Optional[dict[str, Any]], floor: Optional[dict[str, Any]]) -> bool:
    """The angle reading: hip and knee error on the frames the analysis trusts (frames float16 trusts
    and the variant loses count as failures) no larger, at the median and p95, than float16's own
    with its crop moved 1 px on the same crops (`floor`). The all-frames numbers are reported, not gated."""
    return within_angle_floor((errors or {}).get("trusted"), floor)


def verdicts_unchanged(exact: bool, verdicts: Optional[dict[str, Any]]) -> bool:
    """The verdicts reading (models/noise_floor.py): no more changed clip outcomes over the labelled
    clips and their perturbations than float16 with its crop moved 1 px. Bit-identical landmarks pass."""
    return exact or bool(verdicts and verdicts.get("within"))


def coaching_unchanged(exact: bool, outcome: Optional[dict[str, Any]]) -> bool:
    """Bit-identical landmarks cannot change a rep; anything else must show (its coaching check,
    models/outcomes.py) that it changes no rep count, verdict or fault."""
    return exact or bool(outcome and outcome.get("same_as_float16"))


def qualifies(errors: Optional[dict[str, Any]], floor: Optional[dict[str, Any]], exact: bool,
              outcome: Optional[dict[str, Any]], verdicts: Optional[dict[str, Any]], judged_this_file: bool = True) -> bool:
    """The one rule for whether a variant may be selected: within float16's own noise floor on the
    angles (`within_gate`) and on the verdicts (`verdicts_unchanged`), judged on these very bytes
    (committed numbers describe the committed build only), and no change in what the athlete hears
    on the labelled clips (`coaching_unchanged`). `exact`: the variant's landmarks are known
    bit-identical to float16's."""
    return (within_gate(errors, floor) and judged_this_file and coaching_unchanged(exact, outcome)
            and verdicts_unchanged(exact, verdicts))


def check_outcomes(settings, accuracy: Accuracy, built: list[BuiltVariant], shipped_path: Path, clips_dir: Path,
                   pose_runs=None) -> None:
    """Run the coaching check (reps, verdicts and faults on every labelled clip) and the verdicts
    reading (the same over the clips' perturbations, against float16 with its crop moved 1 px; needs
    `pose_runs`, device.commands.evaluate.PoseRuns) for the variants within the angle floor that are
    not exact rewrites and have no committed check for their bytes. Slow (the whole pipeline per
    variant and run), so only where it decides."""
    from models.outcomes import CoachingCheck, labelled_clips

    pending = [b for b in built if within_gate(accuracy.errors.get(b.spec.name), accuracy.floor)
               and b.spec.name not in accuracy.proven_exact
               and not (b.spec.name in accuracy.outcomes and b.spec.name in accuracy.verdicts)]
    labels = labelled_clips(clips_dir) if pending else None
    if not pending or labels is None:
        if pending:
            log.warning("no labels.csv in %s: cannot check reps, verdicts and faults of %s", clips_dir, [b.spec.name for b in pending])
        return
    detector = settings.models_dir / load_manifest().by_role("detector").file
    log.info("checking reps, verdicts and faults on %d labelled clips for %s", len(labels), [b.spec.name for b in pending])
    check = CoachingCheck(settings, detector, shipped_path, labels, analysis_profile(settings), pose_runs, log.info)
    for b in pending:
        accuracy.outcomes[b.spec.name] = check.outcomes(b.path, b.spec.name)
        if pose_runs is not None:
            accuracy.verdicts[b.spec.name] = check.verdicts(b.path, b.spec.name)


def variant_entry(b: BuiltVariant, accuracy: Accuracy, ms: dict[str, float]) -> dict[str, Any]:
    name = b.spec.name
    err = accuracy.errors.get(name) or {}
    exact = name in accuracy.proven_exact
    # Committed numbers describe the committed bytes; a different build must be measured first.
    judged_this_file = accuracy.measured or b.matches_committed is True or exact
    outcome, verdicts = accuracy.outcomes.get(name), accuracy.verdicts.get(name)
    same_coaching = coaching_unchanged(exact, outcome)
    within = within_gate(err, accuracy.floor)
    notes = []
    if not judged_this_file:
        notes.append("built bytes differ from the judged build: run with --clips to measure")
    if within and not same_coaching:
        notes.append("within the angle floor but " + ("changes reps, verdicts or faults on the labelled clips" if outcome else
                                                      "reps, verdicts and faults not checked (needs the clips and labels.csv)"))
    if within and not verdicts_unchanged(exact, verdicts):
        notes.append("within the angle floor but " + ("changes more clip outcomes than float16 with its crop moved 1 px"
                                                      if verdicts else "verdicts over the perturbations not judged"))
    segments = has_person_mask(b.path)
    if not segments:
        notes.append("no person mask: the back's shape (rounded_back) cannot be read")
    return {
        "name": name, "file": b.spec.file, "sha256": b.sha256, "size": b.size,
        "qualifies": segments and qualifies(err, accuracy.floor, exact, outcome, verdicts, judged_this_file),
        "person_mask": segments,
        "precision": b.spec.precision, "kind": b.spec.kind, "description": b.spec.description,
        "ms_per_frame": round(ms[name], 2), "speedup": round(ms[SHIPPED_VARIANT] / ms[name], 2),
        "built_matches_committed": b.matches_committed,
        **({"outputs_identical_to_float16": exact} if b.spec.exact else {}),
        "accuracy_source": accuracy.meta["accuracy_source"] if err else None,
        "within_angle_floor": within,
        "coaching_unchanged": True if exact else (outcome.get("same_as_float16") if outcome else None),
        "verdicts_within_floor": True if exact else (verdicts.get("within") if verdicts else None),
        **({"note": "; ".join(notes)} if notes else {}),
        "all_frames": err.get("all_frames"),
        "trusted": err.get("trusted"),
        **({"coaching_changes": outcome["changed"]} if outcome and outcome.get("changed") else {}),
    }


def has_person_mask(path: Path) -> bool:
    """Whether a landmark model file still outputs the person mask, from which the pose engine reads
    the back's outline (device/pose/outline.py): a variant without it cannot judge rounded_back, so
    however fast, it changes what the athlete hears."""
    from device.pose.engine import segmentation_output
    from device.pose.tflite import TFLiteModel

    return segmentation_output(TFLiteModel(path, 1)) is not None


def select(variants: list[dict[str, Any]], float16_ms: float) -> Optional[str]:
    """The fastest qualifying variant, if it beats the shipped model; None means float16."""
    candidates = [(v["ms_per_frame"], v["name"]) for v in variants if v["qualifies"]]
    if not candidates:
        return None
    ms, name = min(candidates)
    return name if ms < float16_ms else None


def quantize_models(
    settings,
    clips_dir: Optional[Path] = None,
    use_clips: bool = True,
    force: bool = False,
    plan_path: Path = PLAN_PATH,
    ranges_path: Path = RANGES_PATH,
    evaluation_path: Path = EVALUATION_PATH,
    eval_frame_step: int = DEFAULT_EVAL_FRAME_STEP,
    pose_runs=None,
) -> QuantizeOutcome:
    """Build every planned variant into settings.models_dir, judge it, write quantized.json."""
    started = time.perf_counter()
    models_dir: Path = settings.models_dir
    manifest = load_manifest()
    shipped_spec, detector_spec = manifest.by_role("landmark"), manifest.by_role("detector")
    shipped_path = models_dir / shipped_spec.file
    check_file(shipped_path, shipped_spec.sha256, shipped_spec.size, FETCH_HINT)
    check_file(models_dir / detector_spec.file, detector_spec.sha256, detector_spec.size, FETCH_HINT)

    plan = Plan.load(plan_path)
    expected = fingerprint(shipped_spec.sha256, plan_path, ranges_path, evaluation_path)
    if not force and record_is_current(models_dir, expected):
        record = read_quantized_record(models_dir) or {}
        log.info("quantized variants in %s are up to date (use --force to rebuild)", models_dir)
        return QuantizeOutcome(record, False, time.perf_counter() - started, _rows(record))

    version = require_quantizer()
    ranges = CalibrationRanges.load(ranges_path) if ranges_path.is_file() else None
    built = build_all(plan, shipped_path.read_bytes(), ranges, models_dir)

    clips_dir = clips_dir if clips_dir is not None else default_clips_dir()
    have_clips = clips_dir is not None and all((clips_dir / c).is_file() for c in plan.evaluation_clips)
    if use_clips and clips_dir is not None and not have_clips:
        log.warning("%s lacks some held-out clips; taking the committed evaluation", clips_dir)
    if use_clips and have_clips and clips_dir is not None:
        accuracy = measure_accuracy(settings, plan, built, shipped_path, clips_dir, eval_frame_step)
        accuracy.outcomes.update(committed_checks(built, evaluation_path, "outcomes"))
        accuracy.verdicts.update(committed_checks(built, evaluation_path, "verdicts"))
        check_outcomes(settings, accuracy, built, shipped_path, clips_dir, pose_runs)
    else:
        accuracy = committed_accuracy(plan, built, evaluation_path, shipped_path, settings)

    from device.pose.tflite import time_models

    threads = settings.models.threads
    timed = {SHIPPED_VARIANT: shipped_path, **{b.spec.name: b.path for b in built}}
    ms = time_models(timed, accuracy.timing_inputs, rounds=TIMING_ROUNDS, threads=threads, runtime=settings.models.runtime)
    variants = [variant_entry(b, accuracy, ms) for b in built]
    from models.macs import count_model_file

    detector_path = models_dir / detector_spec.file
    macs = {"detector": count_model_file(detector_path).macs, SHIPPED_VARIANT: count_model_file(shipped_path).macs,
            **{b.spec.name: count_model_file(b.path).macs for b in built}}
    record = {
        "selected": select(variants, ms[SHIPPED_VARIANT]),
        "noise_floor": accuracy.floor,
        "selection": "fastest variant on this machine whose held-out hip and knee angle error on the frames the hinge "
                     "analysis trusts (a frame float16 trusts and the variant loses counts as a failure) is, at the median "
                     f"and p95, no larger than float16's own with its crop moved {CROP_SHIFT_PX} px (noise_floor), that "
                     "changes no more clip outcomes on the labelled clips and their perturbations than that shift does, "
                     "that changes no rep count, verdict or fault on the labelled clips, and that keeps the person mask "
                     "the back's shape is read from; float16 (the shipped model) when none is faster",
        "float16_ms_per_frame": round(ms[SHIPPED_VARIANT], 2),
        # Multiply-accumulates per inference of the detector and each landmark model (models/macs.py):
        # what `station bench` turns into frames per second on a Pi from published rates.
        "macs": macs,
        "machine": _machine(), "threads": threads,
        "built_with": {"ai_edge_quantizer": version},
        "evaluation": accuracy.meta,
        "fingerprint": expected,
        "variants": variants,
    }
    remove_dropped_variants(models_dir, {b.spec.file for b in built})
    _write_atomic(models_dir / QUANTIZED_RECORD, (json.dumps(record, indent=2) + "\n").encode())
    return QuantizeOutcome(record, True, time.perf_counter() - started, _rows(record))


def remove_dropped_variants(models_dir: Path, keep: set[str]) -> None:
    """Delete variant files an earlier record listed that the plan no longer builds."""
    try:
        old = read_quantized_record(models_dir) or {}
    except ModelError:
        return
    for entry in old.get("variants", []):
        name = Path(entry.get("file", "")).name
        if name and name not in keep and (models_dir / name).is_file():
            (models_dir / name).unlink()
            log.info("removed %s (no longer in the plan)", name)


def _rows(record: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per model: speed, angle error p95 on all held-out frames and on the trusted frames
    (the gate), frames float16 trusts that the variant loses, and the coaching check."""
    rows = [{"variant": SHIPPED_VARIANT, "ms_per_frame": record.get("float16_ms_per_frame"), "speedup": 1.0,
             "hip_p95_all": 0.0, "knee_p95_all": 0.0, "hip_p95_trusted": 0.0, "knee_p95_trusted": 0.0,
             "knee_lost": 0, "coaching_same": True, "qualifies": True, "selected": record.get("selected") is None}]
    for v in record.get("variants", []):
        every, trusted = v.get("all_frames") or {}, v.get("trusted") or {}
        rows.append({"variant": v["name"], "ms_per_frame": v.get("ms_per_frame"), "speedup": v.get("speedup"),
                     "hip_p95_all": every.get("hip_err_p95"), "knee_p95_all": every.get("knee_err_p95"),
                     "hip_p95_trusted": trusted.get("hip_err_p95"), "knee_p95_trusted": trusted.get("knee_err_p95"),
                     "knee_lost": trusted.get("knee_lost"), "coaching_same": v.get("coaching_unchanged"),
                     "qualifies": v.get("qualifies"), "selected": v["name"] == record.get("selected")})
    return rows


def _float16_engine(settings):
    from device.pose.engine import PoseEngine

    models = settings.models.model_copy(update={"landmark_variant": SHIPPED_VARIANT})
    return PoseEngine.from_settings(settings.model_copy(update={"models": models}))

