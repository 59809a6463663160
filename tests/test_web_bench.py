"""The page benchmark's parts (`station bench`'s page section): the big synthetic rep log and the
bounded loopback load generator. (Speed is measured by the benchmark itself, never asserted here.)"""
from __future__ import annotations

import random

import pytest

from device.commands.bench_page import measure_pages, page_paths, pipeline_cost
from device.commands.sample_log import build_bench_db, synthetic_rep
from device.config import WebSettings
from device.station.store import RepStore
from web.app import create_app
from web.page_server import PageServer


def test_synthetic_reps_move_like_the_rep_they_claim_to_be():
    rng = random.Random(1)
    clean, squat = synthetic_rep(rng, 1, 0.0, "clean"), synthetic_rep(rng, 2, 10.0, "squatted")
    assert max(h for _, h, _ in clean.trace) > 2.5 * max(k for _, _, k in clean.trace)  # hips travel, knees stay soft
    assert max(k for _, _, k in squat.trace) > 60 and squat.fault_names == ["squatting_the_hinge"]
    assert clean.faults == [] and clean.bottom_time - clean.start_time == pytest.approx(clean.lowering_s)
    for rep in (clean, squat):
        assert all(rep.start_time <= f.time <= rep.end_time for f in rep.faults)
        assert rep.trace[0][0] == rep.start_time and rep.trace[-1][0] == pytest.approx(rep.end_time)


def test_bench_log_and_load_generator(tmp_path):
    log = build_bench_db(tmp_path / "bench.db", reps=300, reps_per_session=30, athletes=4)
    assert log.reps == 300 and len(log.session_ids) == 10 and len(log.athlete_ids) == 4
    with RepStore(log.path, readonly=True) as store:
        assert store.integrity_check() == "ok" and store.count_sessions() == 10
        assert sum(a["sessions"] for a in store.list_athletes()) == 10  # every session has its athlete
        with PageServer(create_app(store, WebSettings())) as server:
            paths = page_paths(log.session_ids, athlete_ids=log.athlete_ids)
            result = measure_pages(server.base_url, paths, requests=36, concurrency=2)
    assert set(result) == {"history", "session", "athlete"}
    assert {p for kind, p in paths if kind == "athlete"} <= {f"/athletes/{i}" for i in log.athlete_ids}
    for stats in result.values():
        assert stats["requests"] == 12 and stats["errors"] == 0 and stats["p50_ms"] <= stats["p99_ms"] <= stats["max_ms"]


def test_the_load_generator_only_loads_loopback():
    with pytest.raises(ValueError, match="loopback"):
        measure_pages("http://192.168.1.20:8080", [("history", "/history")], requests=1)


def test_a_page_that_never_answered_has_no_percentiles_rather_than_nan():
    import socket

    with socket.socket() as closed:  # bound, never listening: every request is refused
        closed.bind(("127.0.0.1", 0))
        result = measure_pages(f"http://127.0.0.1:{closed.getsockname()[1]}", [("history", "/history")], requests=3)
    assert result["history"]["requests"] == 0 and result["history"]["errors"] == 3
    assert result["history"]["p50_ms"] is result["history"]["p99_ms"] is result["history"]["max_ms"] is None


@pytest.mark.bench
def test_pipeline_cost_runs_the_pipeline_alone_and_under_a_load_from_another_process(tmp_path):
    import time

    log = build_bench_db(tmp_path / "bench.db", reps=60, reps_per_session=20)
    runs = []

    def pipeline() -> float:  # a stand-in for the live loop: frames of fixed work, timed
        frames, started = 0, time.perf_counter()
        while time.perf_counter() - started < 1.5:
            sum(i * i for i in range(2000))
            frames += 1
        runs.append(frames)
        return frames / (time.perf_counter() - started)

    with RepStore(log.path, readonly=True) as store:
        with PageServer(create_app(store, WebSettings())) as server:
            cost = pipeline_cost(pipeline, server.base_url, log.session_ids, requests=10, concurrency=1, rate_per_s=20)
    assert len(runs) == 3 and len(cost["fps_alone_runs"]) == 2
    loaded = cost["pages_with_pipeline"]
    assert sum(s["requests"] for s in loaded.values()) > 5 and all(s["errors"] == 0 for s in loaded.values())
    assert cost["fps_cost_pct"] == pytest.approx(100 * (1 - cost["fps_with_pages"] / cost["fps_alone"]))
