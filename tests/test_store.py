"""The rep log on a real SQLite file: schema, atomic rep writes, queries, read-only access."""
from __future__ import annotations

import sqlite3

import pytest

from device.analysis.vocabulary import Fault, FaultEvent, Rep
from device.contract.records import BadRecordError, SessionFilter, StorageError
from device.station.store import MIGRATIONS, RepStore


def make_rep(index: int, start: float, faults=()) -> Rep:
    return Rep(
        index=index, start_time=start, bottom_time=start + 1.5, end_time=start + 3.0, lowering_s=1.5, rising_s=1.5,
        peak_hip_flexion_deg=95.0, knee_flexion_at_bottom_deg=25.0, trunk_angle_at_bottom_deg=70.0,
        hip_shift_at_bottom=0.3, hinge_ratio=3.8, lockout_reached=True, side="left",
        faults=[FaultEvent(f, "cue", start + 1.0, 1.0, 0.5, index) for f in faults],
        trace=[(start + i * 0.1, 10.0 + i, 5.0 + i) for i in range(30)],
    )


def test_schema_is_created_in_wal_mode_and_migrations_are_idempotent(tmp_path):
    db = tmp_path / "station.db"
    with RepStore(db) as store:
        assert store.schema_version == len(MIGRATIONS)
    with RepStore(db) as store:
        assert store.schema_version == len(MIGRATIONS)
    raw = sqlite3.connect(db)
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"sessions", "reps", "faults", "corrections", "device_events", "station_settings"} <= tables


def test_a_fault_keeps_its_evidence_and_borderline_faults_stay_out_of_the_fault_rows(tmp_path):
    rep = make_rep(1, 5.0)
    rep.faults = [FaultEvent(Fault.HEAD_NOT_NEUTRAL, "chin", 6.0, 44.9, 25.0, 1, margin=19.9, noise=6.5,
                             quantity="head_offset_deg")]
    rep.borderline = [FaultEvent(Fault.OVEREXTENDED_LOCKOUT, "tall", 7.5, 18.3, 15.0, 1, margin=3.3,
                                 noise=float("inf"), borderline=True, quantity="hip_flexion_deg")]
    with RepStore(tmp_path / "s.db") as store:
        sid = store.start_session(1000.0, "deadlift", "camera")
        store.add_rep(sid, rep, wall_offset=1000.0)
        (back,) = store.session_reps(sid)
    (fault,) = back["faults"]
    assert (fault["name"], fault["value"], fault["threshold"], fault["margin"], fault["noise"], fault["quantity"]) == \
        ("head_not_neutral", 44.9, 25.0, 19.9, 6.5, "head_offset_deg")
    assert back["borderline"] == [{"name": "overextended_lockout", "cue": "tall", "at": 1007.5, "value": 18.3,
                                   "threshold": 15.0, "margin": 3.3, "noise": None,  # unknown noise: null
                                   "quantity": "hip_flexion_deg"}]


def test_a_first_schema_log_migrates_and_keeps_its_reps(tmp_path):
    db = tmp_path / "old.db"
    raw = sqlite3.connect(db)
    raw.executescript(MIGRATIONS[0])
    raw.execute("INSERT INTO sessions (id, started_at, profile) VALUES (1, 1000.0, 'hinge')")
    raw.execute("INSERT INTO reps (session_id, rep_index, started_at, bottom_at, ended_at, lockout_reached, side, movement)"
                " VALUES (1, 1, 1001, 1002, 1003, 1, 'left', 'hinge')")
    raw.execute("PRAGMA user_version = 1")
    raw.commit()
    raw.close()
    with RepStore(db) as store:
        assert store.schema_version == len(MIGRATIONS)
        (rep,) = store.session_reps(1)
    assert rep["borderline"] == [] and rep["faults"] == [] and rep["judged"] is True  # logged when every rep was judged


def test_reps_round_trip_with_faults_and_trace(tmp_path):
    with RepStore(tmp_path / "s.db") as store:
        sid = store.start_session(1000.0, "dowel_hinge", "file:x.mp4")
        store.add_rep(sid, make_rep(1, 5.0), wall_offset=1000.0)
        store.add_rep(sid, make_rep(2, 10.0, [Fault.SQUATTING_THE_HINGE, Fault.TOO_FAST]), wall_offset=1000.0)
        store.end_session(sid, 1020.0)
        reps = store.session_reps(sid)
        assert [r["rep_index"] for r in reps] == [1, 2]
        assert reps[0]["started_at"] == pytest.approx(1005.0) and reps[0]["faults"] == []
        assert {f["name"] for f in reps[1]["faults"]} == {"squatting_the_hinge", "too_fast"}
        assert reps[1]["faults"][0]["at"] == pytest.approx(1011.0)
        assert reps[0]["trace"][0] == [0.0, 10.0, 5.0] and len(reps[0]["trace"]) == 30
        [listed] = store.list_sessions()
        assert listed["reps"] == 2 and listed["clean_reps"] == 1
        assert listed["fault_counts"] == {"squatting_the_hinge": 1, "too_fast": 1}
        assert store.count_sessions(SessionFilter(profile="hinge")) == 0
        assert store.count_sessions(SessionFilter(since=999.0, until=1001.0, profile="dowel_hinge")) == 1


