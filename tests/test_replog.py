"""No completed rep is lost to a damaged database, a rep log SQLite will not write, or a full disk:
what SQLite refuses waits in the fsynced pending file and is replayed; a damaged file is moved aside."""
from __future__ import annotations

import json
import sqlite3

import pytest
from support.pipeline import RecordedPoses, station_settings

from device.analysis.vocabulary import Fault, FaultEvent, Rep
from device.commands.doctor import Doctor
from device.commands.run import exit_status
from device.fileio import json_line
from device.station.assembly import build_station
from device.station.replog import Item, RepLog, pending_path_for
from device.station.store import RepStore, open_rep_log


def a_rep(index: int, fault: bool = False) -> Rep:
    faults = [FaultEvent(Fault.HEAD_NOT_NEUTRAL, "long neck", 10.0 * index + 1, 31.5, 25.0, index, 6.5, 2.2)] if fault else []
    return Rep(index, 10.0 * index, 10.0 * index + 1.5, 10.0 * index + 3.0, 1.5, 1.5, 95.0, 20.0, 60.0, 0.3, 4.75, True,
               "left", faults=faults, trace=[(10.0 * index, 5.0, 2.0), (10.0 * index + 1.5, 95.0, float("nan"))])


def log_reps(replog: RepLog, n: int, started_at: float = 1_700_000_000.0):
    session = replog.start_session(started_at, "hinge", "clip.mp4", "Sam")
    for i in range(1, n + 1):
        replog.add_rep(session, a_rep(i, fault=i % 2 == 0), started_at, {"pose_ms_median": 9.0})
    replog.end_session(session, started_at + 100)
    return session


def stored_reps(db) -> list[tuple]:
    raw = sqlite3.connect(db)
    try:
        return raw.execute("SELECT s.athlete, r.rep_index, r.peak_hip_flexion_deg, r.trace, "
                           "(SELECT COUNT(*) FROM faults f WHERE f.rep_id = r.id) FROM reps r "
                           "JOIN sessions s ON s.id = r.session_id ORDER BY r.rep_index").fetchall()
    finally:
        raw.close()


def refuse_writes(store: RepStore) -> None:
    """SQLite answers every write with "attempt to write a readonly database", as for a file the
    service user cannot write (the tests run as root, for whom file modes do not bite)."""
    store._db.execute("PRAGMA query_only = 1")


def test_a_rep_log_that_refuses_writes_keeps_every_rep_in_the_pending_file_and_replays_it(tmp_path):
    db = tmp_path / "station.db"
    store = RepStore(db)
    refuse_writes(store)
    replog = RepLog(store)
    log_reps(replog, 3)
    assert replog.paused and replog.in_ram == 0 and replog.queued == 5
    pending = pending_path_for(db)
    kinds = [json.loads(line)["kind"] for line in pending.read_text().splitlines()]
    assert kinds == ["session_start", "rep", "rep", "rep", "session_end"]  # on disk before close
    assert "kept in" in replog.status
    replog.close()
    assert replog.unwritten == 0 and stored_reps(db) == []

    # The next start (SQLite writable again) loads them, and the live loop's flushes (not the start)
    # write them in order, exactly once, and empty the file.
    again = RepLog(RepStore(db))
    assert again.replayed == 5 and again.queued == 5 and pending.exists()
    assert again.flush() and again.queued == 0 and not pending.exists()
    again.close()
    rows = stored_reps(db)
    assert [(r[0], r[1], r[4]) for r in rows] == [("Sam", 1, 0), ("Sam", 2, 1), ("Sam", 3, 0)]
    assert json.loads(rows[1][3]) == [[0.0, 5.0, 2.0], [1.5, 95.0, None]]  # the trace and its unknown knee


def test_replaying_twice_writes_each_rep_once(tmp_path):
    """Power lost after SQLite took the kept items but before the file was emptied: the next start
    finds them written and writes nothing twice."""
    db = tmp_path / "station.db"
    store = RepStore(db)
    refuse_writes(store)
    replog = RepLog(store)
    log_reps(replog, 2)
    copy = pending_path_for(db).read_bytes()
    replog.close()
    RepLog(RepStore(db)).close()
    pending_path_for(db).write_bytes(copy)  # as if the emptying never reached the disk
    RepLog(RepStore(db)).close()
    assert [r[1] for r in stored_reps(db)] == [1, 2]


def test_below_the_free_space_floor_reps_wait_on_disk_and_the_final_flush_uses_real_space(tmp_path):
    db = tmp_path / "station.db"
    replog = RepLog(RepStore(db), min_free_mb=10**9)  # the floor is never met while running
    log_reps(replog, 3)
    assert replog.paused and replog.in_ram == 0 and stored_reps(db) == []
    assert pending_path_for(db).exists()
    replog.close()  # at exit the disk has room: everything goes in
    assert replog.unwritten == 0 and [r[1] for r in stored_reps(db)] == [1, 2, 3]
    assert not pending_path_for(db).exists()


def test_when_the_disk_refuses_even_the_pending_file_the_loss_is_counted_for_the_exit_status(tmp_path):
    db = tmp_path / "station.db"
    store = RepStore(db)
    refuse_writes(store)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    replog = RepLog(store, pending_path=blocker / "pending.jsonl")
    log_reps(replog, 2)
    assert replog.in_ram == 4 and "memory only" in replog.status
    replog.close()
    assert replog.unwritten == 4


