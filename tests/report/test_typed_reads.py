"""The report reads a run's record through typed attributes, so a renamed field fails loudly."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import ftbench
from ftbench.report import readings
from ftbench.report.collect import Run
from ftbench.report.rows import Row

DOTTED = re.compile(r'"(metrics|cost|config|data|history|runtime)\.[a-z_.]+"')


def test_no_report_suite_or_stats_module_reads_a_field_by_a_dotted_string():
    package = Path(ftbench.__file__).parent
    found = [f"{path.relative_to(package)}:{n}" for folder in ("report", "suite", "stats")
             for path in sorted((package / folder).glob("*.py"))
             for n, line in enumerate(path.read_text().splitlines(), 1) if DOTTED.search(line)]
    assert found == []


def test_a_column_reads_the_typed_record_and_a_field_not_in_the_schema_fails():
    runs = [Run({"status": "completed", "strategy": "full", "seed": seed,
                 "metrics": {"test_acc": acc, "shift": {"noise:3": acc - 0.1, "mean": acc - 0.1}},
                 "cost": {"train_flops": 2e9}}) for seed, acc in enumerate([0.8, 0.9])]
    row = Row("full", runs=runs)
    assert row.mean(readings.test_acc) == pytest.approx(0.85) and row.mean(readings.train_flops) == 2e9
    assert row.mean(readings.shift_at("noise:3")) == pytest.approx(0.75)
    assert row.mean(readings.shift_at("blur:1")) is None
    with pytest.raises(AttributeError):
        row.mean(lambda r: r.cost.train_flop)  # type: ignore[attr-defined]
