"""The report's verdict from saved predictions: its table, a failed final run in its row, the margin."""

from __future__ import annotations

import copy
import csv
import io

import pytest

from ftbench.report import write_report
from ftbench.report.cli import main as report_main
from tests.helpers import fake_run, tuned_sweep, write_runs


def test_a_failed_final_run_is_shown_in_its_strategys_row(tmp_path, template):
    runs = tuned_sweep(template, {"full": [0.8, 0.82, 0.81], "linear_probe": [0.7, 0.71, 0.72]})
    failed = copy.deepcopy(template)
    failed = {"status": "diverged", "error": "diverged: the training loss is nan", "strategy": "full",
              "seed": 4, "config": {**failed["config"], "tune": {"phase": "tuned", "job": "seed4"}}}
    write_runs(tmp_path, [*runs, failed])
    write_report(tmp_path)
    md = (tmp_path / "report.md").read_text()
    verdict = md[md.index("## Verdict"):]
    row = next(line for line in verdict.splitlines() if line.startswith("| full |"))
    assert "unstable: 1 of 4 runs failed or diverged" in row
    assert "| linear_probe |" in verdict and "**worse**" in verdict


@pytest.mark.slow  # over a second or two: make test runs it, make test-fast leaves it out
def test_the_margin_decides_between_equivalent_and_worse(tmp_path, template, capsys):
    runs = [fake_run(template, s, seed, acc, flops) for s, accs, flops in
            (("full", [0.80, 0.80, 0.80], 3e9), ("linear_probe", [0.78, 0.78, 0.78], 1e9))
            for seed, acc in enumerate(accs)]
    write_runs(tmp_path, runs, examples=2000)
    assert report_main([str(tmp_path), "--margin", "0.001"]) == 0
    md = (tmp_path / "report.md").read_text()
    assert "**Recommendation: full**" in md and "Margin 0.0010" in md
    assert report_main([str(tmp_path), "--margin", "0.1"]) == 0
    md = (tmp_path / "report.md").read_text()
    assert "**Recommendation: linear_probe**" in md and "practically equivalent" in md


@pytest.mark.parametrize("bad", ["-0.1", "1.5"])
def test_a_bad_margin_is_one_line(tmp_path, template, capsys, bad):
    write_runs(tmp_path, [fake_run(template, "full", 0, 0.8, 1e9)])
    assert report_main([str(tmp_path), "--margin", bad]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"ftbench-report: error: report.margin={float(bad)}")


def cell(md: str, table_header: str, strategy: str, column: int) -> str:
    """The ``column``-th cell of ``strategy``'s row in the table whose header starts with ``table_header``."""
    table = md[md.index(table_header):]
    row = next(line for line in table.splitlines() if line.startswith(f"| {strategy} |"))
    return row.split(" | ")[column].strip()


def test_a_compare_sweep_shows_a_failed_run_in_its_verdict_table(tmp_path, template):
    runs = [fake_run(template, s, seed, acc, flops) for s, accs, flops in
            (("full", [0.80, 0.82, 0.81], 3e9), ("linear_probe", [0.70, 0.71, 0.72], 1e9)) for seed, acc in
            enumerate(accs)]
    failed = {"status": "diverged", "error": "diverged: the training loss is nan", "strategy": "linear_probe",
              "seed": 3, "config": copy.deepcopy(template["config"])}
    write_runs(tmp_path, [*runs, failed])
    write_report(tmp_path)
    md = (tmp_path / "report.md").read_text()
    verdict = md[md.index("## Verdict"):]
    row = next(line for line in verdict.splitlines() if line.startswith("| linear_probe |"))
    assert "| 3 | 1 |" in row and "unstable: 1 of 4 runs failed or diverged" in row


def test_a_report_whose_runs_kept_predictions_speaks_one_vocabulary(tmp_path, template):
    runs = []
    for strategy, accs, flops in (("full", [0.90, 0.91, 0.92], 9e9), ("partial", [0.86, 0.88, 0.87], 3e9),
                                  ("linear_probe", [0.89, 0.90, 0.91], 1e9)):
        for seed, acc in enumerate(accs):
            run = fake_run(template, strategy, seed, acc, flops)
            run["metrics"]["shift"] = None  # every accuracy in the report has its predictions
            runs.append(run)
    write_runs(tmp_path, runs, examples=1000)
    write_report(tmp_path)
    md = (tmp_path / "report.md").read_text()
    for absent in ("t-test", "Student", "Holm", "p=", "‡", "† fewer than", "stop overlapping"):
        assert absent not in md, absent
    csv_rows = {r["strategy"]: r for r in csv.DictReader(io.StringIO((tmp_path / "report.csv").read_text()))}
    for strategy in ("full", "linear_probe", "partial"):
        main = cell(md, "| strategy | runs |", strategy, 3)  # 0.9100 [low, high] (n=3)
        judged = cell(md, "| strategy | seeds | failed |", strategy, 3)  # 0.9100 [low, high]
        assert main.startswith(judged) and main == f"{judged} (n=3)"
        low, high = (float(v) for v in judged[judged.index("[") + 1:-1].split(", "))
        row = csv_rows[strategy]
        assert (round(float(row["test_acc_low"]), 4), round(float(row["test_acc_high"]), 4)) == (low, high)
        within = cell(md, "| strategy | seeds | failed |", strategy, 5)
        assert float(within) == pytest.approx(100 * float(row["within_of_best"]), abs=0.05)
    assert "### The answer at every margin" in md and "| 1 (`report.margin`) |" in md
    assert (tmp_path / "plots" / "margin_vs_cost.png").is_file() and "plots/margin_vs_cost.png" in md


@pytest.mark.slow  # over a second or two: make test runs it, make test-fast leaves it out
def test_default_against_tuned_reads_its_word_off_a_joint_interval(tmp_path, template):
    runs = tuned_sweep(template, {"full": [0.8, 0.82, 0.81], "linear_probe": [0.7, 0.71, 0.72]})
    for run in runs:  # full's best trial (trial1) is no default, and its tuned runs gain 8 points
        tune = run["config"]["tune"]
        if run["strategy"] == "full" and (tune["phase"] == "tuned" or tune["job"] == "trial1"):
            run["config"]["strategy"]["lr"] = 0.5
            if tune["phase"] == "tuned":
                run["metrics"]["test_acc"] += 0.08
    write_runs(tmp_path, runs, examples=1000)
    write_report(tmp_path)
    md = (tmp_path / "report.md").read_text()
    row = next(line for line in md[md.index("## Default against tuned"):].splitlines()
               if line.startswith("| full |"))
    assert "**tuning helped**" in row and "Holm" not in md and "p=" not in md
    gain = row.split(" | ")[3]
    low, high = (float(v) for v in gain[gain.index("[") + 1:gain.index("]")].split(", "))
    assert 0 < low < 0.08 < high
