"""Page-load benchmark: a 10,000-rep rep log and a bounded loopback load generator that times the
history and session pages (p50/p99). `station bench` runs it beside the live pipeline to measure
the FPS the page costs; `python -m web.bench` runs it alone.

The rep log is synthetic but shaped like the real one: hinge traces (hips travel far, knees little),
squatted reps, rounded backs, rushed lowering, soft or overdone lockouts, faults at the moments the
rules would raise them, written through RepStore like the station writes them.
"""
from __future__ import annotations

import argparse
import http.client
import math
import random
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union
from urllib.parse import urlsplit

from device.analysis.vocabulary import DEFAULT_CUES, Fault, FaultEvent, Rep
from device.station.store import RepStore

PROFILES = ("hinge", "dowel_hinge", "wall_tap", "romanian_deadlift")
ATHLETES = (None, None, "Sam", "Alex R.", "Jo")
SOURCES = ("picamera", "picamera", "webcam:0", "file:bichraix_deadlift_side_good014.mp4")
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@dataclass(frozen=True)
class RepStyle:
    """How a kind of rep moves: peak flexions (°), lowering time (s), and the faults it earns."""

    hip_peak: tuple[float, float]
    knee_peak: tuple[float, float]
    lowering_s: tuple[float, float]
    top_hip: tuple[float, float]  # hip flexion at the finish: ~0 tall, >15 soft, <0 leaning back
    faults: tuple[Fault, ...] = ()
    movement: str = "hinge"


STYLES: dict[str, tuple[float, RepStyle]] = {  # name: (share of reps, style)
    "clean": (0.55, RepStyle((85, 110), (15, 32), (1.4, 2.4), (0, 6))),
    "squatted": (0.12, RepStyle((95, 120), (70, 105), (1.3, 2.2), (0, 6), (Fault.SQUATTING_THE_HINGE,), "squat")),
    "rounded": (0.08, RepStyle((95, 125), (15, 30), (1.3, 2.2), (0, 6), (Fault.ROUNDED_BACK, Fault.HEAD_NOT_NEUTRAL))),
    "rushed": (0.08, RepStyle((80, 100), (15, 30), (0.45, 0.8), (0, 6), (Fault.TOO_FAST,))),
    "soft_top": (0.07, RepStyle((85, 105), (15, 30), (1.4, 2.2), (16, 28), (Fault.INCOMPLETE_LOCKOUT,))),
    "leaning_back": (0.05, RepStyle((85, 105), (15, 30), (1.4, 2.2), (-14, -8), (Fault.OVEREXTENDED_LOCKOUT,))),
    "locked_knees": (0.05, RepStyle((80, 100), (1, 5), (1.4, 2.2), (0, 6), (Fault.LOCKED_KNEES,))),
}


def _ease(a: float, b: float, u: float) -> float:
    return a + (b - a) * (1 - math.cos(math.pi * min(max(u, 0.0), 1.0))) / 2


