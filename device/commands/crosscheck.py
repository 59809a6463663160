"""`station models trace | compare`: the same models on another machine.

The station is built and tested on x86_64; it runs on a Raspberry Pi (aarch64). `trace` records
what the pose engine and the hinge analysis make of the first frames of some clips on this
machine, with the facts that explain a difference (CPU, runtime, the raw model outputs on one
fixed input with and without XNNPACK). `compare` puts two traces side by side: landmark distance
in pixels and whether the analysis events are the same. deploy/test-arm64.sh runs `trace` in an
emulated Debian arm64 root and on the host, then `compare`.

The tolerance is not a guess: the host trace also runs the same frames with the picture moved by
one pixel (the `shift_1px` perturbation of `station evaluate --perturb`). How far the landmarks
move then (less the one pixel itself) is the model's own noise floor; another CPU's arithmetic
may move them no further than that.
"""
from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import platform
import sys
from dataclasses import fields, is_dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np

from device.analysis.analyzer import HingeAnalyzer
from device.analysis.profiles import load_profile
from device.capture.base import Frame
from device.capture.file import VideoFileSource
from device.commands.perturb import perturbation
from device.commands.tables import print_table, write_json
from device.config import Settings
from device.errors import StationError
from device.fileio import sha256_of
from device.pose.engine import PoseEngine, iter_poses
from device.pose.landmarks import Pose
from device.pose.model_files import read_quantized_record, resolve_models
from device.pose.tflite import interpreter_class, interpreter_options, time_models
from device.stats import median, percentile

TRACE_FORMAT = 1
NOISE_PERTURBATION = "shift_1px"  # content moved +1 px right and +1 px down
NOISE_SHIFT_PX = 1.0
# Percentile of the per-point landmark distances that is compared with the noise floor: p99, not
# the max, because a single point where the two machines' tracking picks a different crop a frame
# apart is the tracker's business, not the arithmetic's; the events check catches what matters.
PERCENTILE = 99.0


class CrosscheckError(StationError):
    exit_code = 2


# --- trace --------------------------------------------------------------------------------------


# aarch64 AT_HWCAP bits (linux/arch/arm64/include/uapi/asm/hwcap.h): what XNNPACK reads to pick
# float16 (fphp + asimdhp) and int8 dot-product (asimddp) kernels.
AT_HWCAP = 16
HWCAP_FPHP, HWCAP_ASIMDHP, HWCAP_ASIMDDP = 1 << 9, 1 << 10, 1 << 20


def cpu_facts() -> dict[str, Any]:
    """What the TFLite kernels can see of this CPU: the machine, its core (MIDR part from
    /proc/cpuinfo) and, on aarch64, the kernel's (or qemu's) feature bits."""
    part, model = "", ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip().lower()
            if key == "cpu part" and not part:
                part = value.strip()
            elif key == "model name" and not model:
                model = value.strip()
    except OSError:
        pass
    hwcap = 0
    if platform.machine() == "aarch64":
        import ctypes

        libc = ctypes.CDLL(None)
        libc.getauxval.restype = ctypes.c_ulong
        hwcap = int(libc.getauxval(AT_HWCAP))
    return {"machine": platform.machine(), "cpus": os.cpu_count(), "qemu_cpu": os.environ.get("QEMU_CPU", ""),
            "cpu_part": part, "model_name": model, "hwcap": hex(hwcap),
            "fp16_arithmetic": bool(hwcap & HWCAP_FPHP and hwcap & HWCAP_ASIMDHP),
            "dot_product": bool(hwcap & HWCAP_ASIMDDP)}


