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


# --- run / log --------------------------------------------------------------------------------


def _live_overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {"signals.pin_factory": "mock" if getattr(args, "mock_pins", False) else None,
            "web.port": getattr(args, "port", None)}


def _print_run_summary(summary) -> None:
    from device.report import print_table

    lat = summary.signal_latency_ms
    print_table([{
        "frames": summary.frames, "dropped": summary.dropped, "fps": round(summary.fps, 1), "sessions": summary.sessions,
        "reps": summary.reps, "faults": summary.faults,
        "frame_to_signal_ms_median": round(float(sorted(lat)[len(lat) // 2]), 1) if lat else None,
    }])


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from device.runner import run_live

    settings = _settings(args, _live_overrides(args))
    summary = run_live(settings, args.source, profile=args.profile, fast=args.fast, serve_page=not args.no_page,
                       keep_page_after_clip=not args.exit_at_end)
    _print_run_summary(summary)
    return 0


def cmd_log(args: argparse.Namespace, settings: Settings) -> int:
    from device.runner import run_live

    settings = _settings(args, _live_overrides(args))
    jsonl = args.jsonl or settings.store.jsonl_path
    summary = run_live(settings, args.source, profile=args.profile, headless=True, fast=args.fast, jsonl=jsonl)
    _print_run_summary(summary)
    print(f"rep log: {settings.store.db_path}\nJSON lines: {jsonl}")
    return 0


# --- doctor and housekeeping ---------------------------------------------------------------------


def cmd_doctor(args: argparse.Namespace, settings: Settings) -> int:
    from device.doctor import FAIL, WARN, run_checks
    from device.report import print_table, write_json

    checks = run_checks(settings, args.config, probe=not args.quick)
    rows = [c.row() for c in checks]
    print_table(rows, columns=["check", "status", "detail"])
    todo = [c for c in checks if c.fix and c.status != "ok"]
    if todo:
        print("\nfix:")
        for c in todo:
            print(f"  {c.name}: {c.fix}")
    failed = sum(c.status == FAIL for c in checks)
    warned = sum(c.status == WARN for c in checks)
    print(f"\n{failed} failed, {warned} warnings, {len(checks) - failed - warned} ok")
    if args.json:
        write_json(args.json, {"checks": rows, "ok": failed == 0, "failed": failed, "warnings": warned})
    return 1 if failed else 0


def cmd_db_backup(args: argparse.Namespace, settings: Settings) -> int:
    from device.housekeeping import backup_database
    from device.report import print_table, write_json

    assert settings.store.db_path is not None
    backup = backup_database(settings.store.db_path, args.dest, keep=args.keep)
    print_table([backup.row()])
    if args.json:
        write_json(args.json, backup.row())
    return 0


# --- evaluate -----------------------------------------------------------------------------------


def cmd_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    from device.evaluate import LabelsError, PoseCache, default_labels_path, engine_poses, evaluate, model_key, read_labels
    from device.profiles import load_profile
    from device.report import print_table, write_json

    labels_path = args.labels or default_labels_path()
    if labels_path is None:
        raise LabelsError("no labels file given and ../shared/clips/labels.csv is not present: pass LABELS")
    labels = read_labels(labels_path)
    profile = load_profile(args.profile or settings.analysis.profile, settings.analysis.profiles_dir)
    cache = None if args.no_cache else PoseCache(settings.data_dir / "cache" / "poses", model_key(settings))
    progress = (lambda clip: print(f"evaluating {clip}", file=sys.stderr)) if sys.stderr.isatty() else None
    result = evaluate(labels, engine_poses(settings, cache), profile, progress)
    clips, faults, totals = result.clip_rows(), result.fault_rows(), result.totals()
    print_table(clips, title=f"clips ({labels_path}, drill profile {profile.name})")
    print()
    print_table([{k: v for k, v in totals.items() if k != "verdicts"}], title="total")
    print("verdicts (label->said): " + ", ".join(f"{k} {v}" for k, v in totals["verdicts"].items()))
    print()
    print_table(faults, title="faults (per clip: a label says the fault is somewhere in the clip)")
    print(f"\nanalysis_ms_per_frame: {totals['analysis_ms_per_frame']}")
    if args.json:
        write_json(args.json, {"labels": str(labels_path), "clips": clips, "total": totals, "faults": faults})
    return 0


# --- serve --------------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from web.serve import serve_rep_log

    return serve_rep_log(settings, db=args.db, host=args.host, port=args.port, writable=args.writable)


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

    def live_flags(p: argparse.ArgumentParser) -> None:
        p.add_argument("--source", help="camera or clip: auto (Pi camera, else webcam), picamera, webcam:N, or a video path")
        p.add_argument("--fast", action="store_true", help="replay a clip as fast as possible (every frame) instead of at its frame rate")
        p.add_argument("--profile", help="drill profile (default: analysis.profile, or the one chosen on the page)")
        model_flags(p)

    p = add("run", cmd_run, "run the station: camera, coaching alerts, rep log and the trainer page")
    live_flags(p)
    p.add_argument("--no-page", action="store_true", help="do not serve the trainer page")
    p.add_argument("--port", type=int, help="trainer page port (default: web.port)")
    p.add_argument("--mock-pins", action="store_true", help="drive gpiozero mock pins instead of GPIO")
    p.add_argument("--exit-at-end", action="store_true", help="with a clip source, exit when it ends instead of keeping the page up")

    p = add("log", cmd_log, "headless logging: the same pipeline with no page and no lights")
    live_flags(p)
    p.add_argument("--jsonl", type=Path, help="JSON-lines rep file (default: store.jsonl_path)")

    p = add("replay", cmd_replay, "run the pose engine over a clip and report frames/s")
    p.add_argument("clip", type=Path)
    p.add_argument("--annotate", type=Path, metavar="OUT.mp4", help="write the clip with the skeleton drawn")
    p.add_argument("--json", type=Path, metavar="OUT.jsonl", help="one landmark record per frame, then the summary")
    model_flags(p)

    p = add("evaluate", cmd_evaluate, "score rep counting, hinge-vs-squat verdicts and faults on labelled clips")
    p.add_argument("labels", nargs="?", type=Path, metavar="LABELS",
                   help="labels CSV (default: ../shared/clips/labels.csv when present)")
    p.add_argument("--profile", help="drill profile to analyse with (default: settings analysis.profile)")
    p.add_argument("--no-cache", action="store_true", help="run the pose engine even where cached poses exist")
    p.add_argument("--json", type=Path, metavar="PATH", help="write the same tables as JSON")
    model_flags(p)

    p = add("serve", cmd_serve, "serve the trainer page over an existing rep log, without the live loop")
    p.add_argument("--db", type=Path, help="rep log (default: store.db_path)")
    p.add_argument("--host", help="address to listen on (default: web.host)")
    p.add_argument("--port", type=int, help="port (default: web.port)")
    p.add_argument("--writable", action="store_true",
                   help="allow corrections, labels and deletes (still need web.token); default read-only")

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

    p = add("doctor", cmd_doctor, "check camera, models, runtime, GPIO, disk, rep database, clock and config")
    p.add_argument("--quick", action="store_true", help="do not open the camera or run the model (safe while the station runs)")
    p.add_argument("--json", type=Path, metavar="PATH", help="write the checks as JSON")

    db = sub.add_parser("db", help="look after the rep database")
    dbsub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    p = dbsub.add_parser("backup", help="consistent copy of the rep database (SQLite online backup; safe while the station runs)")
    p.add_argument("dest", metavar="DEST", help="backup file, or a directory (existing, or ending in '/') for a timestamped copy")
    p.add_argument("--keep", type=int, metavar="N", help="DEST is a directory: keep only the newest N timestamped backups there")
    p.add_argument("--json", type=Path, metavar="PATH")
    p.set_defaults(handler=cmd_db_backup)

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
