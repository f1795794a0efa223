"""Show your work: the expected best validation accuracy after n trials (Dodge et al. 2019), and
the tuned report's section built from hand-made search trials with the report's own functions."""

from __future__ import annotations

import csv
import itertools
import statistics

import pytest

from ftbench.report.collect import Run
from ftbench.report.expected_max import CSV_NAME, PLOT_NAME, expected_best, section
from ftbench.report.tuned import tunings
from tests.helpers import PNG_MAGIC

VALUES = [0.70, 0.90, 0.80, 0.60]


def test_without_replacement_it_is_the_mean_best_over_every_subset_of_n_trials():
    for n in range(1, len(VALUES) + 1):
        subsets = list(itertools.combinations(VALUES, n))
        assert expected_best(VALUES, n) == pytest.approx(statistics.fmean(max(s) for s in subsets))
    # by hand, n = 2 of 4: the six pairs' maxima 0.9, 0.8, 0.7, 0.9, 0.9, 0.8 average 0.8333
    assert expected_best(VALUES, 2) == pytest.approx(5.0 / 6.0)
    assert expected_best(VALUES, 1) == pytest.approx(0.75) and expected_best(VALUES, 4) == 0.90


def test_with_replacement_it_is_dodge_et_als_formula():
    # n = 2 draws with replacement from 4: every ordered pair, 16 of them
    pairs = list(itertools.product(VALUES, repeat=2))
    by_enumeration = statistics.fmean(max(p) for p in pairs)
    assert expected_best(VALUES, 2, replacement=True) == pytest.approx(by_enumeration)
    # Dodge et al.: sum v_(i) ((i/N)^n - ((i-1)/N)^n) = (0.6*1 + 0.7*3 + 0.8*5 + 0.9*7) / 16
    assert expected_best(VALUES, 2, replacement=True) == pytest.approx((0.6 + 2.1 + 4.0 + 6.3) / 16)
    assert expected_best(VALUES, 4, replacement=True) < max(VALUES)  # it never quite reaches the best
    with pytest.raises(ValueError):
        expected_best(VALUES, 5)


def trial(strategy: str, number: int, val_acc: float | None, flops: float, status: str = "completed") -> Run:
    return Run({"status": status, "strategy": strategy, "seed": 0,
                "metrics": {"val_acc": val_acc, "test_acc": None}, "cost": {"train_flops": flops},
                "history": [{"epoch": 1, "val_acc": val_acc}],
                "config": {"tune": {"phase": "search", "job": f"trial{number}"},
                           "strategy": {"name": strategy, "search": {"lr": {"low": 1e-4, "high": 1.0}}}}},
               dir=f"search/{strategy}/trial{number}")


def test_the_tuned_reports_section_has_the_curve_the_csv_the_plot_and_the_trials_each_needed(tmp_path):
    runs = ([trial("linear_probe", i, v, 1e9) for i, v in enumerate([0.80, 0.95, 0.94, 0.93])]
            + [trial("full", i, v, 4e9) for i, v in enumerate([0.50, 0.60, 0.70, 0.96])]
            + [trial("full", 4, 0.2, 1e9, status="pruned")])  # pruned: no draw, no cost per trial
    got = section(tmp_path, tunings(runs), margin=0.02)

    with open(tmp_path / CSV_NAME) as f:
        rows = list(csv.DictReader(f))
    full = [r for r in rows if r["strategy"] == "full"]
    assert [int(r["trials"]) for r in full] == [1, 2, 3, 4]
    expected = [expected_best([0.50, 0.60, 0.70, 0.96], n) for n in range(1, 5)]
    assert [float(r["expected_best_val_acc"]) for r in full] == pytest.approx(expected)
    assert [float(r["search_flops"]) for r in full] == [4e9, 8e9, 12e9, 16e9]
    assert (tmp_path / "plots" / PLOT_NAME).read_bytes()[:8] == PNG_MAGIC

    # linear_probe: E[max of 2] = (0.93*1 + 0.94*2 + 0.95*3) / 6 = 0.9433 >= 0.95 - 0.02 at 2 trials;
    # E[max of 1] = 0.905 is not. full needs all 4: only its last trial is good.
    assert "- `linear_probe`: 2 of 4 completed trials to come within 0.02 of its final best " \
           "validation accuracy (0.9500), about 2 GFLOP of search." in got.markdown
    assert "- `full`: 4 of 4 completed trials (of 5 run) to come within 0.02" in got.markdown
    assert f"![Expected best validation accuracy against search cost](plots/{PLOT_NAME})" in got.markdown
    assert set(got.paths) == {CSV_NAME, "Expected best validation accuracy against search cost"}
