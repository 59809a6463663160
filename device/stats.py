"""The one percentile helper: every median and p95 the station reports goes through here, so a rep
record, a bench table and an evaluation agree on what "median" means (linear interpolation, as
numpy's default, over the finite values only)."""
from __future__ import annotations

import math
from typing import Iterable, Optional

import numpy as np


def percentile(values: Iterable[float], q: float, digits: Optional[int] = None) -> Optional[float]:
    """The q-th percentile (0..100) of the finite values, rounded to `digits` if given; None when
    there is no finite value (an empty stage, a joint never seen), never NaN or an exception."""
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return None
    result = float(np.percentile(finite, q))
    return round(result, digits) if digits is not None else result


def median(values: Iterable[float], digits: Optional[int] = None) -> Optional[float]:
    return percentile(values, 50, digits)
