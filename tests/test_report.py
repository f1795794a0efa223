"""The comparison report: table, interval over seeds, failed runs, plots, studies, CLI."""

from __future__ import annotations

import copy
import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from ftbench.config import CONFIG_DIR
from ftbench.report import write_report
from ftbench.report.cli import main as report_main
from ftbench.report.rows import show
from ftbench.run_io import write_json
from ftbench.train import fit
from tests.helpers import FAST, make_cfg

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> dict:
    """One real result.json (gradual, so the history has several LR phases) to vary."""
    run_dir = tmp_path_factory.mktemp("template")
    cfg = make_cfg(*FAST, "strategy=gradual", "trainer.max_epochs=3", run_dir=run_dir)
    return fit(cfg, run_dir)


def fake_run(template: dict, strategy: str, seed: int, test_acc: float, flops: float, **config) -> dict:
    """The template with another strategy, seed and outcome: report input, not a measurement."""
    run = copy.deepcopy(template)
    run.update(strategy=strategy, seed=seed)
    run["metrics"]["test_acc"] = test_acc
    run["cost"]["train_flops"] = flops
    run["config"]["strategy"]["name"] = strategy
    run["config"]["seed"] = seed
    for dotted, value in config.items():
        section, key = dotted.split("__")
        run["config"][section][key] = value
    return run


def write_runs(root: Path, runs: list[dict]) -> None:
    for i, run in enumerate(runs):
        write_json(root / f"{i}_{run['strategy']}_seed{run['seed']}" / "result.json", run)


def read_csv(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def test_report_has_a_row_per_strategy_with_a_t_interval_and_lists_failed_runs(tmp_path, template):
    runs = [fake_run(template, "discriminative", s, acc, 3e9) for s, acc in enumerate([0.5, 0.7])]
    runs += [fake_run(template, "linear_probe", s, acc, 1e9) for s, acc in enumerate([0.4, 0.4, 0.7])]
    write_runs(tmp_path, runs)
    # a job that failed and said so, and one killed before it wrote anything
    write_json(tmp_path / "5_gradual_seed0" / "result.json",
               {"status": "failed", "error": "RuntimeError: boom", "strategy": "gradual", "seed": 0})
    killed = tmp_path / "6_gradual_seed1" / ".hydra"
    killed.mkdir(parents=True)
    (killed / "config.yaml").write_text("seed: 1\nstrategy:\n  name: gradual\n")

    paths = write_report(tmp_path)

    rows = {r["strategy"]: r for r in read_csv(tmp_path / "report.csv")}
    assert list(rows) == ["linear_probe", "discriminative", "gradual"]  # the strategies' own order
    assert float(rows["discriminative"]["test_acc_mean"]) == pytest.approx(0.6)
    # Student t, 1 degree of freedom: 12.706 * stdev / sqrt(2)
    ci = float(rows["discriminative"]["test_acc_ci95"])
    assert ci == pytest.approx(12.7062 * 0.141421 / 2**0.5, rel=1e-4)
    assert float(rows["linear_probe"]["test_acc_ci95"]) == pytest.approx(4.3027 * 0.173205 / 3**0.5,
                                                                          rel=1e-4)
    assert rows["gradual"]["runs"] == "0" and rows["gradual"]["failed"] == "2"
    assert float(rows["linear_probe"]["train_flops"]) == 1e9
    md = (tmp_path / "report.md").read_text()
    assert "| failed | gradual | 0 | RuntimeError: boom | 5_gradual_seed0 |" in md
    assert "| failed | gradual | 1 | no result.json (the job crashed or was killed) | 6_gradual_seed1 |" in md
    assert "0.6000 ± 1.2706" in md
    for name in ("accuracy_vs_flops", "accuracy_vs_time", "learning_curves", "group_lrs", "drift"):
        png = tmp_path / "plots" / f"{name}.png"
        assert png.read_bytes()[:8] == PNG_MAGIC and f"plots/{name}.png" in md
    assert paths["report.md"] == tmp_path / "report.md"


def test_studies_split_rows_by_their_setting_and_add_their_plot(tmp_path, template):
    decay = tmp_path / "lr_decay"
    write_runs(decay, [fake_run(template, "discriminative", s, 0.5 + d / 10, 3e9, strategy__lr_decay=d)
                       for d in (1, 2, 4) for s in (0, 1)])
    write_report(decay)
    rows = read_csv(decay / "report.csv")
    assert [r["setting"] for r in rows] == ["lr_decay=1", "lr_decay=2", "lr_decay=4"]
    assert (decay / "plots" / "accuracy_vs_lr_decay.png").is_file()
    assert "plots/accuracy_vs_lr_decay.png" in (decay / "report.md").read_text()

    size = tmp_path / "data_size"
    runs = []
    for frac in (0.05, 1.0):
        for strategy in ("linear_probe", "full"):
            run = fake_run(template, strategy, 0, frac / 2, 1e9, dataset__train_fraction=frac)
            run["data"]["train_size"] = round(1257 * frac)
            runs.append(run)
    write_runs(size, runs)
    write_report(size)
    settings = [(r["strategy"], r["setting"]) for r in read_csv(size / "report.csv")]
    assert settings == [("linear_probe", "train_fraction=0.05"), ("linear_probe", "train_fraction=1.0"),
                        ("full", "train_fraction=0.05"), ("full", "train_fraction=1.0")]
    assert "plots/accuracy_vs_train_size.png" in (size / "report.md").read_text()
    assert not (size / "plots" / "accuracy_vs_lr_decay.png").exists()


def test_the_surgical_study_plots_accuracy_by_the_group_that_trained(tmp_path, template):
    names = [g["name"] for g in template["groups"]]
    settings = [[], *[[n] for n in names[:-1]], "all"]
    write_runs(tmp_path, [fake_run(template, "surgical", s, 0.5 + i / 100, 1e9, strategy__groups=groups)
                          for i, groups in enumerate(settings) for s in (0, 1)])
    write_report(tmp_path)
    rows = read_csv(tmp_path / "report.csv")
    assert [r["setting"] for r in rows] == [f"groups={show(g)}" for g in settings]  # stem to top
    assert rows[1]["setting"] == f"groups=[{names[0]}]"
    assert (tmp_path / "plots" / "accuracy_by_trained_group.png").read_bytes()[:8] == PNG_MAGIC
    assert "plots/accuracy_by_trained_group.png" in (tmp_path / "report.md").read_text()


@pytest.mark.parametrize("experiment, swept", [
    ("compare", {"strategy": "linear_probe,full,discriminative,gradual,partial,lp_ft,surgical,bitfit,lora",
                 "seed": "0,1,2"}),
    ("surgical", {"strategy.groups": "[],[stem],[stage1],[stage2],[stage3],[stage4],[stage5],[stage6],"
                                     "[stage7],all", "seed": "0,1,2"}),
    ("data_size", {"dataset.train_fraction": "0.05,0.2,1.0", "seed": "0,1,2"}),
    ("lr_decay", {"strategy.lr_decay": "1,1.5,2,2.6,4", "seed": "0,1,2"}),
])
def test_experiments_sweep_what_their_study_needs(experiment, swept):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"experiment={experiment}"],
                      return_hydra_config=True)
    params = cfg.hydra.sweeper.params
    for key, value in swept.items():
        assert str(params[key]) == value
    assert cfg.hydra.callbacks.report._target_ == "ftbench.report.callback.WriteReport"
    if experiment == "lr_decay":
        assert cfg.strategy.name == "discriminative"
    if experiment == "surgical":
        assert cfg.strategy.name == "surgical"


