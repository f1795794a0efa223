"""ftbench.results: a sweep's runs, the report's verdict and a tuned sweep's trials as DataFrames."""

from __future__ import annotations

import csv
import itertools
import math
import os
import re
import sqlite3
import subprocess
import sys

import optuna
import pandas as pd
import pytest
import yaml

from ftbench import results
from ftbench.report.render import write_report
from ftbench.run.atomic import write_json
from tests.helpers import fake_run, tuned_sweep, write_runs

ACCURACIES = {"linear_probe": [0.70, 0.72, 0.71], "full": [0.90, 0.91, 0.89], "lp_ft": [0.905, 0.90, 0.91]}
FLOPS = {"linear_probe": 1e9, "full": 5e9, "lp_ft": 4e9}


def sweep_runs(template: dict) -> list[dict]:
    return [fake_run(template, strategy, seed, acc, FLOPS[strategy])
            for strategy, accs in ACCURACIES.items() for seed, acc in enumerate(accs)]


@pytest.fixture
def sweep(tmp_path, template):
    root = tmp_path / "sweep"
    write_runs(root, sweep_runs(template))
    return root


def test_runs_has_one_row_per_run_with_its_identity_knobs_accuracy_and_costs(sweep, template):
    frame = results.runs(sweep)

    assert len(frame) == sum(len(a) for a in ACCURACIES.values())
    for column in ("task", "dir", "strategy", "seed", "status", "strategy.lr", "strategy.lr_decay",
                   "val_acc", "test_acc", "shift_acc", "train_flops", "train_seconds", "train_memory_mb",
                   "peak_memory_mb", "trainable_params", "total_params", "images_per_second"):
        assert column in frame.columns, column
    assert set(frame.task) == {"sweep"} and set(frame.status) == {"completed"}
    by_run = frame.set_index(["strategy", "seed"])
    for strategy, accs in ACCURACIES.items():
        for seed, acc in enumerate(accs):
            assert by_run.loc[(strategy, seed), "test_acc"] == acc
            assert by_run.loc[(strategy, seed), "train_flops"] == FLOPS[strategy]
    assert frame.groupby("strategy").test_acc.mean()["full"] == pytest.approx(0.90)
    assert set(frame["strategy.lr"]) == {template["config"]["strategy"]["lr"]}


def test_a_suite_gives_each_run_its_task(tmp_path, template):
    root = tmp_path / "suite"
    root.mkdir()
    (root / "suite.yaml").write_text(yaml.safe_dump({
        "name": "hand", "protocol": "compare",
        "tasks": [{"name": t, "dataset": "digits"} for t in ("a", "b")]}))
    write_runs(root / "a", sweep_runs(template))
    write_runs(root / "b", sweep_runs(template)[:3])

    frame = results.runs(root)
    assert frame.groupby("task").size().to_dict() == {"a": 9, "b": 3}
    judged = results.verdict(root)
    assert set(judged.task) == {"a", "b"}
    assert judged.groupby("task").size().to_dict() == {"a": 3, "b": 1}


def verdict_table(report_md: str) -> dict[str, tuple]:
    """The rows of report.md's verdict table, read by its header: strategy -> (seeds, acc, low,
    high, to best, within, word)."""
    section = report_md.split("## Verdict", 1)[1].splitlines()
    start = next(i for i, line in enumerate(section) if line.startswith("|"))
    lines = list(itertools.takewhile(lambda line: line.startswith("|"), section[start:]))
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    found = {}
    for line in lines[2:]:
        cell = dict(zip(header, (c.strip() for c in line.strip("|").split("|"))))
        acc = re.match(r"([0-9.]+) \[([0-9.]+), ([0-9.]+)\]", cell["test acc (interval)"])
        to_best = re.match(r"([+-][0-9.]+)", cell["difference to the best (bounds)"])
        within = None if cell["within (points)"] in ("", "—", "-") else float(cell["within (points)"])
        found[cell["strategy"]] = (int(cell["seeds"]), float(acc[1]), float(acc[2]), float(acc[3]),
                                   float(to_best[1]), within, re.match(r"\*\*(\w+)\*\*", cell["verdict"])[1])
    return found


@pytest.mark.parametrize("margin", [None, 0.2])
@pytest.mark.slow  # over a second or two: make test runs it, make test-fast leaves it out
def test_verdict_is_the_reports_verdict_table(sweep, margin):
    write_report(sweep, choice={"margin": margin})
    expected = verdict_table((sweep / "report.md").read_text())
    csv_means = {row["strategy"]: float(row["test_acc_mean"])
                 for row in csv.DictReader((sweep / "report.csv").open())}

    frame = results.verdict(sweep, margin=margin)

    assert list(frame.strategy) == list(expected)  # best first, as the report orders them
    for row in frame.itertuples():
        seeds, acc, low, high, to_best, within, word = expected[row.strategy]
        assert (row.seeds, row.verdict) == (seeds, word)
        shown_within = None if pd.isna(row.within) else round(100 * row.within, 1)
        assert shown_within == within
        for got, shown in ((row.test_acc, acc), (row.test_acc_low, low), (row.test_acc_high, high),
                           (row.to_best, to_best)):
            assert f"{got:.4f}" == f"{shown:.4f}"
        assert row.test_acc == pytest.approx(csv_means[row.strategy])
    pick = re.search(r"\*\*Recommendation: (\S+)\*\*", (sweep / "report.md").read_text())
    assert list(frame[frame.recommended].strategy) == ([pick[1]] if pick else [])
    if margin is not None:
        assert set(frame.margin) == {margin}