def test_a_rep_with_a_bad_fault_row_is_not_half_written(tmp_path):
    with RepStore(tmp_path / "s.db") as store:
        sid = store.start_session(0.0, "hinge")
        bad = make_rep(1, 0.0, [Fault.TOO_FAST])
        object.__setattr__(bad.faults[0], "fault", Fault.TOO_FAST)
        object.__setattr__(bad.faults[0], "cue", None)  # violates NOT NULL on faults.cue, after the rep row went in
        with pytest.raises(BadRecordError):
            store.add_rep(sid, bad, 0.0)
        assert store.rep_count(sid) == 0


def test_unknown_measurements_are_stored_as_null(tmp_path):
    with RepStore(tmp_path / "s.db") as store:
        sid = store.start_session(0.0, "hinge")
        rep = make_rep(1, 0.0)
        rep.lowering_s = float("nan")  # a lift that starts at the floor has no lowering
        store.add_rep(sid, rep, 0.0)
        assert store.session_reps(sid)[0]["lowering_s"] is None


def test_readonly_store_cannot_write_and_needs_an_existing_file(tmp_path):
    with pytest.raises(StorageError, match="does not exist"):
        RepStore(tmp_path / "missing.db", readonly=True)
    RepStore(tmp_path / "s.db").close()
    with RepStore(tmp_path / "s.db", readonly=True) as ro:
        assert ro.list_sessions() == []
        with pytest.raises(StorageError):
            ro.start_session(0.0, "hinge")


def test_corrections_sit_beside_the_verdict(tmp_path):
    with RepStore(tmp_path / "s.db") as store:
        sid = store.start_session(0.0, "hinge")
        rid = store.add_rep(sid, make_rep(1, 0.0, [Fault.ROUNDED_BACK]), 0.0)
        cid = store.add_correction(rid, "false_alarm", "rounded_back", "dowel stayed on")
        rep = store.get_rep(rid)
        assert [f["name"] for f in rep["faults"]] == ["rounded_back"]  # original verdict untouched
        assert rep["corrections"][0]["kind"] == "false_alarm"
        with pytest.raises(ValueError):
            store.add_correction(rid, "rewrite_history")
        assert store.delete_correction(cid) and store.get_rep(rid)["corrections"] == []


def test_settings_and_retention(tmp_path):
    with RepStore(tmp_path / "s.db") as store:
        store.set_setting("buzzer_enabled", False)
        store.set_setting("buzzer_enabled", True)
        assert store.get_setting("buzzer_enabled") is True and store.get_setting("nope", 3) == 3
        old = store.start_session(0.0, "hinge")
        store.add_rep(old, make_rep(1, 0.0), 0.0)
        store.end_session(old, 10.0)
        new = store.start_session(100.0, "hinge")
        assert store.prune(before=50.0) == 1
        assert store.get_session(old) is None and store.get_session(new) is not None
        assert store.rep_count() == 0  # the old session's reps and faults went with it


def test_sessions_cut_by_a_power_loss_are_closed_at_start_and_pruned_by_retention(tmp_path, settings):
    """kill -9 or a power cut leaves a session without an end; the next start closes it at its last
    rep, and retention removes it like any other once it is old enough."""
    import time

    from support.pipeline import station_settings

    from device.station.assembly import retention

    day = 86400.0
    now = time.time()
    with RepStore(tmp_path / "s.db") as store:
        old = store.start_session(now - 400 * day, "hinge", "picamera")  # cut, long ago
        cut = store.start_session(now - 2 * day, "hinge", "picamera")  # cut, recent, with a rep
        store.add_rep(cut, Rep(1, 10.0, 11.0, 12.5, 1.0, 1.5, 90.0, 20.0, 60.0, 0.3, 4.5, True, "left"),
                      wall_offset=now - 2 * day)
        assert store.close_interrupted() == 2
        ended = {s["id"]: s["ended_at"] for s in store.list_sessions()}
        assert ended[cut] == pytest.approx(now - 2 * day + 12.5) and ended[old] == pytest.approx(now - 400 * day)
        assert store.close_interrupted() == 0
        store._db.execute("UPDATE sessions SET ended_at = NULL WHERE id = ?", (old,))  # as the cut left it
    with retention(station_settings(settings, tmp_path / "s.db"), synchronised=lambda: True):  # a clock NTP set
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with RepStore(tmp_path / "s.db", readonly=True) as ro:
                ids = [s["id"] for s in ro.list_sessions()]
            if old not in ids:
                break
            time.sleep(0.05)
    assert ids == [cut]


