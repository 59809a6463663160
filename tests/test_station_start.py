"""A station starts coaching whatever its rep log, its page's port or its pending file are doing at
start, and what needs them follows as soon as it can: a rep log another program holds locked is
tried again until it opens, and then the page and the MQTT outbox start; a page whose port is taken
is tried again while the station coaches; thousands of reps kept from an earlier run are written
beside coaching, not before it. Real clips at their own pace (`station run` as a user runs it, the
recorded poses standing in for the model), a real SQLite lock, a real socket, a real broker and hub."""
from __future__ import annotations

import random
import socket
import sqlite3
import threading
import time
import urllib.request

from gpiozero.pins.mock import MockFactory, MockPWMPin

from device.analysis.vocabulary import AnalysisEvent
from device.commands.run import exit_status, run_live
from device.commands.sample_log import synthetic_rep
from device.fileio import json_line
from device.station.assembly import build_station
from device.station.replog import SessionHandle, pending_path_for
from device.station.store import RepStore
from support.broker import free_port
from support.hub import running_hub, wait_until
from support.pipeline import RecordedPoses, station_settings

LONG_CLIP = "tby_kb_deadlift_side_correct_10reps.mp4"  # 21 s at its own pace, ten reps
SHORT_CLIP = "crossfit_bb_deadlift_side_female_annot.mp4"  # 14 s, two reps


def answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


class Watch(threading.Thread):
    """Polls the page's port from beside the run and notes when it first answered."""

    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.port, self.started = port, time.monotonic()
        self.up_after: float | None = None
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set() and self.up_after is None:
            if answers(self.port):
                self.up_after = time.monotonic() - self.started
            self.done.wait(0.2)


def test_a_rep_log_locked_at_start_is_tried_again_and_then_the_page_and_the_outbox_start(
        tmp_path, settings, clips_dir, clip_poses, broker, capsys):
    db = tmp_path / "station.db"
    port = free_port()
    poses = RecordedPoses(clip_poses(LONG_CLIP))  # (computed once per test session: before the clock starts)
    lock_s = 8.0  # longer than SQLite's own 5 s wait: the first open fails
    holder = sqlite3.connect(db, isolation_level=None, check_same_thread=False)  # another program's hold on the log
    holder.execute("PRAGMA journal_mode=DELETE")
    holder.execute("BEGIN EXCLUSIVE")
    released = threading.Event()

    def release() -> None:
        holder.execute("ROLLBACK")
        holder.close()
        released.set()

    threading.Timer(lock_s, release).start()
    cfg = station_settings(settings, db, web={"host": "127.0.0.1", "port": port}, signals={"pin_factory": "mock"},
                           mqtt={"host": broker.host, "port": broker.port, "station_id": "wall-1", "keepalive_s": 2,
                                 "reconnect_min_s": 0.05, "reconnect_max_s": 0.2})
    watch = Watch(port)
    with running_hub(broker, f"sqlite:///{tmp_path / 'hub.db'}") as hub:
        watch.start()
        summary = run_live(cfg, str(clips_dir / LONG_CLIP), engine=poses)
        watch.done.set()
        wait_until(lambda: hub.store.rep_count() == summary.reps, what="every rep at the hub")
    printed = capsys.readouterr().out
    assert released.is_set() and summary.reps >= 1 and exit_status(summary) == 0
    assert watch.up_after is not None and watch.up_after > lock_s, "the page came up, once the rep log opened"
    assert "trainer page: starts once the rep log opens" in printed and f"trainer page: http://127.0.0.1:{port}/" in printed
    with RepStore(db) as store:
        assert store.rep_count() == summary.reps and store.outbox_size() == 0  # logged, sent, confirmed


