"""The one percentile helper: every median and p95 the station reports goes through here, so a rep
record, a bench table and an evaluation agree on what "median" means (linear interpolation, as
numpy's default, over the finite values only; the median exactly as np.median)."""
from __future__ import annotations

import math
from typing import Callable, Iterable, Optional

import numpy as np


def percentile(values: Iterable[float], q: float, digits: Optional[int] = None) -> Optional[float]:
    """The q-th percentile (0..100) of the finite values, rounded to `digits` if given; None when
    there is no finite value (an empty stage, a joint never seen), never NaN or an exception."""
    return _summary(values, lambda finite: np.percentile(finite, q), digits)


def median(values: Iterable[float], digits: Optional[int] = None) -> Optional[float]:
    """The middle of the finite values (the mean of the two middle ones for an even count)."""
    return _summary(values, np.median, digits)


def _summary(values: Iterable[float], reduce: Callable[[list[float]], float], digits: Optional[int]) -> Optional[float]:
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return None
    result = float(reduce(finite))
    return round(result, digits) if digits is not None else result
