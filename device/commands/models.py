"""`station models fetch | status | quantize`: the front of the offline model tooling in models/.

This is the one place in device/ that calls models/ (fetch, quantize, explore); the runtime reads
the manifest and the quantization record through device.pose.model_files alone.
"""
from __future__ import annotations

import argparse

from device.commands.evaluate import PoseRuns
from device.commands.tables import print_table, write_json
from device.config import Settings
from device.errors import StationError
from device.fileio import sha256_of
from device.pose.model_files import file_is_intact, load_manifest, read_quantized_record, resolve_models
from models.fetch import fetch_models
from models.quantize import QuantizeError, default_clips_dir, quantize_models


def fetch(args: argparse.Namespace, settings: Settings) -> int:
    for result in fetch_models(settings.models_dir, wheel=args.wheel):
        print(f"{result.action:9s} {result.path}")
    return 0


def status(args: argparse.Namespace, settings: Settings) -> int:
    manifest = load_manifest()
    rows = []
    for spec in manifest.models.values():
        path = settings.models_dir / spec.file
        rows.append({"model": spec.name, "file": str(path), "precision": "float16" if spec.role == "landmark" else "float32",
                     "sha256_ok": file_is_intact(path, spec)})
    record = read_quantized_record(settings.models_dir) or {}
    for variant in record.get("variants", []):
        path = settings.models_dir / variant["file"]
        intact = path.is_file() and path.stat().st_size == variant.get("size") and sha256_of(path) == variant.get("sha256")
        rows.append({"model": variant["name"], "file": str(path), "precision": variant.get("precision", "int8"),
                     "sha256_ok": intact})
    print_table(rows, title=f"models in {settings.models_dir}")
    try:
        chosen = resolve_models(settings.models_dir, settings.models.landmark_variant).landmark_variant
    except StationError as err:
        chosen = None
        print(f"not usable yet: {err}")
    else:
        print(f"landmark variant in use: {chosen}")
    if args.json:
        write_json(args.json, {"models": rows, "landmark_variant": chosen})
    return 0 if chosen else 1


def quantize(args: argparse.Namespace, settings: Settings) -> int:
    clips = args.clips or default_clips_dir()
    if args.explore:
        from models.explore import explore  # slow, offline tooling: loaded only for --explore

        if clips is None:
            raise QuantizeError("--explore needs the real clips: pass --clips DIR")
        explore(settings, clips, say=lambda line: print(line, flush=True), pose_runs=PoseRuns(settings))
    outcome = quantize_models(settings, clips_dir=clips, use_clips=not args.no_clips, force=args.force or args.explore,
                              pose_runs=PoseRuns(settings))
    record = outcome.record
    action = "built and judged" if outcome.rebuilt else "up to date, nothing rebuilt"
    print_table(outcome.rows, title=f"landmark variants in {settings.models_dir} ({action}, {outcome.seconds:.0f}s)")
    evaluation = record.get("evaluation", {})
    source = evaluation.get("note") or f"accuracy measured on {evaluation.get('crops')} held-out crops"
    print(f"{source}\nselected: {record.get('selected') or 'float16 (no faster variant within the gate)'}")
    if args.json:
        write_json(args.json, {"variants": outcome.rows, "selected": record.get("selected"),
                               "rebuilt": outcome.rebuilt, "seconds": round(outcome.seconds, 1)})
    return 0


def macs(args: argparse.Namespace, settings: Settings) -> int:
    """Multiply-accumulates per inference of the detector, the shipped landmark model and every
    quantized variant present: the paper side of the Pi performance budget (deploy/README.md)."""
    from models.macs import count_model_file

    manifest = load_manifest()
    files = {spec.name: settings.models_dir / spec.file for spec in manifest.models.values()}
    record = read_quantized_record(settings.models_dir) or {}
    files.update({v["name"]: settings.models_dir / v["file"] for v in record.get("variants", [])
                  if (settings.models_dir / v["file"]).is_file()})
    rows = []
    for name, path in files.items():
        count = count_model_file(path)
        rows.append({"model": name, "file": path.name, "mmacs": round(count.macs / 1e6, 1),
                     **{f"{op.lower()}_mmacs": round(n / 1e6, 1) for op, n in sorted(count.by_op.items())},
                     "mac_layers": count.layers, "element_mops": round(count.element_ops / 1e6, 2)})
    print_table(rows, title=f"multiply-accumulates per inference (millions), models in {settings.models_dir}")
    if args.json:
        write_json(args.json, {"models": rows})
    return 0