def synthetic_rep(rng: random.Random, index: int, start: float, style_name: Optional[str] = None) -> Rep:
    """One rep starting at `start` seconds on the frame clock, traced at 10 Hz."""
    if style_name is None:
        names = list(STYLES)
        style_name = rng.choices(names, weights=[STYLES[n][0] for n in names])[0]
    style = STYLES[style_name][1]
    hip_peak, knee_peak = rng.uniform(*style.hip_peak), rng.uniform(*style.knee_peak)
    lowering = rng.uniform(*style.lowering_s)
    rising = lowering * rng.uniform(0.55, 0.85)
    start_hip, top_hip = rng.uniform(0, 5), rng.uniform(*style.top_hip)
    start_knee, top_knee = rng.uniform(3, 8), rng.uniform(3, 8)
    duration = lowering + rising
    trace = []
    steps = [i * 0.1 for i in range(int(duration / 0.1) + 1)]
    for t in steps + ([duration] if duration - steps[-1] > 1e-6 else []):
        if t <= lowering:
            hip, knee = _ease(start_hip, hip_peak, t / lowering), _ease(start_knee, knee_peak, t / lowering)
        else:
            hip, knee = _ease(hip_peak, top_hip, (t - lowering) / rising), _ease(knee_peak, top_knee, (t - lowering) / rising)
        trace.append((start + t, hip + rng.gauss(0, 0.8), knee + rng.gauss(0, 0.6)))
    moments = {  # when each rule would be sure: (seconds after the start, measured value, threshold)
        Fault.SQUATTING_THE_HINGE: (lowering * 0.85, hip_peak / knee_peak, 1.6),
        Fault.ROUNDED_BACK: (lowering * 0.9, rng.uniform(18, 30), 15.0),
        Fault.HEAD_NOT_NEUTRAL: (lowering * 0.7, rng.uniform(22, 35), 20.0),
        Fault.TOO_FAST: (lowering * 0.6, lowering, 1.0),
        Fault.INCOMPLETE_LOCKOUT: (duration - 0.05, top_hip, 15.0),
        Fault.OVEREXTENDED_LOCKOUT: (duration - 0.1, -top_hip, 5.0),
        Fault.LOCKED_KNEES: (lowering * 0.5, knee_peak, 6.0),
    }
    faults = [FaultEvent(f, DEFAULT_CUES[f], start + moments[f][0], round(moments[f][1], 2), moments[f][2], index)
              for f in style.faults if f is not Fault.HEAD_NOT_NEUTRAL or rng.random() < 0.5]
    return Rep(
        index=index, start_time=start, bottom_time=start + lowering, end_time=start + duration,
        lowering_s=lowering, rising_s=rising, peak_hip_flexion_deg=hip_peak, knee_flexion_at_bottom_deg=knee_peak,
        trunk_angle_at_bottom_deg=min(90.0, hip_peak * rng.uniform(0.6, 0.75)), hip_shift_at_bottom=rng.uniform(0.15, 0.4),
        hinge_ratio=hip_peak / knee_peak, lockout_reached=style_name != "soft_top", side=rng.choice(("left", "right")),
        movement=style.movement, faults=faults, trace=trace,
    )


def fill_rep_log(store: RepStore, rng: random.Random, sessions: int, reps_per_session: Union[int, tuple[int, int]],
                 first_start: float, spacing_s: float = 6 * 3600, profiles: Sequence[str] = PROFILES) -> list[int]:
    """Write `sessions` finished sessions, oldest first, `spacing_s` apart; returns their ids."""
    ids = []
    for s in range(sessions):
        started = first_start + s * spacing_s + rng.uniform(0, 600)
        count = reps_per_session if isinstance(reps_per_session, int) else rng.randint(*reps_per_session)
        sid = store.start_session(started, rng.choice(profiles), rng.choice(SOURCES), rng.choice(ATHLETES))
        clock = rng.uniform(3, 10)
        for i in range(1, count + 1):
            rep = synthetic_rep(rng, i, clock)
            store.add_rep(sid, rep, wall_offset=started)
            clock = rep.end_time + rng.uniform(1.0, 4.0)
        store.end_session(sid, started + clock + 20.0)
        ids.append(sid)
    return ids


@dataclass(frozen=True)
class BenchLog:
    path: Path
    session_ids: tuple[int, ...]
    reps: int


def build_bench_db(path: Path, reps: int = 10_000, reps_per_session: int = 40, seed: int = 7) -> BenchLog:
    """A rep log of `reps` reps in sessions of `reps_per_session`, ending about now."""
    rng = random.Random(seed)
    sessions = max(1, math.ceil(reps / reps_per_session))
    spacing = 8 * 3600.0
    with RepStore(Path(path)) as store:
        ids = fill_rep_log(store, rng, sessions, reps_per_session, time.time() - sessions * spacing, spacing)
        total = store.rep_count()
    return BenchLog(Path(path), tuple(ids), total)