def runtime_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("numpy", "opencv-python-headless", "ai-edge-litert", "tflite-runtime"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def probe_input(shape: tuple[int, ...]) -> np.ndarray:
    """One fixed input, the same bytes on every machine (numpy's PCG64 stream is platform-independent),
    so its outputs show the arithmetic alone, with no decoding, resizing or tracking in between."""
    return np.random.default_rng(13).random(shape, dtype=np.float32)


def probe_outputs(path: Path, threads: int, xnnpack: bool) -> list[list[float]]:
    """A model's outputs on the probe input, with TFLite's default XNNPACK delegate or without it."""
    _, interpreter_cls = interpreter_class("auto")
    options = {"model_path": str(path), **interpreter_options(interpreter_cls, threads)}  # the station's own
    if not xnnpack:
        resolver = sys.modules[interpreter_cls.__module__].OpResolverType
        options["experimental_op_resolver_type"] = resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    interp = interpreter_cls(**options)
    interp.allocate_tensors()
    (inp,) = interp.get_input_details()
    interp.set_tensor(inp["index"], probe_input(tuple(inp["shape"])))
    interp.invoke()
    return [interp.get_tensor(o["index"]).ravel().astype(float).tolist() for o in interp.get_output_details()]


def first_frames(clip: Path, frames: int, shifted: bool = False) -> Iterator[Any]:
    with VideoFileSource(clip) as source:
        stream: Iterator[Frame] = itertools.islice(source, frames)
        if shifted:
            moved = perturbation(NOISE_PERTURBATION).apply((f.timestamp, f.image) for f in stream)
            stream = (Frame(t, rgb, clip.name, i) for i, (t, rgb) in enumerate(moved))
        yield from stream


def event_record(event: Any) -> dict[str, Any]:
    """An analysis event without its measured values: what happened, when (frame time) and to which
    rep, fault or framing. Angles and margins are measurements; they may differ in the last digits, and
    so may which of a fault's signs was clearest (a fault's `quantity`): the evidence, not the event."""
    def keep(value: Any) -> Any:
        if isinstance(value, Enum):
            return value.value
        if is_dataclass(value):
            return {f.name: keep(getattr(value, f.name)) for f in fields(value) if f.name != "quantity" and (
                    f.name in ("time", "start_time", "bottom_time", "end_time") or not isinstance(getattr(value, f.name), float))}
        if isinstance(value, (list, tuple)):
            return [keep(v) for v in value if not isinstance(v, (tuple, float))]  # rep.trace: measured samples
        return value

    return {"kind": type(event).__name__, **keep(event)}


def trace_clip(engine: PoseEngine, clip: Path, frames: int, profile: str, settings: Settings, shifted: bool = False) -> dict:
    poses: list[Pose] = []
    first_frame_sha = ""
    for frame, pose in iter_poses(engine, first_frames(clip, frames, shifted)):
        if not poses:
            first_frame_sha = hashlib.sha256(np.ascontiguousarray(frame.image).tobytes()).hexdigest()
        poses.append(pose)
    if not poses:
        raise CrosscheckError(f"{clip} gave no frames: is it a readable video?")
    analyzer = HingeAnalyzer(load_profile(profile, settings.analysis.profiles_dir))
    events = analyzer.run(poses)
    return {"clip": clip.name, "first_frame_sha256": first_frame_sha, "profile": profile,
            "landmarks": [np.round(p.landmarks[:, :2], 3).tolist() for p in poses],
            "found": [p.found for p in poses], "detector_ran": [p.detector_ran for p in poses],
            "events": [event_record(e) for e in events]}


def variant_speed(settings: Settings, inputs: int = 2, rounds: int = 2) -> dict[str, float]:
    """ms per landmark call of every variant in quantized.json, divided by float16's in the same run.
    Only the ratio means anything under emulation (and on a shared machine)."""
    models_dir = settings.models_dir
    record = read_quantized_record(models_dir) or {}
    models = {"float16": resolve_models(models_dir, "float16").landmark}
    for variant in record.get("variants", []):
        if (models_dir / variant["file"]).is_file():
            models[variant["name"]] = models_dir / variant["file"]
    rng = np.random.default_rng(7)
    crops = [rng.random((256, 256, 3), dtype=np.float32) for _ in range(inputs)]
    ms = time_models(models, crops, rounds=rounds, threads=settings.models.threads, warmup=1)
    return {name: round(value / ms["float16"], 3) for name, value in ms.items()}


def record_trace(settings: Settings, clips: list[Path], frames: int, profile: Optional[str] = None,
                 noise_floor: bool = False, speed: bool = False) -> dict:
    resolved = resolve_models(settings.models_dir, settings.models.landmark_variant)
    engine = PoseEngine.from_settings(settings)
    profile = profile or settings.analysis.profile
    threads = settings.models.threads
    trace: dict[str, Any] = {
        "format": TRACE_FORMAT, "cpu": cpu_facts(), "versions": runtime_versions(), "threads": threads,
        "landmark_variant": engine.landmark_variant,
        "models": {"detector": sha256_of(resolved.detector), "landmark": sha256_of(resolved.landmark)},
        "probe": {f"{role}_{'xnnpack' if x else 'builtin'}": probe_outputs(path, threads, x)
                  for role, path in (("detector", resolved.detector), ("landmark", resolved.landmark))
                  for x in (True, False)},
        "clips": [trace_clip(engine, Path(c), frames, profile, settings) for c in clips],
    }
    if noise_floor:
        trace["shifted_clips"] = [trace_clip(engine, Path(c), frames, profile, settings, shifted=True) for c in clips]
    if speed:
        trace["variant_speed_vs_float16"] = variant_speed(settings)
    return trace


# --- compare ------------------------------------------------------------------------------------


def point_distances(a: dict, b: dict, offset: float = 0.0) -> np.ndarray:
    """Per-landmark pixel distance over the frames where both found a person; b's points are
    moved back by `offset` pixels in x and y first (the shifted picture's own move)."""
    out = []
    for la, lb, fa, fb in zip(a["landmarks"], b["landmarks"], a["found"], b["found"]):
        if fa and fb:
            d = np.asarray(la, dtype=float) - (np.asarray(lb, dtype=float) - offset)
            out.append(np.hypot(d[:, 0], d[:, 1]))
    return np.concatenate(out) if out else np.zeros(0)


def summarise(distances: np.ndarray) -> dict[str, Any]:
    if distances.size == 0:
        return {"points": 0, "median_px": None, f"p{PERCENTILE:g}_px": None, "max_px": None}
    return {"points": int(distances.size), "median_px": median(distances, 2),
            f"p{PERCENTILE:g}_px": percentile(distances, PERCENTILE, 2), "max_px": round(float(distances.max()), 2)}


def probe_difference(a: dict, b: dict) -> dict[str, float]:
    """Largest absolute difference of each probe's outputs between the two traces."""
    out = {}
    for name in a["probe"]:
        diffs = [np.max(np.abs(np.asarray(x) - np.asarray(y))) for x, y in zip(a["probe"][name], b["probe"][name])]
        out[name] = float(max(diffs)) if diffs else 0.0
    return out


def compare_traces(reference: dict, other: dict) -> dict[str, Any]:
    """Rows per clip and a verdict: `other` passes when, on every clip, its landmark p99 distance
    from `reference` is within the reference's own one-pixel-shift noise floor, it finds the person
    on the same frames and its analysis events are identical."""
    for t in (reference, other):
        if t.get("format") != TRACE_FORMAT:
            raise CrosscheckError(f"a trace is not format {TRACE_FORMAT}: record it again with `station models trace`")
    if "shifted_clips" not in reference:
        raise CrosscheckError("the reference trace has no noise floor: record it with `station models trace --noise-floor`")
    key = f"p{PERCENTILE:g}_px"
    cpu = other["cpu"]
    rows, all_distances = [], []
    by_name = {c["clip"]: c for c in other["clips"]}
    for ref, shifted in zip(reference["clips"], reference["shifted_clips"]):
        oth = by_name.get(ref["clip"])
        if oth is None:
            raise CrosscheckError(f"{ref['clip']} is in the reference trace but not in the other one")
        distances = point_distances(ref, oth)
        all_distances.append(distances)
        noise = summarise(point_distances(ref, shifted, offset=NOISE_SHIFT_PX))
        diff = summarise(distances)
        same_events = ref["events"] == oth["events"]
        within = diff[key] is not None and noise[key] is not None and diff[key] <= noise[key]
        rows.append({"machine": cpu["machine"], "qemu_cpu": cpu["qemu_cpu"] or "-", "clip": ref["clip"],
                     "frames": len(ref["found"]), "same_frame_pixels": ref["first_frame_sha256"] == oth["first_frame_sha256"],
                     "found_differs": sum(a != b for a, b in zip(ref["found"], oth["found"])),
                     "points": diff["points"], "median_px": diff["median_px"], key: diff[key], "max_px": diff["max_px"],
                     f"noise_{key}": noise[key], "noise_max_px": noise["max_px"],
                     "events": len(oth["events"]), "same_events": same_events,
                     "passed": bool(within and same_events and ref["found"] == oth["found"])})
    return {"machine": cpu["machine"], "qemu_cpu": cpu["qemu_cpu"] or "-", "fp16_arithmetic": cpu["fp16_arithmetic"],
            "dot_product": cpu["dot_product"], "landmark_variant": other["landmark_variant"],
            "same_models": reference["models"] == other["models"], "clips": rows,
            "overall": summarise(np.concatenate(all_distances)) if all_distances else summarise(np.zeros(0)),
            "probe_max_abs_difference": probe_difference(reference, other),
            "variant_speed_vs_float16": other.get("variant_speed_vs_float16", {}),
            "passed": bool(rows) and all(r["passed"] for r in rows) and reference["models"] == other["models"]}


def between(a: dict, b: dict) -> dict[str, Any]:
    """Two non-reference traces against each other (say the Pi 4 and the Pi 5 CPU models)."""
    distances = np.concatenate([point_distances(x, y) for x, y in zip(a["clips"], b["clips"])])
    return {"first": a["cpu"]["qemu_cpu"] or a["cpu"]["machine"], "second": b["cpu"]["qemu_cpu"] or b["cpu"]["machine"],
            **summarise(distances), "same_events": [c["events"] for c in a["clips"]] == [c["events"] for c in b["clips"]],
            "probe_max_abs_difference": probe_difference(a, b)}


# --- command ------------------------------------------------------------------------------------


def trace(args: argparse.Namespace, settings: Settings) -> int:
    for clip in args.clips:
        if not clip.is_file():
            raise CrosscheckError(f"clip {clip} does not exist")
    result = record_trace(settings, args.clips, args.frames, args.profile, noise_floor=args.noise_floor,
                          speed=args.variant_speed)
    write_json(args.out, result)
    clips = [{"clip": c["clip"], "frames": len(c["found"]), "found": sum(c["found"]), "events": len(c["events"])}
             for c in result["clips"]]
    speeds = [{"variant": k, "ms_vs_float16": v} for k, v in result.get("variant_speed_vs_float16", {}).items()]
    print_table(clips, title=f"trace on {result['cpu']['machine']} -> {args.out}")
    if speeds:
        print_table(speeds)
    if args.json:
        write_json(args.json, {"clips": clips, "variant_speed": speeds})
    return 0


def compare(args: argparse.Namespace, settings: Settings) -> int:
    traces = []
    for path in (args.reference, *args.others):
        try:
            traces.append(json.loads(Path(path).read_text()))
        except (OSError, ValueError) as err:
            raise CrosscheckError(f"cannot read the trace {path}: {err}") from None
    reference, others = traces[0], traces[1:]
    results = [compare_traces(reference, other) for other in others]
    key = f"p{PERCENTILE:g}_px"
    print_table([row for r in results for row in r["clips"]],
                title=f"landmarks and analysis events against {reference['cpu']['machine']}, "
                      f"landmark variant {reference['landmark_variant']}")
    overall = [{"machine": r["machine"], "qemu_cpu": r["qemu_cpu"], "fp16_arithmetic": r["fp16_arithmetic"],
                "dot_product": r["dot_product"], "same_models": r["same_models"], **r["overall"], "passed": r["passed"]}
               for r in results]
    print_table(overall, title="overall")
    probes = [{"machine": r["machine"], "qemu_cpu": r["qemu_cpu"], **r["probe_max_abs_difference"]} for r in results]
    print_table(probes, title="largest output difference on one fixed input (the arithmetic alone)")
    speeds = [{"machine": r["machine"], "qemu_cpu": r["qemu_cpu"], **r["variant_speed_vs_float16"]}
              for r in results if r["variant_speed_vs_float16"]]
    if speeds:
        print_table(speeds, title="landmark variant ms / float16 ms, same run (emulated: only the ratio means anything)")
    pairs = [between(others[0], o) for o in others[1:]]
    if pairs:
        print_table([{k: v for k, v in p.items() if k != "probe_max_abs_difference"} for p in pairs],
                    title="between the other traces")
    passed = bool(results) and all(r["passed"] for r in results)
    print(f"{'PASSED' if passed else 'FAILED'}: every clip within the host's one-pixel-shift noise floor ({key}), "
          "the person found on the same frames, the same analysis events" if passed else
          "FAILED: see the rows with passed = no")
    if args.json:
        write_json(args.json, {"clips": [row for r in results for row in r["clips"]], "overall": overall,
                               "probes": probes, "variant_speed_vs_float16": speeds, "between": pairs, "passed": passed})
    return 0 if passed else 1
