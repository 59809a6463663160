"""Keeping a station that runs for a year healthy: consistent backups of the rep database.

A backup uses SQLite's online backup API on a read-only connection, so it is safe while the
station writes (in WAL mode the writer is never blocked); the copy is checked with
PRAGMA integrity_check and converted to a single self-contained file before it replaces anything.
"""
from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Optional
from urllib.parse import quote

from device.errors import StationError

BACKUP_MODE = 0o640  # rep history is personal data: owner and the service group only


class BackupError(StationError):
    """The rep database could not be backed up; the message says why and what to do."""


@dataclass(frozen=True)
class Backup:
    source: Path
    path: Path
    size_bytes: int
    integrity: str
    removed: list[Path] = field(default_factory=list)

    def row(self) -> dict[str, object]:
        return {"source": str(self.source), "backup": str(self.path), "size_kb": round(self.size_bytes / 1024, 1),
                "integrity": self.integrity, "old_backups_removed": len(self.removed)}


def backup_database(source: Path, dest: Path | str, keep: Optional[int] = None, now: Optional[datetime] = None) -> Backup:
    """Copy the live database to `dest`: a file path, or a directory (an existing one, a path
    ending in '/', or any path when `keep` is given) that gets a timestamped file.

    With `keep`, only the newest `keep` timestamped backups of this database stay in that directory."""
    source = Path(source)
    if not source.is_file():
        raise BackupError(f"no rep database at {source} yet (it is created when the station first runs)")
    into_dir = keep is not None or str(dest).endswith(os.sep) or Path(dest).is_dir()
    dest = Path(dest)
    if keep is not None and keep < 1:
        raise BackupError("--keep needs a count of at least 1")
    if into_dir and dest.is_file():
        raise BackupError(f"{dest} is a file; give a directory for timestamped backups")
    if into_dir:
        stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
        dest.mkdir(parents=True, exist_ok=True)
        target = dest / f"{source.stem}-{stamp}.db"
    else:
        dest.parent.mkdir(parents=True, exist_ok=True)
        target = dest
    if target.resolve() == source.resolve():
        raise BackupError(f"refusing to back up {source} onto itself")

    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    try:
        src = sqlite3.connect(f"file:{quote(str(source.resolve()))}?mode=ro", uri=True, timeout=30)
    except sqlite3.Error as err:
        raise BackupError(f"cannot open {source}: {err}") from None
    try:
        out = sqlite3.connect(partial)
        try:
            src.backup(out)  # one step under one read transaction: a consistent snapshot
            out.execute("PRAGMA journal_mode=DELETE")  # a single file, usable without -wal/-shm
            result = [row[0] for row in out.execute("PRAGMA integrity_check")]
        finally:
            out.close()
    except sqlite3.Error as err:
        partial.unlink(missing_ok=True)
        raise BackupError(f"backup of {source} failed: {err} (is it a SQLite database? `station doctor` checks it)") from None
    finally:
        src.close()
    if result != ["ok"]:
        partial.unlink(missing_ok=True)
        raise BackupError(f"the copy of {source} fails integrity_check ({'; '.join(result[:3])}): "
                          "the source is damaged; keep your older backups and see deploy/README.md")
    os.chmod(partial, BACKUP_MODE)
    with partial.open("rb") as fh:
        os.fsync(fh.fileno())
    os.replace(partial, target)
    removed = prune_backups(target.parent, source.stem, keep) if keep else []
    return Backup(source, target, target.stat().st_size, "ok", removed)


def prune_backups(directory: Path, stem: str, keep: int) -> list[Path]:
    """Delete all but the newest `keep` '<stem>-YYYYmmdd-HHMMSS.db' files; other files are never touched."""
    ours = sorted(p for p in directory.glob(f"{stem}-*.db") if _is_stamped(p.name, stem))
    doomed = ours[:-keep] if keep < len(ours) else []
    for path in doomed:
        path.unlink()
    return doomed


def _is_stamped(name: str, stem: str) -> bool:
    stamp = name[len(stem) + 1 : -len(".db")]
    try:
        datetime.strptime(stamp, "%Y%m%d-%H%M%S")
    except ValueError:
        return False
    return True