def corrupt(db, reps: int = 300) -> None:
    """A rep log with a valid header and pages of garbage after it."""
    replog = RepLog(RepStore(db))
    log_reps(replog, reps)
    replog.close()
    size = db.stat().st_size
    assert size > 16 * 4096
    with db.open("r+b") as fh:
        fh.seek(4 * 4096)
        fh.write(bytes((i * 7919) % 251 for i in range(8 * 4096)))


def test_a_damaged_rep_log_is_moved_aside_and_a_fresh_one_started(tmp_path, settings):
    db = tmp_path / "station.db"
    corrupt(db)
    store, moved = open_rep_log(db, clock=lambda: 1_762_677_200.0)
    assert moved == tmp_path / "station.db.damaged-20251109T083320Z" and moved.exists()
    assert store.quick_check() == "ok" and store.rep_count() == 0
    [event] = store.device_events()
    assert event["kind"] == "rep_log_damaged" and moved.name in event["detail"]
    store.close()
    check = Doctor(station_settings(settings, db)).database()
    assert check.status == "warn" and moved.name in check.detail


def test_the_station_started_on_a_damaged_rep_log_coaches_logs_and_says_so(tmp_path, settings, clips_dir, clip_poses):
    db = tmp_path / "station.db"
    corrupt(db)
    clip = "jeffchen_deadlift_side_bad_rounded_head_down_1rep.mp4"
    with build_station(station_settings(settings, db), str(clips_dir / clip), headless=True, fast=True,
                       engine=RecordedPoses(clip_poses(clip))) as rig:
        summary = rig.run()
        _, snap = rig.live.snapshot()
    assert summary.reps == 1 and "moved aside" in snap.storage
    assert exit_status(summary) == 0
    with RepStore(db, readonly=True) as ro:
        assert ro.rep_count() == 1
        assert "rep_log_damaged" in [e["kind"] for e in ro.device_events()]
    assert list(tmp_path.glob("station.db.damaged-*"))


def test_a_rep_log_that_cannot_be_opened_still_coaches_and_the_exit_status_reports_the_loss(tmp_path, settings,
                                                                                            clips_dir, clip_poses):
    blocker = tmp_path / "data"
    blocker.write_text("a file where the data folder should be")
    clip = "jeffchen_deadlift_side_bad_rounded_head_down_1rep.mp4"
    with build_station(station_settings(settings, blocker / "station.db"), str(clips_dir / clip), headless=True,
                       fast=True, engine=RecordedPoses(clip_poses(clip))) as rig:
        summary = rig.run()
        _, snap = rig.live.snapshot()
        assert rig.replog.store is None and "memory only" in snap.storage
    summary.unwritten = rig.replog.unwritten
    assert summary.reps == 1 and summary.unwritten > 0
    assert exit_status(summary) == 1


@pytest.mark.parametrize("rep", [a_rep(3, fault=True), a_rep(1)])
def test_a_rep_comes_back_from_its_json_line_unchanged(rep):
    """The pending file holds reps as JSON lines (NaN written as null); they come back the same."""
    line = json_line(rep.to_dict())
    back = Rep.from_dict(json.loads(line))
    assert json_line(back.to_dict()) == line
    assert back.faults == rep.faults and back.index == rep.index


def test_a_record_sqlite_refuses_in_a_replayed_batch_is_skipped_alone(tmp_path):
    """Kept items are written BATCH at a time in one transaction; one that SQLite refuses (here a
    device event without a kind) rolls its batch back, and the batch goes again one item at a time:
    that item is skipped and logged, every other one written once, under the session it belongs to."""
    db = tmp_path / "station.db"
    store = RepStore(db)
    refuse_writes(store)
    replog = RepLog(store)
    session = replog.start_session(1_700_000_000.0, "hinge", "clip.mp4", "Sam")
    replog.add_rep(session, a_rep(1), 1_700_000_000.0, {})
    replog._submit(Item("device_event", {"kind": None, "detail": "", "at": 1.0}))  # NOT NULL: refused
    for i in range(2, 6):
        replog.add_rep(session, a_rep(i), 1_700_000_000.0, {})
    replog.close()
    again = RepLog(RepStore(db))
    assert again.flush(budget_s=None) and again.rejected == 1
    again.close()
    assert [(r[0], r[1]) for r in stored_reps(db)] == [("Sam", i) for i in range(1, 6)]
    with RepStore(db) as check:
        assert check.count_sessions() == 1


def test_a_torn_last_line_in_the_pending_file_does_not_swallow_the_next_record(tmp_path):
    """A power cut in the middle of an append leaves half a line with no newline: the next record
    starts on a line of its own, so only the torn one is lost (it was never reported as logged)."""
    from device.station.pending import PendingFile

    pending = PendingFile(tmp_path / "station-pending.jsonl")
    pending.append({"kind": "rep", "n": 1})
    with pending.path.open("a") as fh:
        fh.write('{"kind": "rep", "n": 2, "da')  # cut short
    pending.append({"kind": "rep", "n": 3})
    assert pending.records() == [{"kind": "rep", "n": 1}, {"kind": "rep", "n": 3}]
