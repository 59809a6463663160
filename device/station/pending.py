"""The rep log's pending file: what SQLite could not take yet, appended and fsynced, one JSON line each.

SQLite is the rep log; this file is only its stand-in while SQLite refuses (a damaged or read-only
database, the disk below its free-space floor). Every record is on disk before the rep is reported,
and the file is read back at the next start, so a completed rep never lives only in RAM across a
restart. Once SQLite has taken everything, the file is emptied.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from device.fileio import json_line

log = logging.getLogger(__name__)


class PendingFile:
    """An append-only file of JSON records, each fsynced as it is written."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def append(self, record: dict[str, Any]) -> None:
        """Write one record durably; raises OSError when the disk will not take it. A last line that
        a power cut left without its newline gets one first, so this record starts a line of its own
        and only the torn one is unreadable."""
        line = json_line(record) + "\n"
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                line = "\n" + line
            data = line.encode()
            written = os.write(fd, data)
            if written != len(data):
                raise OSError(f"short write to {self.path} ({written} of {len(data)} bytes)")
            os.fsync(fd)
        finally:
            os.close(fd)

    def records(self) -> list[dict[str, Any]]:
        """Every whole record, in order. A last line cut short by a power loss is skipped (its rep
        was never reported as logged); any other unreadable line is logged and skipped."""
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return []
        except OSError as err:
            log.error("pending rep log %s cannot be read: %s", self.path, err)
            return []
        out = []
        lines = text.split("\n")
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                if number != len(lines):  # not the unterminated last line
                    log.error("pending rep log %s: line %d is unreadable, skipped", self.path, number)
                continue
            if isinstance(record, dict):
                out.append(record)
        return out

    def clear(self) -> None:
        """Everything in it is in SQLite now: empty the file (durably)."""
        if not self.path.exists():
            return
        with self.path.open("w") as fh:
            fh.flush()
            os.fsync(fh.fileno())
        self.path.unlink()
