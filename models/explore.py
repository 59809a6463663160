"""`station models quantize --explore`: the full, slow search behind the committed plan.

Needs the real clips. It calibrates on the plan's calibration clips (every frame, as filmed and
mirrored), builds every recipe worth trying, measures each on the held-out clips and on the
calibration clips, and runs a per-layer search: first each layer group alone in int8 (the rest
float) to rank groups by how much they disturb the angles, then int8 for the least disturbing
groups, one more at a time. The recipe is chosen on calibration frames only; the gate is then
judged on the held-out clips. Results go to models/quantization/*.json and models/QUANTIZATION.md.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from device.pose import LANDMARK_SIZE, NUM_LANDMARKS, LandmarkModel, project
from device.runtime import TFLiteModel
from models.calibration import CalibrationRanges, measure_extremes
from models.crops import CropSet, collect_crops
from models.evaluation import compare, run_landmarks, smoothed_errors, time_models
from models.graph import float_landmark_graph
from models.manifest import SHIPPED_VARIANT, load_manifest
from models.quantize import (
    EVALUATION_PATH, PLAN_PATH, RANGES_PATH, REPORT_PATH, Plan, QuantizeError, VariantSpec,
    _float16_engine, _machine, _sha256_bytes, build_variant, require_quantizer,
)

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
        VariantSpec("int8_static_withmask", "static", "static int8 of the whole shipped graph, mask branch kept", prune_mask=False),
        VariantSpec("int8_static_p999", "static", "static int8 with 99.9th-percentile activation ranges", ranges="p99.9"),
    ]


def shifted_reference(model_path: Path, crops: CropSet, threads: int, shift: int = 1) -> np.ndarray:
    """float16 landmarks on each crop moved by `shift` crop pixels right and down, mapped back.
    The tracker's crops move by this much between frames anyway; the disagreement it causes is
    the float16 model's own noise floor."""
    model = LandmarkModel(TFLiteModel(model_path, threads))
    out = np.empty((len(crops), NUM_LANDMARKS, 5))
    for i in range(len(crops)):
        x = crops.model_input(i)
        moved = np.zeros_like(x)
        moved[shift:, shift:] = x[:-shift, :-shift]
        points, _ = model.infer(moved)
        points[:, :2] -= shift
        if crops.mirrored[i]:
            points[:, 0] = LANDMARK_SIZE - points[:, 0]
        out[i] = project(points, crops.roi(i))[:NUM_LANDMARKS]
    return out