def test_the_surgical_study_sweeps_the_groups_of_the_model_it_runs_on():
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=["experiment=surgical", "model.name=test_vit"],
                      return_hydra_config=True)
    assert str(cfg.hydra.sweeper.params["strategy.groups"]) == \
        "[],[stem],[stage1],[stage2],[stage3],[stage4],[stage5],[stage6],all"


@pytest.mark.slow
def test_a_multirun_with_a_failed_job_still_reports_it(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "ftbench.train", "-m", f"hydra.sweep.dir={sweep}",
           "hydra.sweep.subdir=job${hydra.job.num}",
           "strategy=linear_probe", "optimizer.min_lr_factor=0.01,oops", *FAST]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert (sweep / "job0" / "result.json").is_file(), proc.stderr[-2000:]
    rows = read_csv(sweep / "report.csv")
    assert [(r["strategy"], r["runs"], r["failed"]) for r in rows] == [("linear_probe", "1", "1")]
    md = (sweep / "report.md").read_text()
    (failed_line,) = [line for line in md.splitlines() if line.startswith("| failed |")]
    assert failed_line.startswith("| failed | linear_probe | 0 |") and failed_line.endswith("| job1 |")
    assert (sweep / "plots" / "accuracy_vs_flops.png").is_file()
    record = json.loads((sweep / "job1" / "result.json").read_text())
    assert record["status"] == "failed" and "metrics" not in record
    assert record["config"]["optimizer"]["min_lr_factor"] == "oops"

    # the report is rebuilt from the result.json files alone
    (sweep / "report.md").unlink()
    assert report_main([str(sweep)]) == 0
    out = capsys.readouterr().out
    assert "| linear_probe | 1 | 1 |" in out and str(sweep / "report.md") in out
    assert (sweep / "report.md").is_file()


@pytest.mark.slow
def test_experiment_surgical_runs_each_group_of_its_model_and_draws_its_plot(tmp_path):
    sweep = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "ftbench.train", "-m", "experiment=surgical", "seed=0,1",
           f"hydra.sweep.dir={sweep}", *FAST, "trainer.max_epochs=1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = read_csv(sweep / "report.csv")
    groups = ["stem", *(f"stage{i}" for i in range(1, 6))]  # test_efficientnet's, from FAST
    assert [r["setting"] for r in rows] == ["groups=[]", *(f"groups=[{g}]" for g in groups), "groups=all"]
    assert all(r["runs"] == "2" and r["failed"] == "0" for r in rows)
    assert (sweep / "1_none_seed1" / "result.json").is_file() and (sweep / "15_all_seed1").is_dir()
    assert (sweep / "plots" / "accuracy_by_trained_group.png").read_bytes()[:8] == PNG_MAGIC


def test_report_cli_rejects_a_folder_without_runs(tmp_path, capsys):
    assert report_main([str(tmp_path)]) == 2
    assert "no result.json" in capsys.readouterr().err
    assert not (tmp_path / "report.md").exists()
