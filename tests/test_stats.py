"""The one percentile helper: what every reported median and p95 means."""
import math

import numpy as np

from device.stats import median, percentile


def test_median_and_percentile_are_numpys_over_the_finite_values():
    values = [3.0, 1.0, float("nan"), 10.0, float("inf"), 2.0]
    finite = [3.0, 1.0, 10.0, 2.0]
    assert median(values) == float(np.median(finite)) == 2.5
    assert percentile(values, 95) == float(np.percentile(finite, 95))
    assert percentile(values, 95, digits=1) == round(float(np.percentile(finite, 95)), 1)


def test_nothing_to_summarise_is_none_not_nan():
    assert median([]) is None and percentile([float("nan"), None], 50) is None
    assert not math.isnan(median([0.0]))
