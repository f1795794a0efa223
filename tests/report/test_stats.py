"""Student's t over seeds (the ‡ interval of runs without predictions) against a hand computation."""

from __future__ import annotations

import math

import pytest

from ftbench.report.intervals import SEEDS_ONLY, over_seeds


def test_t_interval_by_hand():
    bounds = over_seeds([0.50, 0.52])  # an interval inside [0, 1], where nothing clips it
    assert bounds is not None and bounds.method == SEEDS_ONLY and bounds.mean == pytest.approx(0.51)
    assert bounds.high - bounds.mean == pytest.approx(12.7062 * 0.0141421 / math.sqrt(2), rel=1e-4)
    assert bounds.mean - bounds.low == pytest.approx(12.7062 * 0.0141421 / math.sqrt(2), rel=1e-4)
    one = over_seeds([0.5])
    assert one is not None and one.low is None and one.high is None and one.method is None