def tuned_records(template: dict) -> list[dict]:
    """A tuned comparison's records: two search trials and the final runs of each strategy, and
    a final run of ``full`` that diverged."""
    runs = tuned_sweep(template, {"full": [0.80, 0.82, 0.81], "linear_probe": [0.70, 0.71, 0.72]})
    runs.append({"status": "diverged", "error": "diverged: the training loss is nan", "strategy": "full",
                 "seed": 4, "config": {**template["config"], "tune": {"phase": "tuned", "job": "seed4"}}})
    return runs


def test_a_tuned_sweep_is_judged_on_its_tuned_runs_as_the_report_judges_it(tmp_path, template):
    write_runs(tmp_path, tuned_records(template))
    write_report(tmp_path)
    expected = verdict_table((tmp_path / "report.md").read_text())

    frame = results.verdict(tmp_path)
    runs = results.runs(tmp_path)

    assert {s: (r.seeds, r.verdict) for s, r in frame.set_index("strategy").iterrows()} == \
        {s: (v[0], v[-1]) for s, v in expected.items()}
    assert frame.set_index("strategy").loc["full", ["unstable", "failed"]].tolist() == [True, 1]
    assert runs.groupby("phase").size().to_dict() == {"default": 6, "search": 4, "tuned": 7}
    assert runs.loc[runs.status == "diverged", "strategy"].tolist() == ["full"]


def test_hostile_entries_are_listed_unreadable_and_never_read(sweep):
    (sweep / "devzero").mkdir()
    (sweep / "devzero" / "result.json").symlink_to("/dev/zero")
    (sweep / "garbage").mkdir()
    (sweep / "garbage" / "result.json").write_text("{not json")
    (sweep / "interpolation").mkdir()
    write_json(sweep / "interpolation" / "result.json",
               {"status": "completed", "strategy": "${oc.env:HOME}", "metrics": {"test_acc": "${oc.env:X}"}})
    before = results.verdict(sweep.parent / "sweep")

    frame = results.runs(sweep)

    odd = frame[frame.dir.isin(["devzero", "garbage"])]
    assert set(odd.status) == {"unreadable"} and odd.test_acc.isna().all()
    assert all(str(e).startswith("unreadable result.json") for e in odd.error)
    assert frame.loc[frame.dir == "interpolation", "strategy"].item() == "${oc.env:HOME}"
    assert math.isnan(frame.loc[frame.dir == "interpolation", "test_acc"].item())
    assert len(frame[frame.status == "completed"]) == 9  # the sweep's own runs, untouched
    after = results.verdict(sweep)
    assert after.drop(columns="failed").equals(before.drop(columns="failed"))


def test_a_missing_folder_is_one_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        results.runs(tmp_path / "nowhere")


def tiny_storage(path) -> None:
    url = f"sqlite:///{path}"
    for strategy, scale in (("full", 1.0), ("linear_probe", 0.5)):
        study = optuna.create_study(study_name=f"search-{strategy}", storage=url, direction="maximize")

        def objective(trial, scale=scale):
            lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
            trial.set_user_attr("train_flops", 1e9 * scale)
            trial.set_user_attr("wall_seconds", 2.0 * scale)
            return scale * (1 - abs(math.log10(lr) + 2) / 3)

        study.optimize(objective, n_trials=3)


def test_trials_reads_every_study_of_the_storage_and_changes_nothing(tmp_path):
    sweep = tmp_path / "tuned"
    sweep.mkdir()
    tiny_storage(sweep / "optuna.db")
    before = (sweep / "optuna.db").read_bytes()

    frame = results.trials(sweep)

    assert frame.groupby("study").size().to_dict() == {"search-full": 3, "search-linear_probe": 3}
    for column in ("task", "number", "value", "state", "params_lr", "user_attrs_train_flops",
                   "user_attrs_wall_seconds"):
        assert column in frame.columns, column
    assert set(frame[frame.study == "search-linear_probe"].user_attrs_train_flops) == {5e8}
    assert (sweep / "optuna.db").read_bytes() == before


def test_trials_skips_a_linked_or_foreign_storage(tmp_path):
    real = tmp_path / "elsewhere.db"
    tiny_storage(real)
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "optuna.db").symlink_to(real)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "optuna.db").write_text("not a database")

    assert results.trials(linked).empty and results.trials(foreign).empty
    assert (foreign / "optuna.db").read_text() == "not a database"
    assert results.trials(tmp_path / "foreign").columns.tolist() == ["task", "study"]


def test_a_database_without_studies_is_named_in_one_error(tmp_path):
    connection = sqlite3.connect(tmp_path / "optuna.db")
    connection.execute("create table notes (text)")
    connection.commit()
    connection.close()

    with pytest.raises(ValueError, match=r"optuna.db: not a readable Optuna storage \(.*no such table"):
        results.trials(tmp_path)


@pytest.mark.slow
def test_reading_results_imports_no_torch(sweep):
    code = ("import sys, ftbench.results as r; r.runs(sys.argv[1]); r.verdict(sys.argv[1]); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    done = subprocess.run([sys.executable, "-c", code, str(sweep)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.returncode == 0, done.stderr
