"""The trainer page under load, for `station bench`'s page section: a bounded loopback load
generator that times the history and session pages (p50/p99, through device.stats), and the FPS the
live loop loses while a page load runs beside it in this process.
"""
from __future__ import annotations

import http.client
import random
import threading
import time
from typing import Any, Callable, Optional, Sequence
from urllib.parse import urlsplit

from device.commands.sample_log import PROFILES
from device.stats import percentile

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


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
    host = url.hostname
    if host is None or host not in LOOPBACK:
        raise ValueError(f"the page benchmark only loads loopback addresses, not {host}")
    if not paths or requests < 1 or concurrency < 1:
        raise ValueError("need at least one path, one request and one connection")
    send_headers = {"Accept-Encoding": "gzip", **(headers or {})}
    stop = stop if stop is not None else threading.Event()  # never set: waits are plain sleeps
    timings: dict[str, list[float]] = {kind: [] for kind, _ in paths}
    errors: dict[str, int] = {kind: 0 for kind, _ in paths}
    lock = threading.Lock()
    counter = iter(range(requests))
    started = time.perf_counter()
    deadline = started + max_seconds

    def worker() -> None:
        conn = http.client.HTTPConnection(host, url.port or 80, timeout=30)
        try:
            while time.perf_counter() < deadline and not stop.is_set():
                with lock:
                    n = next(counter, None)
                if n is None:
                    return
                if rate_per_s:
                    wait = started + n / rate_per_s - time.perf_counter()
                    if wait > 0 and stop.wait(wait):
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
                    conn = http.client.HTTPConnection(host, url.port or 80, timeout=30)
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
        ms = [v * 1000 for v in values]
        result[kind] = {"requests": len(ms), "errors": errors[kind], "p50_ms": percentile(ms, 50),
                        "p99_ms": percentile(ms, 99), "max_ms": max(ms, default=None),
                        "per_s": len(ms) / wall if wall > 0 else None}
    return result


def page_paths(session_ids: Sequence[int], profiles: Sequence[str] = PROFILES, seed: int = 1,
               athlete_ids: Sequence[int] = ()) -> list[tuple[str, str]]:
    """Alternating history pages (first pages, some filtered by drill), random session pages and,
    given athletes, random athlete pages (their ladder, mastery and charts)."""
    rng = random.Random(seed)
    paths = []
    for i in range(200):
        history = f"/history?page={rng.randint(1, 5)}" + (f"&drill={rng.choice(profiles)}" if i % 3 == 0 else "")
        paths.append(("history", history))
        paths.append(("session", f"/sessions/{rng.choice(session_ids)}"))
        if athlete_ids:
            paths.append(("athlete", f"/athletes/{rng.choice(athlete_ids)}"))
    return paths


def run_page_bench(base_url: str, session_ids: Sequence[int], requests: int = 400, concurrency: int = 2,
                   max_seconds: float = 60.0, rate_per_s: Optional[float] = None,
                   headers: Optional[dict[str, str]] = None, athlete_ids: Sequence[int] = ()) -> dict[str, dict[str, Any]]:
    return measure_pages(base_url, page_paths(session_ids, athlete_ids=athlete_ids), requests, concurrency, max_seconds,
                         rate_per_s, headers)


def _load_in_child(queue: Any, stop: Any, base_url: str, paths: list, concurrency: int, max_seconds: float,
                   rate_per_s: Optional[float], headers: Optional[dict[str, str]]) -> None:
    queue.put(measure_pages(base_url, paths, 10**6, concurrency, max_seconds, rate_per_s, headers, stop))


def pipeline_cost(run_pipeline: Callable[[], float], base_url: str, session_ids: Sequence[int], requests: int = 200,
                  concurrency: int = 2, rate_per_s: Optional[float] = None, max_seconds: float = 300.0,
                  headers: Optional[dict[str, str]] = None, athlete_ids: Sequence[int] = ()) -> dict[str, Any]:
    """In one run: the pages alone (`requests` of them), the pipeline alone, the pipeline while the
    pages are loaded, and the pipeline alone again (the spread of the two lone runs is the noise).

    `run_pipeline` processes a clip and returns its frames per second. The load comes from a
    separate process, as a phone's would, and lasts exactly as long as the loaded pipeline run.
    """
    import multiprocessing

    alone_pages = run_page_bench(base_url, session_ids, requests, concurrency, max_seconds, rate_per_s, headers, athlete_ids)
    fps_before = run_pipeline()
    spawn = multiprocessing.get_context("spawn")
    queue, stop = spawn.Queue(), spawn.Event()
    paths = page_paths(session_ids, athlete_ids=athlete_ids)
    child = spawn.Process(target=_load_in_child, args=(queue, stop, base_url, paths, concurrency, max_seconds, rate_per_s,
                                                       headers), daemon=True)
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
