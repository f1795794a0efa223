"""Student's t over seeds (the ‡ interval of runs without predictions) against a hand computation."""

from __future__ import annotations

import math

import pytest

from ftbench.report.stats import t_half_width


def test_t_interval_by_hand():
    assert t_half_width([0.5, 0.7]) == pytest.approx(12.7062 * 0.141421 / math.sqrt(2), rel=1e-4)
    assert t_half_width([0.5]) is None
