"""`station run` (LED, buzzer, rep log and the trainer page) and `station log` (headless: rep log
and JSON lines only): the live station, assembled from settings."""
from __future__ import annotations

import argparse

from device.commands.tables import print_table
from device.config import Settings
from device.station.assembly import run_live


def print_run_summary(summary) -> None:
    lat = summary.signal_latency_ms
    print_table([{
        "frames": summary.frames, "dropped": summary.dropped, "fps": round(summary.fps, 1), "sessions": summary.sessions,
        "reps": summary.reps, "faults": summary.faults,
        "frame_to_signal_ms_median": round(float(sorted(lat)[len(lat) // 2]), 1) if lat else None,
    }])


def run(args: argparse.Namespace, settings: Settings) -> int:
    summary = run_live(settings, args.source, profile=args.profile, fast=args.fast, serve_page=not args.no_page,
                       keep_page_after_clip=not args.exit_at_end)
    print_run_summary(summary)
    return 0


def log(args: argparse.Namespace, settings: Settings) -> int:
    jsonl = args.jsonl or settings.store.jsonl_path
    summary = run_live(settings, args.source, profile=args.profile, headless=True, fast=args.fast, jsonl=jsonl)
    print_run_summary(summary)
    print(f"rep log: {settings.store.db_path}\nJSON lines: {jsonl}")
    return 0
