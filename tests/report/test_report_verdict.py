"""The report's verdict from saved predictions: its table, a failed final run in its row, the margin."""

from __future__ import annotations

import copy

import pytest

from ftbench.report import write_report
from ftbench.report.cli import main as report_main
from tests.helpers import fake_run, write_runs


def tuned_sweep(template: dict, tuned_accs: dict[str, list[float]]) -> list[dict]:
    """A tuned comparison's records: two search trials and the final runs of each strategy."""
    runs = []
    for strategy, accs in tuned_accs.items():
        for trial in range(2):
            run = fake_run(template, strategy, 0, None, 1e9)
            run["config"]["tune"] = {"phase": "search", "job": f"trial{trial}"}
            run["config"]["run"] = {"test": False}
            run["metrics"]["val_acc"] = 0.8 + trial / 100
            runs.append(run)
        for seed, acc in enumerate(accs, start=1):
            for phase in ("default", "tuned"):
                run = fake_run(template, strategy, seed, acc, 1e9)
                run["config"]["tune"] = {"phase": phase, "job": f"seed{seed}"}
                runs.append(run)
    return runs


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
