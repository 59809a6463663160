"""Small file helpers every layer shares: content hashes and JSON that survives NaN and numpy."""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks (model files are tens of MB)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def jsonable(value: Any) -> Any:
    """NaN and infinity become null (JSON has neither); paths become strings; numpy scalars plain numbers."""
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "item"):  # numpy scalars
        return jsonable(value.item())
    return value


def json_line(payload: Any) -> str:
    return json.dumps(jsonable(payload), separators=(",", ":"))