def test_a_reader_that_may_not_write_the_folder_still_reads_the_log(tmp_path, monkeypatch, caplog):
    """As the page run by another user: SQLite cannot make the WAL's shared-memory file there (the
    tests run as root, so the refusal is played by the connection), and the log is read as last
    checkpointed, with a warning, instead of refusing to start."""
    import device.station.store as store_module

    with RepStore(tmp_path / "s.db") as store:
        store.start_session(1.0, "hinge", "picamera")
    real_connect = sqlite3.connect

    class NoShm:
        def __init__(self, db):
            self.db = db

        def execute(self, *args):
            raise sqlite3.OperationalError("unable to open database file")

        def close(self):
            self.db.close()

    def connect(database, *args, **kwargs):
        db = real_connect(database, *args, **kwargs)
        return db if "immutable=1" in str(database) else NoShm(db)

    monkeypatch.setattr(store_module.sqlite3, "connect", connect)
    with RepStore(tmp_path / "s.db", readonly=True) as ro:
        assert [s["profile"] for s in ro.list_sessions()] == ["hinge"]
    assert "last checkpointed" in caplog.text


def test_retention_never_deletes_on_a_clock_it_cannot_trust(tmp_path):
    """A 10,000-rep log and a clock two years fast: retention would take it down to nothing. It
    deletes only on a clock that is synchronised and not earlier than the newest row; on that one it
    deletes what is past store.retention_days, and only that."""
    import threading
    import time

    from device.commands.sample_log import build_bench_db
    from device.station.assembly import RetentionKeeper

    db = tmp_path / "station.db"
    build_bench_db(db)  # 10,000 reps in sessions 8 h apart, ending about now
    with RepStore(db) as store:
        newest = store.newest_time()
        sessions = store.count_sessions()
    assert newest is not None and newest <= time.time()
    two_years_fast = lambda: time.time() + 2 * 365 * 86400  # noqa: E731

    def prune(days: int, clock, synchronised) -> int:
        return RetentionKeeper(db, days, threading.Event(), clock=clock, synchronised=synchronised).prune_once()

    assert prune(365, two_years_fast, lambda: False) == 0  # not synchronised: a Pi that booted offline
    assert prune(365, two_years_fast, lambda: None) == 0  # nobody can say
    assert prune(30, lambda: newest - 3600, lambda: True) == 0  # behind the newest row: it went backwards
    with RepStore(db) as store:
        assert store.rep_count() == 10_000 and store.count_sessions() == sessions
    gone = prune(30, time.time, lambda: True)  # a clock to trust: what is older than 30 days goes
    with RepStore(db) as store:
        left = store.list_sessions(limit=10_000)
    assert gone > 0 and len(left) == sessions - gone
    assert min(s["ended_at"] for s in left) >= time.time() - 30 * 86400 - 60


def test_only_a_judged_rep_without_fault_borderline_or_squat_counts_as_clean(tmp_path):
    """The counts the history, the day's state and MQTT show take the rep's one verdict: a rep filmed
    off side-on (not judged), one with a borderline fault, and one that looked like a squat are
    none of them clean; a judged hinge without a fault is."""
    clean = make_rep(1, 10.0)
    unjudged = make_rep(2, 20.0)
    unjudged.judged = False
    borderline = make_rep(3, 30.0)
    borderline.borderline = [FaultEvent(Fault.INCOMPLETE_LOCKOUT, "tall", 31.0, 12.0, 10.0, 3, margin=2.0, noise=3.0,
                                        borderline=True)]
    squat = make_rep(4, 40.0)
    squat.movement = "squat"
    faulty = make_rep(5, 50.0, faults=(Fault.ROUNDED_BACK,))
    assert [r.verdict for r in (clean, unjudged, borderline, squat, faulty)] == \
        ["clean", "not judged", "borderline", "borderline", "faults"]
    with RepStore(tmp_path / "s.db") as store:
        sid = store.start_session(1000.0, "hinge", "camera")
        for rep in (clean, unjudged, borderline, squat, faulty):
            store.add_rep(sid, rep, wall_offset=1000.0)
        assert [r["judged"] for r in store.session_reps(sid)] == [True, False, True, True, True]
        (listed,) = store.list_sessions()
        assert (listed["reps"], listed["clean_reps"]) == (5, 1)
        assert store.day_summary(0.0)["clean"] == 1
