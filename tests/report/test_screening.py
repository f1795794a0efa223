"""Only like with like: one test set, one run per seed, predictions that align; and settings
refused before any file changes. A damaged run costs itself only."""

from __future__ import annotations

import copy
import csv
import math
from pathlib import Path

import numpy as np
import pytest

from ftbench.report.cli import main as report
from ftbench.run.predictions import Predictions, read_predictions, write_predictions
from tests.helpers import fake_run, write_runs


def section(text: str, title: str) -> str:
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


def table_n(text: str, strategy: str) -> int:
    """The n of ``strategy``'s row in the main table."""
    line = next(line for line in text.splitlines() if line.startswith(f"| {strategy} |") and "(n=" in line)
    return int(line.split("(n=")[1].split(")")[0])


def verdict_seeds(text: str, strategy: str) -> int | None:
    """The seeds the verdict's row of ``strategy`` rests on, None where it has no row."""
    for line in section(text, "Verdict").splitlines():
        if line.startswith(f"| {strategy} |"):
            return int(line.split("|")[2])
    return None


def on_test_set(run: dict, digest: str) -> dict:
    run = copy.deepcopy(run)
    run["data"]["split_hashes"]["test"] = digest
    return run


def test_runs_on_two_test_sets_with_the_same_labels_are_never_paired(tmp_path, template, capsys):
    a, b = "a" * 64, "b" * 64
    runs = [on_test_set(fake_run(template, "full", s, 0.8, 2e9), a) for s in range(3)]
    runs += [on_test_set(fake_run(template, "linear_probe", s, 0.7, 1e9), b) for s in range(2)]
    write_runs(tmp_path, runs)  # every run: the same example indices and labels
    assert report([str(tmp_path)]) == 0
    text = (tmp_path / "report.md").read_text()
    assert verdict_seeds(text, "full") == 3 and verdict_seeds(text, "linear_probe") is None
    failed = section(text, "Failed runs")
    for folder in ("3_linear_probe_seed0", "4_linear_probe_seed1"):
        assert folder in failed
    assert failed.count("tested on another test set (data.split_hashes.test bbbbbbbb…)") == 2
    assert "Recommendation: linear_probe" not in text


def test_a_repeated_seed_counts_once_and_is_named(tmp_path, template):
    runs = [fake_run(template, "full", 0, 0.8, 2e9), fake_run(template, "full", 0, 0.8, 2e9),
            fake_run(template, "full", 1, 0.82, 2e9), fake_run(template, "linear_probe", 0, 0.7, 1e9),
            fake_run(template, "linear_probe", 1, 0.72, 1e9)]
    write_runs(tmp_path, runs)
    assert report([str(tmp_path)]) == 0
    text = (tmp_path / "report.md").read_text()
    assert table_n(text, "full") == 2 and verdict_seeds(text, "full") == 2
    assert "seed 0 repeats the run in 0_full_seed0: one seed counts once" in section(text, "Failed runs")
    assert "1_full_seed0" in section(text, "Failed runs")


def test_a_damaged_run_costs_itself_only_and_table_and_verdict_agree(tmp_path, template):
    runs = [fake_run(template, strategy, s, acc, flops) for strategy, acc, flops in
            (("full", 0.8, 2e9), ("linear_probe", 0.7, 1e9)) for s in range(4)]
    write_runs(tmp_path, runs)
    folders = {p.name: p for p in tmp_path.iterdir()}

    def damage(folder: str, change=None) -> None:
        path = folders[folder] / "predictions.npz"
        test = read_predictions(path)["test"]
        fields = {k: getattr(test, k) for k in ("index", "label", "pred", "p_true")}
        sets = ({"test": Predictions(**{**fields, **change(fields)})} if change
                else {"gaussian_noise:3": Predictions(**fields)})  # no test set
        write_predictions(path, sets)

    damage("1_full_seed1", change=lambda f: {"label": np.roll(f["label"], 1)})  # shifted labels
    damage("2_full_seed2", change=lambda f: {"index": np.r_[f["index"][:-1], f["index"][0]]})  # a duplicate
    damage("5_linear_probe_seed1")  # no test set
    damage("6_linear_probe_seed2", change=lambda f: {k: v[:100] for k, v in f.items()})  # cut short
    assert report([str(tmp_path)]) == 0
    text = (tmp_path / "report.md").read_text()
    failed = section(text, "Failed runs")
    assert "| 1_full_seed1 |" in failed and "its labels disagree with its peers'" in failed
    assert "| 2_full_seed2 |" in failed and "an example index appears twice" in failed
    assert "| 5_linear_probe_seed1 |" in failed and "its predictions hold no test set" in failed
    assert "| 6_linear_probe_seed2 |" in failed
    assert "fewer test examples than its peers (100 of 200)" in failed
    for strategy, n in (("full", 2), ("linear_probe", 2)):
        assert table_n(text, strategy) == n and verdict_seeds(text, strategy) == n


@pytest.mark.parametrize("option", [["--confidence", "0.3"], ["--confidence", "nan"], ["--margin", "nan"],
                                    ["--resamples", "1e9"], ["--resamples", "2000.5"], ["--confidence", "x"]])
@pytest.mark.slow  # over a second or two: make test runs it, make test-fast leaves it out
def test_a_refused_setting_changes_no_file_and_is_one_line(tmp_path, template, capsys, option):
    write_runs(tmp_path, [fake_run(template, strategy, s, 0.8, 1e9) for strategy in ("full", "bitfit")
                          for s in range(2)])
    assert report([str(tmp_path), "--confidence", "0.9", "--resamples", "300"]) == 0
    with open(tmp_path / "report.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {(r["margin"], r["confidence"], r["resamples"]) for r in rows} == {("0.01", "0.9", "300")}
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert report([str(tmp_path), *option]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"ftbench-report: error: report.{option[0][2:]}=")
    assert "allowed:" in err[0] and "Traceback" not in err[0]
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_the_bound_on_resamples_is_stated_and_a_saved_setting_is_checked_too():
    from ftbench.config import validate_config
    from ftbench.run.failures import UserError
    from ftbench.stats.choice import MAX_RESAMPLES, check
    from tests.helpers import FAST, make_cfg

    settled = check({"margin": 0, "confidence": 0.95, "resamples": float(MAX_RESAMPLES)})
    assert settled["resamples"] == MAX_RESAMPLES and isinstance(settled["resamples"], int)
    with pytest.raises(UserError, match=f"100..{MAX_RESAMPLES}"):
        check({"margin": 0.01, "confidence": 0.95, "resamples": MAX_RESAMPLES + 1})
    with pytest.raises(UserError, match=f"report.resamples=1000000 is not valid; allowed: an integer "
                                        f"100..{MAX_RESAMPLES}"):
        validate_config(make_cfg(*FAST, "report.resamples=1000000", run_dir=Path("unused")))
    assert not math.isnan(check({"margin": 0.01, "confidence": 0.95, "resamples": 2000})["margin"])