# --- load ---------------------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def measure_pages(base_url: str, paths: Sequence[tuple[str, str]], requests: int = 400, concurrency: int = 2,
                  max_seconds: float = 60.0, rate_per_s: Optional[float] = None,
                  headers: Optional[dict[str, str]] = None,
                  stop: Optional[threading.Event] = None) -> dict[str, dict[str, Any]]:
    """Fetch (kind, path) pairs round-robin from `concurrency` keep-alive connections; time each.

    Bounded by `requests`, `max_seconds` and `stop`. With `rate_per_s` the requests are paced (a
    few phones browsing); without, each connection fires as fast as answers come (worst case).
    Loopback only: this never loads another machine.
    """
    url = urlsplit(base_url)
    if url.hostname not in LOOPBACK:
        raise ValueError(f"the page benchmark only loads loopback addresses, not {url.hostname}")
    if not paths or requests < 1 or concurrency < 1:
        raise ValueError("need at least one path, one request and one connection")
    send_headers = {"Accept-Encoding": "gzip", **(headers or {})}
    timings: dict[str, list[float]] = {kind: [] for kind, _ in paths}
    errors: dict[str, int] = {kind: 0 for kind, _ in paths}
    lock = threading.Lock()
    counter = iter(range(requests))
    started = time.perf_counter()
    deadline = started + max_seconds

    def worker() -> None:
        conn = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=30)
        try:
            while time.perf_counter() < deadline and not (stop is not None and stop.is_set()):
                with lock:
                    n = next(counter, None)
                if n is None:
                    return
                if rate_per_s:
                    wait = started + n / rate_per_s - time.perf_counter()
                    if wait > 0 and (stop.wait(wait) if stop is not None else time.sleep(wait)):
                        return
                kind, path = paths[n % len(paths)]
                t0 = time.perf_counter()
                try:
                    conn.request("GET", path, headers=send_headers)
                    response = conn.getresponse()
                    response.read()
                    ok = response.status == 200
                except (OSError, http.client.HTTPException):
                    ok = False
                    conn.close()
                    conn = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=30)
                elapsed = time.perf_counter() - t0
                with lock:
                    if ok:
                        timings[kind].append(elapsed)
                    else:
                        errors[kind] += 1
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    result = {}
    for kind, values in timings.items():
        values.sort()
        result[kind] = {"requests": len(values), "errors": errors[kind], "p50_ms": percentile(values, 50) * 1000,
                        "p99_ms": percentile(values, 99) * 1000, "max_ms": (values[-1] * 1000) if values else float("nan"),
                        "per_s": len(values) / wall if wall > 0 else float("nan")}
    return result


def page_paths(session_ids: Sequence[int], profiles: Sequence[str] = PROFILES, seed: int = 1) -> list[tuple[str, str]]:
    """Alternating history pages (first pages, some filtered by drill) and random session pages."""
    rng = random.Random(seed)
    paths = []
    for i in range(200):
        history = f"/history?page={rng.randint(1, 5)}" + (f"&drill={rng.choice(profiles)}" if i % 3 == 0 else "")
        paths.append(("history", history))
        paths.append(("session", f"/sessions/{rng.choice(session_ids)}"))
    return paths


def run_page_bench(base_url: str, session_ids: Sequence[int], requests: int = 400, concurrency: int = 2,
                   max_seconds: float = 60.0, rate_per_s: Optional[float] = None,
                   headers: Optional[dict[str, str]] = None) -> dict[str, dict[str, Any]]:
    return measure_pages(base_url, page_paths(session_ids), requests, concurrency, max_seconds, rate_per_s, headers)


def _load_in_child(queue: Any, stop: Any, base_url: str, paths: list, concurrency: int, max_seconds: float,
                   rate_per_s: Optional[float], headers: Optional[dict[str, str]]) -> None:
    queue.put(measure_pages(base_url, paths, 10**6, concurrency, max_seconds, rate_per_s, headers, stop))


def pipeline_cost(run_pipeline: Callable[[], float], base_url: str, session_ids: Sequence[int], requests: int = 200,
                  concurrency: int = 2, rate_per_s: Optional[float] = None, max_seconds: float = 300.0,
                  headers: Optional[dict[str, str]] = None) -> dict[str, Any]:
    """In one run: the pages alone (`requests` of them), the pipeline alone, the pipeline while the
    pages are loaded, and the pipeline alone again (the spread of the two lone runs is the noise).

    `run_pipeline` processes a clip and returns its frames per second. The load comes from a
    separate process, as a phone's would, and lasts exactly as long as the loaded pipeline run.
    """
    import multiprocessing

    alone_pages = run_page_bench(base_url, session_ids, requests, concurrency, max_seconds, rate_per_s, headers)
    fps_before = run_pipeline()
    spawn = multiprocessing.get_context("spawn")
    queue, stop = spawn.Queue(), spawn.Event()
    child = spawn.Process(target=_load_in_child, args=(queue, stop, base_url, page_paths(session_ids), concurrency,
                                                       max_seconds, rate_per_s, headers), daemon=True)
    child.start()
    try:
        time.sleep(1.0)  # let the child import and connect before the timed run
        fps_loaded = run_pipeline()
    finally:
        stop.set()
    loaded_pages = queue.get(timeout=60)
    child.join(10)
    fps_after = run_pipeline()
    fps_alone = (fps_before + fps_after) / 2
    return {"fps_alone": fps_alone, "fps_alone_runs": [fps_before, fps_after], "fps_with_pages": fps_loaded,
            "fps_cost_pct": 100.0 * (1 - fps_loaded / fps_alone), "pages_alone": alone_pages,
            "pages_with_pipeline": loaded_pages}


