"""A suite records what its jobs ran with, checks its data first, counts a task without a result,
fails when one has none, honours every report setting, and re-reports at a new margin."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ftbench.report.cli import main as report
from ftbench.report.outcomes import by_seed_means
from ftbench.report.suite_report import write_suite_report
from ftbench.run.atomic import write_json
from tests.helpers import fake_run, image_folder

STRATEGIES = ["full", "linear_probe"]


def hand_suite(root: Path, template: dict, tasks: dict[str, dict[str, float]]) -> Path:
    """``suite.yaml`` as a suite writes it, and each task's runs (three seeds); a task given no
    means has a folder and no completed run."""
    root.mkdir(parents=True)
    (root / "suite.yaml").write_text(yaml.safe_dump({
        "name": "hand", "protocol": "compare", "model": "test_efficientnet", "seeds": [0, 1, 2],
        "strategies": STRATEGIES, "margin": 0.01, "arguments": [],
        "tasks": [{"name": t, "dataset": "digits", "source": t, "overrides": []} for t in tasks]}))
    for task, means in tasks.items():
        (root / task).mkdir()
        for strategy, mean in means.items():
            for seed in range(3):
                write_json(root / task / f"{strategy}_seed{seed}" / "result.json",
                           fake_run(template, strategy, seed, mean + 0.001 * seed, 1e9))
    return root


def test_a_task_without_a_result_counts_in_the_denominator(tmp_path, template):
    root = hand_suite(tmp_path / "suite", template, {"t1": {"full": 0.9, "linear_probe": 0.7},
                                                    "t2": {"full": 0.8, "linear_probe": 0.6}, "t3": {}})
    _, paths = write_suite_report(root, classify=by_seed_means)  # these runs kept no predictions
    text = paths["report.md"].read_text()
    assert "2 of 3 (67%; no result on t3)" in text
    assert "| full |" in text and "| 1 | 2 of 3 (67%) |" in text  # the no result column, then the share


@pytest.mark.parametrize("option", [["--resamples", "0"], ["--confidence", "0.2"], ["--margin", "nan"]])
def test_a_suite_report_refuses_every_setting_a_task_report_refuses(tmp_path, template, capsys, option):
    root = hand_suite(tmp_path / "suite", template, {"t1": {"full": 0.9, "linear_probe": 0.7}})
    assert report([str(root), "--resamples", "500", "--confidence", "0.9"]) == 0
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert report([str(root), *option]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{option[0][2:]}=" in err[0] and "allowed:" in err[0]
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before


def user_suite(tmp_path: Path, tasks: dict[str, dict]) -> list[str]:
    conf = tmp_path / "conf" / "benchmark"
    conf.mkdir(parents=True)
    (conf / "mine.yaml").write_text(yaml.safe_dump({
        "name": "mine", "protocol": "compare", "seeds": [1], "strategies": ["linear_probe"],
        "overrides": {"eval.shifts": []},
        "tasks": [{"name": name, "dataset": "imagefolder", "overrides": overrides}
                  for name, overrides in tasks.items()]}))
    return ["-m", "experiment=benchmark", "benchmark=mine", f"hydra.searchpath=[file://{tmp_path / 'conf'}]",
            f"hydra.sweep.dir={tmp_path / 'suite'}", "model.weights=none", "dataset.image_size=32",
            "trainer.max_epochs=1"]


def test_a_tasks_missing_data_stops_the_suite_before_anything_runs(tmp_path, cli):
    good = image_folder(tmp_path / "data" / "a", classes=("x", "y"), per_class=6)
    code, err = cli(*user_suite(tmp_path, {"a": {"dataset.root": str(good)},
                                           "b": {"dataset.root": str(tmp_path / "nowhere")}}))
    assert code != 0 and len(err.strip().splitlines()) == 1
    assert f"benchmark task 'b': dataset.root='{tmp_path / 'nowhere'}': no such folder" in err
    assert not (tmp_path / "suite" / "suite.yaml").exists() and not list(tmp_path.rglob("result.json"))


@pytest.mark.slow  # a suite of two tiny tasks, then the same suite at another margin
def test_a_suite_records_its_jobs_model_fails_without_a_result_and_reports_again_at_a_margin(tmp_path):
    a = image_folder(tmp_path / "data" / "a", classes=("x", "y", "z"), per_class=8)
    command = [sys.executable, "-m", "ftbench.train", *user_suite(tmp_path, {
        "a": {"dataset.root": str(a), "model.name": "test_resnet"},
        "b": {"dataset.root": str(a), "model.name": "test_resnet",
              "+callbacks.crash._target_": "tests.helpers.CrashAtEpoch", "+callbacks.crash.epoch": 0}})]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    suite = tmp_path / "suite"
    assert first.returncode != 0 and "b: no job completed (no result)" in first.stderr, first.stderr[-2000:]
    record = yaml.safe_load((suite / "suite.yaml").read_text())
    assert record["model"] == "test_resnet"  # what the jobs ran, not the default
    assert "model.name=test_resnet" in record["tasks"][0]["job_overrides"]
    text = (suite / "report.md").read_text()  # one seed: no task decides, and b counts as no result
    assert "1 of 2 (50%; no result on b)" in text or "Tasks: 2; no result on b." in text
    results = {p: p.read_bytes() for p in sorted((suite / "a").rglob("result.json"))}  # b's failed: run again

    again = subprocess.run([*command, "++report.margin=0.02"], capture_output=True, text=True, timeout=600,
                           env=env)
    assert "other settings" not in again.stderr  # a new margin is a new report, not a new suite
    assert {p: p.read_bytes() for p in sorted((suite / "a").rglob("result.json"))} == results
    assert yaml.safe_load((suite / "suite.yaml").read_text())["margin"] == 0.02
    assert "at a margin of 0.02" in (suite / "report.md").read_text()
    assert "Margin 0.0200" in (suite / "a" / "report.md").read_text()
