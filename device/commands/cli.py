"""`station`: the one command that fronts the station.

Each subcommand parses its flags here and hands plain values to the module that does the work.
User errors (missing model, bad clip, bad config) print one clear line and exit non-zero.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
from pathlib import Path
from typing import Callable, Optional

from device.config import Settings, load_settings
from device.errors import StationError
from device.commands.logs import setup_logging

log = logging.getLogger("station")

Handler = Callable[[argparse.Namespace, Settings], int]


def _settings(args: argparse.Namespace) -> Settings:
    """Settings from the config file, with the flags a command was given laid over them."""
    flags = {"models.dir": getattr(args, "models_dir", None), "models.landmark_variant": getattr(args, "variant", None),
             "signals.pin_factory": "mock" if getattr(args, "mock_pins", False) else None,
             "web.port": getattr(args, "port", None)}
    return load_settings(args.config, flags)


def _handler(target: str) -> Handler:
    """'module:function' under device.commands, imported only when that subcommand runs, so that
    `station doctor --quick` does not load OpenCV or a TFLite interpreter."""
    module, name = target.split(":")
    return getattr(importlib.import_module(f"device.commands.{module}"), name)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="station", description="Hinge Station: on-device hip-hinge coaching.")
    parser.add_argument("--config", type=Path, help="TOML config file (default: $HINGE_CONFIG or /etc/hinge-station/config.toml)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, handler: str, help_text: str) -> argparse.ArgumentParser:
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

    p = add("run", "run:run", "run the station: camera, coaching alerts, rep log and the trainer page")
    live_flags(p)
    p.add_argument("--no-page", action="store_true", help="do not serve the trainer page")
    p.add_argument("--port", type=int, help="trainer page port (default: web.port)")
    p.add_argument("--mock-pins", action="store_true", help="drive gpiozero mock pins instead of GPIO")
    p.add_argument("--exit-at-end", action="store_true", help="with a clip source, exit when it ends instead of keeping the page up")
    p.add_argument("--demo-token", action="store_true",
                   help="when web.token is not set, use (or make once) a write token kept in <data_dir>/web-token, "
                        "so the page's changes can be tried; a token set in the config always wins")

    p = add("log", "run:log", "headless logging: the same pipeline with no page and no lights")
    live_flags(p)
    p.add_argument("--jsonl", type=Path, help="JSON-lines rep file (default: store.jsonl_path)")

    p = add("replay", "replay:command", "run the pose engine over a clip and report frames/s")
    p.add_argument("clip", type=Path)
    p.add_argument("--annotate", type=Path, metavar="OUT.mp4", help="write the clip with the skeleton drawn")
    p.add_argument("--json", type=Path, metavar="OUT.jsonl", help="one landmark record per frame, then the summary")
    model_flags(p)

    p = add("evaluate", "evaluate:command", "score rep counting, hinge-vs-squat verdicts and faults on labelled clips")
    p.add_argument("labels", nargs="?", type=Path, metavar="LABELS",
                   help="labels CSV (default: ../shared/clips/labels.csv when present)")
    p.add_argument("--profile", help="drill profile for every clip (default: each clip's `drill` column, "
                                     "else settings analysis.profile); the tables name the profile per clip")
    p.add_argument("--by-source", action="store_true",
                   help="also totals and faults per source: the labels' `source` column if present, else the clip "
                        "file name's first `_`-separated token (jeffchen_deadlift_side_good_1rep.mp4 -> jeffchen)")
    p.add_argument("--perturb", action="store_true",
                   help="slow: also run every clip scaled to <=640 px, at 15 and 10 fps (frames dropped by "
                        "timestamp), mirrored, and shifted 1 and 2 px; report the clips whose rep count or "
                        "raised faults change")
    p.add_argument("--no-cache", action="store_true", help="run the pose engine even where cached poses exist")
    p.add_argument("--json", type=Path, metavar="PATH", help="write the same tables as JSON")
    model_flags(p)

    p = add("serve", "serve:command", "serve the trainer page over an existing rep log, without the live loop")
    p.add_argument("--db", type=Path, help="rep log (default: store.db_path)")
    p.add_argument("--host", help="address to listen on (default: web.host)")
    p.add_argument("--port", type=int, help="port (default: web.port)")
    p.add_argument("--writable", action="store_true",
                   help="allow corrections, labels and deletes (still need web.token); default read-only")

    p = add("hub", "hub:command", "the gym's hub: every station's reps from the MQTT broker into one database and one page")
    p.add_argument("action", nargs="?", choices=("serve", "bench"), default="serve",
                   help="serve (the default): run the hub; bench: measure one hub under many simulated stations")
    p.add_argument("--host", help="page address to listen on (default: web.host)")
    p.add_argument("--port", type=int, help="page port (default: web.port)")
    p.add_argument("--stations", default="50", help="bench: simulated stations, or a comma list of counts to run in turn (default 50)")
    p.add_argument("--seconds", type=float, default=60.0, help="bench: how long they publish (default 60)")
    p.add_argument("--every", type=float, default=2.0, help="bench: seconds between one station's reps (default 2)")
    p.add_argument("--database-url", help="bench: the hub's database (default: a fresh SQLite file in a temp dir)")
    p.add_argument("--json", type=Path, metavar="PATH", help="bench: write the rows as JSON")

    p = add("bench", "bench:command", "time the bare models and the full pipeline on one clip")
    p.add_argument("clip", type=Path)
    p.add_argument("--json", type=Path, metavar="PATH", help="write every section's rows (the printed names)")
    p.add_argument("--only", metavar="SECTION[,SECTION]",
                   help="run only these sections, comma-separated (default: all; a wrong name lists them)")
    model_flags(p)

    models = sub.add_parser("models", help="fetch, quantize and check the pose models")
    msub = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    p = msub.add_parser("fetch", help="download the mediapipe wheel from PyPI and extract the models (idempotent)")
    p.add_argument("--wheel", type=Path, help="use this already-downloaded mediapipe wheel instead of pip")
    p.set_defaults(handler="models:fetch")
    model_flags(p)
    p = msub.add_parser("status", help="list model files, their hashes and the variant in use")
    p.add_argument("--json", type=Path, metavar="PATH")
    p.set_defaults(handler="models:status")
    model_flags(p)

    add("retire", "retire:command", "remove this station from Home Assistant and the hub's floor (before wiping it)")
    p = add("doctor", "doctor:command", "check camera, models, runtime, GPIO, disk, rep database, clock and config")
    p.add_argument("--quick", action="store_true", help="do not open the camera or run the model (safe while the station runs)")
    p.add_argument("--json", type=Path, metavar="PATH", help="write the checks as JSON")

    db = sub.add_parser("db", help="look after the rep database")
    dbsub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    p = dbsub.add_parser("backup", help="consistent copy of the rep database (SQLite online backup; safe while the station runs)")
    p.add_argument("dest", metavar="DEST", help="backup file, or a directory (existing, or ending in '/') for a timestamped copy")
    p.add_argument("--keep", type=int, metavar="N", help="DEST is a directory: keep only the newest N timestamped backups there")
    p.add_argument("--json", type=Path, metavar="PATH")
    p.set_defaults(handler="db:backup")

    p = msub.add_parser("quantize", help="build int8 landmark variants, judge them against float16 and pick one (idempotent)")
    p.add_argument("--clips", type=Path, metavar="DIR", help="real clips to judge on (default: ../shared/clips beside the repo, when present)")
    p.add_argument("--no-clips", action="store_true", help="do not re-measure; take accuracy from the committed evaluation")
    p.add_argument("--force", action="store_true", help="rebuild and re-judge even when the record is current")
    p.add_argument("--explore", action="store_true", help="slow: recalibrate, try every recipe, rewrite models/quantization and models/QUANTIZATION.md")
    p.add_argument("--json", type=Path, metavar="PATH")
    p.add_argument("--models-dir", type=Path, help="models directory (default: <data_dir>/models)")
    p.set_defaults(handler="models:quantize")

    p = msub.add_parser("trace", help="record the pose engine's landmarks and the analysis events on a clip's first "
                                      "frames, with the CPU and runtime facts (deploy/test-arm64.sh compares machines)")
    p.add_argument("clips", nargs="+", type=Path, metavar="CLIP")
    p.add_argument("--out", type=Path, required=True, metavar="TRACE.json")
    p.add_argument("--frames", type=int, default=40, help="frames from the start of each clip (default 40)")
    p.add_argument("--profile", help="drill profile for the analysis (default: analysis.profile)")
    p.add_argument("--noise-floor", action="store_true",
                   help="also trace the clips moved by one pixel: the model's own noise, the tolerance of `compare`")
    p.add_argument("--variant-speed", action="store_true",
                   help="also time every quantized landmark variant against float16 in this run (ratios only)")
    p.add_argument("--json", type=Path, metavar="PATH", help="write the printed tables as JSON (the trace itself is --out)")
    p.set_defaults(handler="crosscheck:trace")
    model_flags(p)
    p = msub.add_parser("compare", help="landmark distance and analysis events of a trace against a reference "
                                        "trace; exits 1 beyond the reference's one-pixel noise floor")
    p.add_argument("reference", type=Path, metavar="REFERENCE.json", help="a trace made with --noise-floor")
    p.add_argument("others", nargs="+", type=Path, metavar="OTHER.json")
    p.add_argument("--json", type=Path, metavar="PATH")
    p.set_defaults(handler="crosscheck:compare")
    p = msub.add_parser("macs", help="multiply-accumulates per inference of the detector and each landmark variant, "
                                     "counted from the model graphs (the Pi performance budget)")
    p.add_argument("--json", type=Path, metavar="PATH")
    p.set_defaults(handler="models:macs")
    model_flags(p)
    synth = sub.add_parser("synth", help="the rendered-athlete bench: clips with known joint angles, and the station judged on them")
    ssub = synth.add_subparsers(dest="synth_command", metavar="ACTION", required=True)
    p = ssub.add_parser("render", help="render a set of clips, truth files and labels.csv (needs the [synth] extra)")
    p.add_argument("--set", choices=("small", "full"), default="small", help="small: 7 clips checked in CI; full: the sweep")
    p.add_argument("--out", type=Path, metavar="DIR", help="output folder (default: ~/.cache/hinge-station/synth/SET)")
    p.add_argument("--only", metavar="PATTERN", help="only clips whose name matches (a glob, or a word found in the name)")
    p.add_argument("--json", type=Path, metavar="PATH", help="write the printed tables as JSON")
    p.set_defaults(handler="synth:render")
    p = ssub.add_parser("report", help="run the station's pose engine and analysis on rendered clips against their truth")
    p.add_argument("dir", type=Path, metavar="DIR", help="a folder `station synth render` wrote")
    p.add_argument("--only", metavar="PATTERN", help="only clips whose file name matches (a glob, or a word found in the name)")
    p.add_argument("--no-cache", action="store_true", help="run the pose engine even where cached poses exist")
    p.add_argument("--reps", action="store_true", help="also list every rep: faults present, raised, borderline")
    p.add_argument("--json", type=Path, metavar="PATH", help="write the printed tables as JSON")
    p.set_defaults(handler="synth:report")
    model_flags(p)
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = _settings(args)
        setup_logging("DEBUG" if args.verbose else settings.logging.level)
        return _handler(args.handler)(args, settings)
    except StationError as err:
        print(f"station: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