def _pose_pipeline(clip: Path, models_dir: Optional[Path], repeat: int) -> Callable[[], float]:
    """The pose engine over a clip, `repeat` times: the heaviest part of the live loop, until
    `station bench` runs the whole loop."""
    from device.config import load_settings
    from device.pose.engine import PoseEngine
    from device.commands.replay import replay_clip

    settings = load_settings(None, {"models.dir": models_dir} if models_dir else {})
    engine = PoseEngine.from_settings(settings)

    def run() -> float:
        runs = [replay_clip(engine, clip) for _ in range(repeat)]
        return sum(r.frames for r in runs) / sum(r.wall_seconds for r in runs)

    return run


def main(argv: Optional[Sequence[str]] = None) -> int:
    from device.config import WebSettings
    from device.commands.tables import print_table, write_json
    from web.app import create_app
    from web.page_server import PageServer

    parser = argparse.ArgumentParser(prog="python -m web.bench", description="time the history and session pages on a big rep log")
    parser.add_argument("--reps", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--rate", type=float, default=None, help="requests per second (default: as fast as answered)")
    parser.add_argument("--max-seconds", type=float, default=120.0)
    parser.add_argument("--clip", type=Path, help="also run the pose engine over this clip: its FPS alone and under page load")
    parser.add_argument("--threads", type=int, default=4, help="the page's worker threads (create_app max_threads)")
    parser.add_argument("--cpu-share", type=float, default=0.25, help="create_app page_cpu_share; 0 turns pacing off")
    parser.add_argument("--repeat", type=int, default=3, help="clip passes per pipeline phase")
    parser.add_argument("--models-dir", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    pipeline = _pose_pipeline(args.clip, args.models_dir, args.repeat) if args.clip else None
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        log = build_bench_db(Path(tmp) / "bench.db", reps=args.reps)
        print(f"rep log: {log.reps} reps in {len(log.session_ids)} sessions, built in {time.perf_counter() - t0:.1f} s")
        store = RepStore(log.path, readonly=True)
        app = create_app(store, WebSettings(), profiles=PROFILES, max_threads=args.threads,
                         page_cpu_share=args.cpu_share or None)
        load = f"{args.concurrency} connections, {'paced at %g/s' % args.rate if args.rate else 'unpaced'}"
        with PageServer(app) as server:
            if pipeline is None:
                cpu0 = time.process_time()
                result = run_page_bench(server.base_url, log.session_ids, args.requests, args.concurrency,
                                        args.max_seconds, args.rate)
                cpu = time.process_time() - cpu0
            else:
                cost = pipeline_cost(pipeline, server.base_url, log.session_ids, args.requests, args.concurrency,
                                     args.rate, args.max_seconds)
        store.close()
    if pipeline is None:
        rows = [{"page": kind, **stats} for kind, stats in result.items()]
        print_table(rows, title=f"page latency, {load}")
        served = sum(r["requests"] for r in rows)
        print(f"process CPU (server and load generator together): {cpu:.2f} s, {1000 * cpu / max(served, 1):.1f} ms per page")
        payload: dict[str, Any] = {"pages": rows, "process_cpu_s": cpu}
    else:
        rows = [{"phase": phase, "page": kind, **stats} for phase in ("pages_alone", "pages_with_pipeline")
                for kind, stats in cost[phase].items()]
        print_table(rows, title=f"page latency, {load}")
        before, after = cost["fps_alone_runs"]
        fps = [{"pipeline": "pose engine over " + args.clip.name, "fps_alone_before": before, "fps_alone_after": after,
                "fps_with_pages": cost["fps_with_pages"], "fps_cost_pct": cost["fps_cost_pct"]}]
        print_table(fps)
        payload = {"pages": rows, "fps": fps}
    if args.json:
        write_json(args.json, {"reps": log.reps, "sessions": len(log.session_ids), "concurrency": args.concurrency,
                               "rate_per_s": args.rate, **payload})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