class Explorer:
    def __init__(self, settings, clips_dir: Path, plan: Plan, work_dir: Path, say: Callable[[str], None]):
        self.settings, self.clips_dir, self.plan, self.work = settings, clips_dir, plan, work_dir
        self.say = say
        self.threads = settings.models.threads
        manifest = load_manifest()
        self.shipped_path = settings.models_dir / manifest.by_role("landmark").file
        self.shipped = self.shipped_path.read_bytes()

    def _build(self, spec: VariantSpec, ranges: CalibrationRanges) -> tuple[Path, bytes]:
        data = build_variant(spec, self.shipped, ranges)
        path = self.work / spec.file
        path.write_bytes(data)
        return path, data

    def run(self) -> dict[str, Any]:
        started = time.perf_counter()
        version = require_quantizer()
        engine = _float16_engine(self.settings)
        self.say("collecting crops from the calibration and held-out clips")
        cal = collect_crops(engine, self.clips_dir, self.plan.calibration_clips).with_mirrored()
        held = collect_crops(engine, self.clips_dir, self.plan.evaluation_clips).with_mirrored()
        self.say(f"{len(cal)} calibration crops, {len(held)} held-out crops (as filmed and mirrored)")
        detector_run_pct = 100.0 * engine.detector_runs / max(engine.frames, 1)

        self.say("calibrating activation ranges on every calibration crop")
        float_graph = float_landmark_graph(self.shipped, prune_segmentation=False).to_bytes()
        extremes = measure_extremes(float_graph, cal, self.threads)
        ranges = CalibrationRanges(
            {p: extremes.ranges(p) for p in RANGE_POLICIES},
            source={"clips": self.plan.calibration_clips, "crops": len(cal), "mirrored": True,
                    "calibrator": f"ai-edge-quantizer {version}, profiler-based, every crop's extremes kept"},
        )

        self.say("float16 reference landmarks")
        ref_held = run_landmarks(self.shipped_path, held, self.threads)
        ref_cal = run_landmarks(self.shipped_path, cal, self.threads)
        search_set = cal.subsample(SEARCH_FRAME_STEP)
        ref_search = ref_cal[np.arange(0, len(cal), SEARCH_FRAME_STEP)]
        segments = held.segments()
        shifted = shifted_reference(self.shipped_path, held, self.threads)
        floor, floor_smoothed = compare(ref_held, shifted), smoothed_errors(ref_held, shifted, segments)
        self.say(f"float16 noise floor (crop moved 1 px): hip p95 {floor.hip_err_p95:.1f} deg, knee p95 {floor.knee_err_p95:.1f} deg")

        groups = self._groups()
        sensitivity = []
        for group in groups:
            spec = VariantSpec(f"probe_{group}", "static", f"only {group} in int8",
                               float_groups=tuple(g for g in groups if g != group))
            path, _ = self._build(spec, ranges)
            err = compare(ref_search, run_landmarks(path, search_set, self.threads))
            sensitivity.append({"group": group, "ops": self._group_sizes[group], "calibration": err.row()})
            self.say(f"sensitivity {group:14s} hip p95 {err.hip_err_p95:5.1f}  knee p95 {err.knee_err_p95:5.1f}")
        order = [s["group"] for s in sorted(sensitivity, key=lambda s: max(s["calibration"]["hip_err_p95"], s["calibration"]["knee_err_p95"]))]

        search, search_paths, mixed = [], {}, None
        for k in range(1, len(order) + 1):
            int8_groups = order[:k]
            spec = VariantSpec(f"search_{k:02d}", "static", "", float_groups=tuple(g for g in groups if g not in int8_groups))
            path, _ = self._build(spec, ranges)
            err = compare(ref_search, run_landmarks(path, search_set, self.threads))
            search.append({"step": k, "int8_groups": int8_groups, "calibration": err.row()})
            search_paths[spec.name] = path
            self.say(f"search step {k:2d} (+{order[k - 1]}): hip p95 {err.hip_err_p95:5.1f}  knee p95 {err.knee_err_p95:5.1f}")
            # A recipe counts only if some convolution runs in int8; quantizing a lone PAD is no int8 model.
            if err.passes(self.plan.gate_p95_deg) and any(self._group_convs[g] for g in int8_groups):
                mixed = VariantSpec("int8_mixed", "static",
                                    f"per-layer search: int8 for {', '.join(int8_groups)}; the rest float",
                                    float_groups=spec.float_groups)
        search_ms = time_models({SHIPPED_VARIANT: self.shipped_path, **search_paths},
                                [search_set.model_input(i) for i in range(0, len(search_set), max(1, len(search_set) // 20))],
                                rounds=3, threads=self.threads)
        for step in search:
            ms = search_ms[f"search_{step['step']:02d}"]
            step["ms_per_frame"], step["speedup"] = round(ms, 2), round(search_ms[SHIPPED_VARIANT] / ms, 2)

        specs = main_variants() + ([mixed] if mixed else []) + diagnostic_variants()
        paths, results = {}, {}
        for spec in specs:
            path, data = self._build(spec, ranges)
            paths[spec.name] = path
            results[spec.name] = {"spec": spec, "sha256": _sha256_bytes(data), "size": len(data)}
            self.say(f"judging {spec.name}")
            landmarks = run_landmarks(path, held, self.threads)
            results[spec.name]["held_out"] = compare(ref_held, landmarks).row()
            results[spec.name]["held_out_smoothed"] = smoothed_errors(ref_held, landmarks, segments)
            results[spec.name]["calibration"] = compare(ref_cal, run_landmarks(path, cal, self.threads)).row()
        timing_inputs = [held.model_input(i) for i in np.linspace(0, len(held) - 1, 40).astype(int)]
        ms = time_models({SHIPPED_VARIANT: self.shipped_path, **paths}, timing_inputs, rounds=5, threads=self.threads)
        detector_path = self.settings.models_dir / load_manifest().by_role("detector").file
        rng = np.random.default_rng(0)
        detector_inputs = {"detector": [rng.uniform(-1, 1, (224, 224, 3)).astype(np.float32) for _ in range(20)],
                           SHIPPED_VARIANT: timing_inputs[:20]}
        detector_ms = time_models({"detector": detector_path, SHIPPED_VARIANT: self.shipped_path}, detector_inputs,
                                  threads=self.threads)

        in_plan = main_variants() + ([mixed] if mixed else [])
        plan = replace(self.plan, variants=[replace(s, expected_sha256=results[s.name]["sha256"]) for s in in_plan])
        evaluation = {
            "date": dt.date.today().isoformat(),
            "machine": _machine(), "threads": self.threads, "ai_edge_quantizer": version,
            "gate_p95_deg": self.plan.gate_p95_deg,
            "held_out_clips": self.plan.evaluation_clips, "held_out_crops": len(held),
            "calibration_clips": self.plan.calibration_clips, "calibration_crops": len(cal),
            "float16_ms_per_frame": round(ms[SHIPPED_VARIANT], 2),
            "detector": {"ms_per_call": round(detector_ms["detector"], 2),
                         "landmark_float16_ms_same_run": round(detector_ms[SHIPPED_VARIANT], 2),
                         "run_pct_of_frames": round(detector_run_pct, 2),
                         "frames": engine.frames},
            "noise_floor": {"what": "float16 vs float16 with the crop moved by 1 crop pixel", "held_out": floor.row(),
                            "held_out_smoothed": floor_smoothed},
            "variants": {
                name: {
                    **r["spec"].to_dict(), "precision": r["spec"].precision, "sha256": r["sha256"], "size": r["size"],
                    "in_plan": any(s.name == name for s in in_plan),
                    "ms_per_frame": round(ms[name], 2), "speedup": round(ms[SHIPPED_VARIANT] / ms[name], 2),
                    "qualifies": max(r["held_out"]["hip_err_p95"], r["held_out"]["knee_err_p95"]) <= self.plan.gate_p95_deg,
                    "held_out": r["held_out"], "held_out_smoothed": r["held_out_smoothed"], "calibration": r["calibration"],
                }
                for name, r in results.items()
            },
            "sensitivity": sensitivity,
            "search": search,
            "search_frame_step": SEARCH_FRAME_STEP,
            "minutes": round((time.perf_counter() - started) / 60, 1),
        }
        return {"plan": plan, "ranges": CalibrationRanges({"minmax": ranges.policies["minmax"]}, ranges.source),
                "evaluation": evaluation}

    def _groups(self) -> list[str]:
        order: list[str] = []
        sizes: dict[str, int] = {}
        convs: dict[str, int] = {}
        for layer in float_landmark_graph(self.shipped, prune_segmentation=True).layers():
            if layer.group not in sizes:
                order.append(layer.group)
            sizes[layer.group] = sizes.get(layer.group, 0) + 1
            convs[layer.group] = convs.get(layer.group, 0) + (layer.op in ("CONV_2D", "DEPTHWISE_CONV_2D"))
        self._group_sizes, self._group_convs = sizes, convs
        return order


def explore(settings, clips_dir: Path, say: Callable[[str], None] = print, out_dir: Optional[Path] = None) -> dict[str, Any]:
    """Run the search and write the committed plan, ranges, evaluation and report."""
    import tempfile

    plan = Plan.load(PLAN_PATH)
    missing = [c for c in plan.calibration_clips + plan.evaluation_clips if not (clips_dir / c).is_file()]
    if missing:
        raise QuantizeError(f"--explore needs the real clips; missing under {clips_dir}: {', '.join(missing)}")
    with tempfile.TemporaryDirectory(prefix="hinge-explore-") as tmp:
        result = Explorer(settings, clips_dir, plan, Path(tmp), say).run()
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


def render_report(ev: dict[str, Any]) -> str:
    gate = ev["gate_p95_deg"]
    f16 = ev["float16_ms_per_frame"]
    rows = [["float16 (shipped)", "-", f"{f16:.2f}", "1.00", "0", "0", "0", "0", "0", "0", "0", "0", "0", "0", "yes"]]
    for name, v in ev["variants"].items():
        h, sm = v["held_out"], v["held_out_smoothed"]
        rows.append([name, f"{v['size'] / 1e6:.1f} MB", v["ms_per_frame"], v["speedup"],
                     h["hip_err_median"], h["hip_err_p95"], h["hip_err_max"],
                     h["knee_err_median"], h["knee_err_p95"], h["knee_err_max"],
                     h["px_err_median"], h["px_err_p95"], sm["hip_err_p95"], sm["knee_err_p95"], v["qualifies"]])
    header = ["variant", "size", "ms/frame", "speedup", "hip med", "hip p95", "hip max", "knee med", "knee p95",
              "knee max", "px med", "px p95", "hip p95 sm", "knee p95 sm", f"p95 <= {gate:g} deg"]
    cal_rows = [[name, v["calibration"]["hip_err_median"], v["calibration"]["hip_err_p95"], v["calibration"]["knee_err_median"],
                 v["calibration"]["knee_err_p95"], v["calibration"]["px_err_median"], v["calibration"]["px_err_p95"]]
                for name, v in ev["variants"].items()]
    sens_rows = [[s["group"], s["ops"], s["calibration"]["hip_err_p95"], s["calibration"]["knee_err_p95"], s["calibration"]["px_err_p95"]]
                 for s in ev["sensitivity"]]
    search_rows = [[s["step"], s["int8_groups"][-1], s["ms_per_frame"], s["speedup"], s["calibration"]["hip_err_p95"],
                    s["calibration"]["knee_err_p95"], max(s["calibration"]["hip_err_p95"], s["calibration"]["knee_err_p95"]) <= gate]
                   for s in ev["search"]]
    floor = ev["noise_floor"]["held_out"]
    qualifying = sorted((v["ms_per_frame"], n) for n, v in ev["variants"].items() if v["qualifies"] and v["in_plan"])
    int8_qualifying = [n for _, n in qualifying if ev["variants"][n]["precision"] == "int8"] if qualifying else []
    chosen = qualifying[0][1] if qualifying and qualifying[0][0] < f16 else None
    fastest_int8 = min(((v["ms_per_frame"], n) for n, v in ev["variants"].items() if v["precision"] == "int8"), default=None)
    mixed_found = "int8_mixed" in ev["variants"]
    det = ev["detector"]
    det_share = det["ms_per_call"] * det["run_pct_of_frames"] / 100
    if chosen:
        chosen_text = (f"On this machine the station selects **`{chosen}`**: {ev['variants'][chosen]['speedup']:.2f}x the shipped "
                       f"model's speed with hip/knee p95 error {ev['variants'][chosen]['held_out']['hip_err_p95']:.2f} / "
                       f"{ev['variants'][chosen]['held_out']['knee_err_p95']:.2f} deg.")
    else:
        chosen_text = "On this machine no variant is both faster and within the gate: the station runs the shipped float16 model."
    int8_text = (f"int8 variants within the gate: {', '.join(int8_qualifying)}." if int8_qualifying else
                 "**No int8 variant is within the gate.** The fastest int8 variant, "
                 f"`{fastest_int8[1]}` ({ev['variants'][fastest_int8[1]]['speedup']:.2f}x), moves the hip angle by "
                 f"{ev['variants'][fastest_int8[1]]['held_out']['hip_err_p95']:.1f} deg and the knee angle by "
                 f"{ev['variants'][fastest_int8[1]]['held_out']['knee_err_p95']:.1f} deg at p95; even int8 weights with float "
                 "compute exceed the gate." if fastest_int8 else "")
    search_text = ("The per-layer search found a recipe within the gate on the calibration clips (`int8_mixed`)." if mixed_found else
                   "The per-layer search found no recipe with any convolution in int8 that stays within the gate on the "
                   "calibration clips, so the plan has no mixed variant.")
    floor_worst = max(floor["hip_err_p95"], floor["knee_err_p95"])
    over = [x["group"] for x in ev["sensitivity"] if max(x["calibration"]["hip_err_p95"], x["calibration"]["knee_err_p95"]) > gate]
    why_text = "" if int8_qualifying else (
        f"Why int8 misses a per-frame {gate:g} deg gate: the float16 model itself is sensitive. Moving the crop by one "
        f"pixel (which the tracked ROI does between frames anyway) changes its hip angle by {floor['hip_err_p95']:.1f} deg "
        f"and its knee angle by {floor['knee_err_p95']:.1f} deg at p95 (*Noise floor* below), "
        f"{'more' if floor_worst > gate else 'less'} than the gate. {len(over)} of {len(ev['sensitivity'])} layer groups, "
        "quantized on their own, already move the angles past the gate (*Per-layer sensitivity*), so keeping the most "
        "sensitive layers float leaves too little in int8 to pay for itself. Whether a gate on smoothed or per-rep "
        "peak angles (what the verdicts use) would admit a faster int8 variant is a product decision left open here.")
    description = "\n".join(f"- `{name}`: {v['description']}" for name, v in ev["variants"].items())
    return f"""# Landmark model variants: speed and accuracy

Produced by `station models quantize --explore` on {ev['date']} ({ev['machine']}, {ev['threads']} interpreter
threads, ai-edge-quantizer {ev['ai_edge_quantizer']}; {ev['minutes']} min). Regenerate it with that command where
the clips are; the plan, ranges and evaluation it wrote sit in `models/quantization/`.

**How it is judged.** Each variant and the shipped float16 model see the same real crops (the ROI crops the
float16 engine makes on the clips, as filmed and mirrored left-right). Landmarks are projected to image pixels;
hip angle (shoulder-hip-knee) and knee angle (hip-knee-ankle) are taken on the side nearer the camera; errors
are per frame against float16. px = distance between the two models' near-side shoulder, hip, knee and ankle,
in image pixels. "sm" columns: p95 after the same 5-frame centred running median on both models' angle series
(closer to what a rep verdict sees; informational, not the gate). ms/frame = median bare model call ({ev['threads']} threads), all models timed round-robin in one
run; speedup = float16 ms / variant ms. The gate: hip and knee angle error p95 <= {gate:g} deg on the **held-out**
clips ({', '.join(ev['held_out_clips'])}; {ev['held_out_crops']} crops). Calibration and the per-layer search use only
the other clips ({ev['calibration_crops']} crops).

## Using it

- `station models quantize` builds the planned variants (`models/quantization/plan.json`) from the shipped model
  and the committed activation ranges (`ranges.json`: per-tensor numbers, no pixels), times them on this machine,
  judges them on the held-out clips when `../shared/clips` (or `--clips DIR`) is there, else takes the committed
  accuracy (`evaluation.json`) and says so in `quantized.json`. It then selects the fastest variant within the
  gate; running it again with everything in place rebuilds nothing (`--force` does). `--no-clips` skips the
  re-measurement. `station models status` lists the variants and the one in use.
- `station models quantize --explore` (clips needed, about a quarter of an hour on 2 cores) recalibrates, tries
  every recipe below and rewrites the plan, ranges, evaluation and this report.
- `station bench CLIP` times the detector, every landmark variant and the whole replay pipeline in one run.

## Outcome

{chosen_text} {int8_text} {search_text} Every variant's file is rebuilt by `station models quantize` on the
station itself and re-timed there, so the choice follows that machine's speed; the accuracy columns come from
here (or are re-measured where the clips are). `models.landmark_variant = "float16"` keeps the shipped model.

{why_text}

**The detector** costs {det['ms_per_call']:.1f} ms per call (shipped float16 landmark model {det['landmark_float16_ms_same_run']:.1f}
ms in the same run) but ran on {det['run_pct_of_frames']:.1f}% of the {det['frames']} frames of all clips, i.e. about
{det_share:.2f} ms per frame on average. An int8 detector could save at most that, so it is not quantized.

## Every variant, held-out clips

{_table(header, rows)}

{description}

## The same variants on the calibration clips

{_table(["variant", "hip med", "hip p95", "knee med", "knee p95", "px med", "px p95"], cal_rows)}

## Noise floor of the float16 model itself

The float16 model compared with itself on the same held-out crops moved by one crop pixel (about what the
tracked ROI moves between frames): hip error median {floor['hip_err_median']:.2f} / p95 {floor['hip_err_p95']:.2f} / max
{floor['hip_err_max']:.1f} deg, knee {floor['knee_err_median']:.2f} / {floor['knee_err_p95']:.2f} / {floor['knee_err_max']:.1f} deg,
px {floor['px_err_median']:.2f} / {floor['px_err_p95']:.2f}; after the 5-frame running median, hip p95
{ev['noise_floor']['held_out_smoothed']['hip_err_p95']:.2f} and knee p95 {ev['noise_floor']['held_out_smoothed']['knee_err_p95']:.2f} deg.

## Per-layer sensitivity (calibration clips, one frame in {ev['search_frame_step']})

Only the named group in static int8, everything else float. Groups follow the graph: `backbone_R` feeds both
heads at R x R resolution, `heatmap_R` is the decoder that only feeds the 64x64 heatmap, `regression_R` the tail
that only feeds the landmark/presence/world outputs.

{_table(["group", "ops", "hip p95", "knee p95", "px p95"], sens_rows)}

## Per-layer search (calibration clips, one frame in {ev['search_frame_step']})

Static int8 for the least disturbing groups first, one more group per step, the rest float. Every step is built
on the mask-pruned graph, so its speedup over the shipped model includes the pruning's own
{ev['variants']['float16_nomask']['speedup']:.2f}x (`float16_nomask`); that is the speed an int8 recipe has to beat.

{_table(["step", "added group", "ms/frame", "speedup", "hip p95", "knee p95", f"<= {gate:g} deg"], search_rows)}
"""
