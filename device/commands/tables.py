"""Tables on the terminal and the same rows as JSON, so printed and machine-read names agree."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Optional, Sequence, TextIO
import sys

from device.fileio import jsonable


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def format_table(rows: Sequence[dict[str, Any]], columns: Optional[Sequence[str]] = None) -> str:
    if not rows:
        return "(no rows)"
    columns = list(columns or rows[0].keys())
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def print_table(rows: Sequence[dict[str, Any]], columns: Optional[Sequence[str]] = None, title: Optional[str] = None,
                out: Optional[TextIO] = None) -> None:
    out = out or sys.stdout  # looked up per call: stdout may be redirected after import
    if title:
        print(title, file=out)
    print(format_table(rows, columns), file=out)


def write_json(path: Path, payload: Any) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(jsonable(payload), indent=2) + "\n")


