"""`station db backup`: a consistent, self-contained copy of a real SQLite database, taken while
another connection keeps writing, and pruning that only touches its own files."""
from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
import threading
from datetime import datetime
from pathlib import Path

import pytest

from device.station.backups import BackupError, backup_database


def station(*args, **kw):
    return subprocess.run([sys.executable, "-m", "device", *map(str, args)], capture_output=True, text=True, **kw)


def live_db(path: Path, rows: int = 500) -> Path:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE reps (id INTEGER PRIMARY KEY, fault TEXT, hip_deg REAL)")
    conn.executemany("INSERT INTO reps (fault, hip_deg) VALUES (?, ?)", [("none", 80 + i % 30) for i in range(rows)])
    conn.commit()
    conn.close()
    return path


def count(path: Path) -> int:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT count(*) FROM reps").fetchone()[0]
    finally:
        conn.close()


def test_backup_is_a_checked_self_contained_copy(tmp_path):
    db = live_db(tmp_path / "station.db")
    writer = sqlite3.connect(db)  # the station keeps the WAL open; some reps are only in the -wal file
    writer.execute("INSERT INTO reps (fault, hip_deg) VALUES ('rounded_back', 95)")
    writer.commit()
    assert Path(f"{db}-wal").stat().st_size > 0

    backup = backup_database(db, tmp_path / "copy.db")
    writer.close()
    assert backup.integrity == "ok" and backup.path == tmp_path / "copy.db"
    assert count(backup.path) == 501
    assert not Path(f"{backup.path}-wal").exists()
    conn = sqlite3.connect(backup.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # usable as one file
    conn.close()
    assert stat.S_IMODE(backup.path.stat().st_mode) == 0o640
    assert not list(tmp_path.glob("*.partial"))


def test_backup_while_another_connection_keeps_writing(tmp_path):
    db = live_db(tmp_path / "station.db", rows=2000)
    stop, busy = threading.Event(), threading.Event()
    written = []

    def station_writes():
        conn = sqlite3.connect(db, timeout=10)
        while not stop.is_set():
            conn.execute("INSERT INTO reps (fault, hip_deg) VALUES ('knees_forward', 100)")
            conn.commit()
            written.append(1)
            if len(written) == 20:
                busy.set()
        conn.close()

    thread = threading.Thread(target=station_writes)
    thread.start()
    try:
        assert busy.wait(10)
        backups = [backup_database(db, tmp_path / f"copy{i}.db") for i in range(5)]
    finally:
        stop.set()
        thread.join()
    counts = [count(b.path) for b in backups]
    assert all(b.integrity == "ok" for b in backups)
    assert counts == sorted(counts) and counts[0] >= 2020 and counts[-1] <= 2000 + len(written)


def test_directory_destination_gets_timestamped_files_and_keep_prunes_only_ours(tmp_path):
    db = live_db(tmp_path / "station.db", rows=10)
    backups = tmp_path / "backups"
    backups.mkdir()
    (backups / "notes.txt").write_text("trainer's notes")
    (backups / "station-manual.db").write_text("a copy made by hand")
    made = [backup_database(db, backups, keep=2, now=datetime(2026, 1, day, 3, 0, 0)) for day in (5, 12, 19)]
    assert made[0].path.name == "station-20260105-030000.db"
    assert made[2].removed == [backups / "station-20260105-030000.db"]
    assert sorted(p.name for p in backups.iterdir()) == [
        "notes.txt", "station-20260112-030000.db", "station-20260119-030000.db", "station-manual.db"]


def test_clear_errors(tmp_path):
    with pytest.raises(BackupError, match="no rep database"):
        backup_database(tmp_path / "station.db", tmp_path / "copy.db")
    db = live_db(tmp_path / "station.db", rows=1)
    with pytest.raises(BackupError, match="onto itself"):
        backup_database(db, db)
    (tmp_path / "copy.db").write_text("an old file")
    with pytest.raises(BackupError, match="is a file; give a directory"):
        backup_database(db, tmp_path / "copy.db", keep=3)
    (tmp_path / "copy.db").unlink()
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(BackupError, match="failed"):
        backup_database(junk, tmp_path / "copy.db")
    assert not (tmp_path / "copy.db").exists() and not list(tmp_path.glob("*.partial"))


def test_cli_backup_prints_and_writes_the_same_names(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    live_db(data / "station.db", rows=42)
    out = tmp_path / "backup.json"
    env = {**os.environ, "HINGE_DATA_DIR": str(data)}
    proc = station("db", "backup", f"{tmp_path}/backups/", "--keep", "3", "--json", out, env=env)  # as the timer runs it
    assert proc.returncode == 0, proc.stderr
    row = json.loads(out.read_text())
    assert Path(row["backup"]).parent == tmp_path / "backups" and Path(row["backup"]).name.startswith("station-")
    to_dir = station("db", "backup", f"{tmp_path}/fresh/", env=env)
    assert to_dir.returncode == 0 and len(list((tmp_path / "fresh").glob("station-*.db"))) == 1
    assert proc.stdout.split()[:5] == list(row)[:5]
    assert row["integrity"] == "ok" and count(Path(row["backup"])) == 42

    missing = station("db", "backup", tmp_path / "x.db", env={**os.environ, "HINGE_DATA_DIR": str(tmp_path / "none")})
    assert missing.returncode == 1 and "no rep database" in missing.stderr and "Traceback" not in missing.stderr