def test_a_taken_page_port_leaves_coaching_on_and_the_page_comes_up_once_it_is_free(
        tmp_path, settings, clips_dir, clip_poses, capsys):
    port = free_port()
    poses = RecordedPoses(clip_poses(SHORT_CLIP))
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", port))
    squatter.listen(1)
    threading.Timer(3.0, squatter.close).start()
    watch = Watch(port)
    watch.start()
    cfg = station_settings(settings, tmp_path / "station.db", web={"host": "127.0.0.1", "port": port},
                           signals={"pin_factory": "mock"})
    summary = run_live(cfg, str(clips_dir / SHORT_CLIP), engine=poses)
    watch.done.set()
    assert summary.reps == 2 and exit_status(summary) == 0  # the station coached the whole clip
    assert watch.up_after is not None and watch.up_after > 3.0
    assert f"trainer page: http://127.0.0.1:{port}/" in capsys.readouterr().out


def test_a_large_pending_file_is_written_beside_coaching_not_before_it(tmp_path, settings, clips_dir, clip_poses):
    """3,000 reps an earlier run kept in the pending file: the station starts with all of them still
    to write, coaches its clip while it writes them, and ends with every one in SQLite, once each."""
    db = tmp_path / "station.db"
    earlier = SessionHandle(1_700_000_000.0, "hinge", "picamera", "Sam")
    rng = random.Random(3)
    lines = [json_line({"kind": "session_start", "data": {"session": earlier.identity()}})]
    lines += [json_line({"kind": "rep", "data": {"session": earlier.identity(), "wall_offset": earlier.started_at,
                                                 "rep": synthetic_rep(rng, i, 5.0 * i).to_dict(), "timings": {}}})
              for i in range(1, 3001)]
    lines.append(json_line({"kind": "session_end", "data": {"session": earlier.identity(), "ended_at": 1_700_020_000.0}}))
    pending_path_for(db).write_text("\n".join(lines) + "\n")
    seen: list[int] = []
    rigs = []

    def on_event(event: AnalysisEvent) -> None:
        if not seen:
            seen.append(rigs[0].replog.queued)  # what still waited when the station first saw the athlete

    with build_station(station_settings(settings, db), str(clips_dir / SHORT_CLIP), profile="hinge", fast=True,
                       engine=RecordedPoses(clip_poses(SHORT_CLIP)), pin_factory=MockFactory(pin_class=MockPWMPin),
                       on_event=on_event) as rig:
        rigs.append(rig)
        at_start = rig.replog.queued
        summary = rig.run()
    assert at_start == 3002  # nothing was written before the station started
    assert seen and seen[0] > 0  # coaching was under way while the earlier reps were still going in
    with RepStore(db) as store:
        assert store.rep_count() == 3000 + summary.reps and summary.reps == 2
        (old,) = [s for s in store.list_sessions(limit=10) if s["started_at"] == earlier.started_at]
        assert store.rep_count(old["id"]) == 3000 and old["ended_at"] == 1_700_020_000.0
    assert not pending_path_for(db).exists()


def test_a_hung_page_is_restarted_and_stopping_one_never_hangs(tmp_path, settings, monkeypatch):
    """The page process stops answering (SIGSTOP: alive, its server frozen): it is ended and started
    again while the station runs, and stopping a frozen one ends it at once rather than waiting."""
    import os
    import signal

    from device.commands import page_process
    from device.commands.page_process import PageProcess
    from device.station.live import LiveState
    from support.web import RecordingControls

    monkeypatch.setattr(page_process, "HUNG_AFTER_S", 3.0)
    RepStore(tmp_path / "station.db").close()
    cfg = station_settings(settings, tmp_path / "station.db", web={"host": "127.0.0.1", "port": 0})
    live = LiveState()
    page = PageProcess(cfg.model_dump(), live, RecordingControls(live))
    pids = []
    try:
        page.start()
        assert page._process is not None and page.port is not None
        pids.append(page._process.pid)
        assert answers(page.port)
        os.kill(pids[0], signal.SIGSTOP)
        wait_until(lambda: page.restarts >= 1 and page._process is not None and page._process.pid != pids[0]
                   and answers(page.port), timeout=40, what="the frozen page replaced by one that answers")
        pids.append(page._process.pid)
        os.kill(pids[1], signal.SIGSTOP)
        page.stop(timeout=1.0)
        assert not page._process.is_alive()
    finally:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
