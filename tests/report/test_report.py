"""The comparison report: table, interval over seeds, failed runs, plots, studies, CLI."""

from __future__ import annotations

import copy
import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from ftbench.config import CONFIG_DIR
from ftbench.report import write_report
from ftbench.report.cli import main as report_main
from ftbench.report.intervals import BOOTSTRAP, SEEDS_ONLY
from ftbench.report.rows import show
from ftbench.run.atomic import write_json
from tests.helpers import FAST, PNG_MAGIC, fake_run, make_cfg, write_runs


def read_csv(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def test_report_has_a_row_per_strategy_with_its_interval_and_lists_failed_runs(tmp_path, template):
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
    # the runs kept their predictions: the interval resamples seeds and test examples
    assert {rows[s]["test_acc_interval"] for s in ("discriminative", "linear_probe")} == {BOOTSTRAP}
    low, high = float(rows["discriminative"]["test_acc_low"]), float(rows["discriminative"]["test_acc_high"])
    assert low < 0.6 < high
    assert rows["gradual"]["runs"] == "0" and rows["gradual"]["failed"] == "2"
    assert float(rows["linear_probe"]["train_flops"]) == 1e9
    memory = template["cost"]["train_memory_mb"]  # the memory column is the training's own
    assert memory > 0 and float(rows["linear_probe"]["train_memory_mb"]) == pytest.approx(memory)
    md = (tmp_path / "report.md").read_text()
    assert "| failed | gradual | 0 | RuntimeError: boom | 5_gradual_seed0 |" in md
    assert "| failed | gradual | 1 | no result.json (the job crashed or was killed) | 6_gradual_seed1 |" in md
    assert f"0.6000 [{low:.4f}, {high:.4f}] (n=2) †" in md and f"| {memory:.1f} MB |" in md
    # one vocabulary: the verdict, no t-test beside it, and the recommendation on top
    assert "## Which differences are real" not in md and "t-test" not in md
    assert md.index("ecommendation") < md.index("| strategy | runs |") < md.index("## Verdict")
    for name in ("accuracy_vs_flops", "accuracy_vs_time", "accuracy_vs_memory", "learning_curves",
                 "group_lrs", "drift"):
        png = tmp_path / "plots" / f"{name}.png"
        assert png.read_bytes()[:8] == PNG_MAGIC and f"plots/{name}.png" in md
    assert paths["report.md"] == tmp_path / "report.md"


def test_a_rows_interval_counts_the_test_set_even_where_the_seeds_agree(tmp_path, template):
    # three seeds at exactly 0.9 on 200 test images: no spread over seeds, but the test set's
    # own noise (about ±0.024 for the mean of three such runs) stays in the interval
    write_runs(tmp_path, [fake_run(template, "full", s, 0.9, 1e9) for s in range(3)], examples=200)
    write_report(tmp_path)
    (row,) = read_csv(tmp_path / "report.csv")
    low, high = float(row["test_acc_low"]), float(row["test_acc_high"])
    assert row["test_acc_interval"] == BOOTSTRAP and 0.035 < high - low < 0.065 and low < 0.9 < high
    # runs without predictions: Student's t over seeds, marked as leaving out the test set
    for found in tmp_path.rglob("predictions.npz"):
        found.unlink()
    write_report(tmp_path)
    (row,) = read_csv(tmp_path / "report.csv")
    assert row["test_acc_interval"] == SEEDS_ONLY and float(row["test_acc_low"]) == pytest.approx(0.9)
    assert "0.9000 [0.9000, 0.9000] (n=3) ‡" in (tmp_path / "report.md").read_text()


def test_the_shifted_interval_resamples_the_same_images_under_every_corruption(tmp_path, template):
    import numpy as np

    from ftbench.run.predictions import Predictions, read_predictions, write_predictions

    runs = [with_shift(fake_run(template, "full", s, 0.9, 1e9), 0.5, 0.7) for s in range(3)]
    write_runs(tmp_path, runs, examples=200)
    label = np.arange(200) % 10
    for i, folder in enumerate(sorted(tmp_path.glob("*_seed*"))):
        sets = read_predictions(folder / "predictions.npz")
        rng = np.random.default_rng(i)
        for key, acc in (("gaussian_noise:3", 0.5), ("jpeg:3", 0.7)):
            right = rng.permutation(200) < acc * 200
            sets[key] = Predictions(np.arange(200), label, np.where(right, label, (label + 1) % 10),
                                    np.where(right, 0.9, 0.1).astype(np.float32))
        write_predictions(folder / "predictions.npz", sets)
    write_report(tmp_path)
    (row,) = read_csv(tmp_path / "report.csv")
    low, high = float(row["shift_acc_low"]), float(row["shift_acc_high"])
    assert row["shift_acc_interval"] == BOOTSTRAP and low < 0.6 < high
    assert 0.02 < high - low < 0.1  # the seeds agree: the images' noise alone, not a zero width


def with_shift(run: dict, noise: float, jpeg: float) -> dict:
    """A fake run's accuracy on two corruptions (their mean) and on an OOD folder (not in it)."""
    run["metrics"]["shift"] = {"gaussian_noise:3": noise, "jpeg:3": jpeg, "ood_root": 0.1,
                               "mean": (noise + jpeg) / 2}
    return run


def test_report_shows_shifted_accuracy_its_drop_and_in_distribution_against_shift(tmp_path, template):
    runs = [with_shift(fake_run(template, "linear_probe", 0, 0.8, 1e9), 0.5, 0.7),
            with_shift(fake_run(template, "linear_probe", 1, 0.9, 1e9), 0.6, 0.8),
            with_shift(fake_run(template, "full", 0, 0.9, 3e9), 0.4, 0.6),
            with_shift(fake_run(template, "full", 1, 1.0, 3e9), 0.5, 0.7)]
    unshifted = fake_run(template, "gradual", 0, 0.7, 2e9)
    unshifted["metrics"]["shift"] = None  # a run tested under no shift: no figures, no error
    write_runs(tmp_path, [*runs, unshifted])
    paths = write_report(tmp_path)

    rows = {r["strategy"]: r for r in read_csv(tmp_path / "report.csv")}
    assert float(rows["linear_probe"]["shift_acc_mean"]) == pytest.approx(0.65)
    # no predictions on the shifted sets here: Student t over seeds, 1 degree of freedom
    assert rows["linear_probe"]["shift_acc_interval"] == SEEDS_ONLY
    assert float(rows["linear_probe"]["shift_acc_low"]) == pytest.approx(0.65 - 12.7062 * 0.070711 / 2**0.5,
                                                                         rel=1e-3)
    assert float(rows["linear_probe"]["shift_acc_high"]) == 1.0  # an accuracy's interval ends at 1
    assert float(rows["linear_probe"]["shift_drop"]) == pytest.approx(0.85 - 0.65)
    assert float(rows["full"]["shift_drop"]) == pytest.approx(0.95 - 0.55)
    assert float(rows["full"]["shift_jpeg:3"]) == pytest.approx(0.65)
    assert float(rows["full"]["shift_ood_root"]) == pytest.approx(0.1)
    assert rows["gradual"]["shift_acc_mean"] == "" and rows["gradual"]["shift_drop"] == ""
    md = (tmp_path / "report.md").read_text()
    assert "| shifted acc (interval) | drop |" in md
    assert "| strategy | in-distribution | gaussian_noise:3 | jpeg:3 | ood_root | mean |" in md
    assert "| full | 0.9500 | 0.4500 | 0.6500 | 0.1000 | 0.5500 |" in md
    png = paths["Accuracy under shift"]
    assert png == tmp_path / "plots" / "accuracy_under_shift.png"
    assert png.read_bytes()[:8] == PNG_MAGIC and "plots/accuracy_under_shift.png" in md


def test_the_line_of_equal_robustness_keeps_the_pooled_share_of_accuracy(tmp_path, template):
    from ftbench.report import collect
    from ftbench.report.rows import group_rows
    from ftbench.report.shift_plot import pooled_shift_ratio

    write_runs(tmp_path, [with_shift(fake_run(template, "linear_probe", 0, 0.8, 1e9), 0.5, 0.7),
                          with_shift(fake_run(template, "full", 0, 1.0, 3e9), 0.4, 0.6)])
    assert pooled_shift_ratio(group_rows(collect(tmp_path))) == pytest.approx((0.6 + 0.5) / 1.8)


def test_without_shifted_results_the_report_says_so_and_draws_no_shift_plot(tmp_path, template):
    run = fake_run(template, "full", 0, 0.9, 3e9)
    run["metrics"]["shift"] = None  # eval.shifts=[]
    write_runs(tmp_path, [run])
    paths = write_report(tmp_path)
    assert "Accuracy under shift" not in paths
    assert "No run was tested under shift" in (tmp_path / "report.md").read_text()


@pytest.mark.slow  # over a few seconds: make test runs it, make test-fast leaves it out
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


@pytest.mark.slow  # over a second or two: make test runs it, make test-fast leaves it out
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


@pytest.mark.parametrize("experiment, setting, strategy", [
    ("compare", "strategy", None), ("surgical", "strategy.groups", "surgical"),
    ("data_size", "dataset.train_fraction", None), ("lr_decay", "strategy.lr_decay", "discriminative"),
])
@pytest.mark.slow  # over a second or two: make test runs it, make test-fast leaves it out
def test_every_job_an_experiment_sweeps_is_a_valid_run_and_the_sweep_ends_in_the_report(tmp_path, experiment,
                                                                                      setting, strategy):
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.utils import get_class

    from ftbench.config import validate_config
    from ftbench.finetune.strategies import STRATEGIES
    from ftbench.report.callback import WriteReport

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"experiment={experiment}"],
                      return_hydra_config=True)
        sweeps = OverridesParser.create().parse_overrides(
            [f"{key}={value}" for key, value in cfg.hydra.sweeper.params.items()])
    swept = {o.key_or_group: list(o.sweep_string_iterator()) for o in sweeps}
    for key, values in swept.items():
        for value in values:  # each value a job gets, with the experiment's other settings
            job = make_cfg(f"experiment={experiment}", f"{key}={value}", run_dir=tmp_path)
            validate_config(job)
            assert job.strategy.name == (value if key == "strategy" else strategy or job.strategy.name)
    assert {setting, "seed"} <= set(swept) and len(swept[setting]) >= 3 and len(swept["seed"]) >= 3
    if experiment == "compare":
        assert swept["strategy"] == list(STRATEGIES)
    assert get_class(cfg.hydra.callbacks.report._target_) is WriteReport


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


def test_every_interval_shows_its_n_and_fewer_than_three_seeds_are_flagged(tmp_path, template):
    runs = [fake_run(template, "full", s, acc, 3e9) for s, acc in enumerate([0.80, 0.84])]
    runs += [fake_run(template, "discriminative", s, acc, 3e9) for s, acc in enumerate([0.86, 0.88, 0.90])]
    runs += [fake_run(template, "linear_probe", 0, 0.5, 1e9)]
    write_runs(tmp_path, runs)
    write_report(tmp_path)
    md = (tmp_path / "report.md").read_text()
    interval = r"\[0\.\d{4}, [01]\.\d{4}\]"
    assert re.search(rf"\| full \| 2 \| 0 \| 0\.8200 {interval} \(n=2\) † \|", md)
    assert re.search(rf"\| discriminative \| 3 \| 0 \| 0\.8800 {interval} \(n=3\) \|", md)
    # one seed: no seed spread to measure, but the test set's noise is still an interval
    assert re.search(rf"\| linear_probe \| 1 \| 0 \| 0\.5000 {interval} \(n=1\) † \|", md)
    assert "† fewer than 3 seeds" in md
    # one seed: no word in the verdict, and the row says why
    verdict = md[md.index("## Verdict"):]
    row = next(line for line in verdict.splitlines() if line.startswith("| linear_probe |"))
    assert "**undecided**, too few seeds" in row and "n/a" in row
    rows = {r["strategy"]: r for r in read_csv(tmp_path / "report.csv")}
    assert (rows["full"]["test_acc_n"], rows["full"]["few_seeds"]) == ("2", "True")
    assert (rows["discriminative"]["test_acc_n"], rows["discriminative"]["few_seeds"]) == ("3", "False")


@pytest.mark.slow  # over a second or two: make test runs it, make test-fast leaves it out
def test_runs_that_differ_in_any_setting_are_not_seeds_of_one_row(tmp_path, template):
    # an AdamW run at lr_decay 1.6 and an SGD run at 2.6: two rows, and no lr_decay line between them
    mixed = [fake_run(template, "discriminative", s, 0.8, 3e9, strategy__lr_decay=1.6,
                      optimizer__name="adamw") for s in (0, 1)]
    mixed += [fake_run(template, "discriminative", s, 0.6, 3e9, strategy__lr_decay=2.6,
                       optimizer__name="sgd") for s in (0, 1)]
    # a setting no study names (the batch size) splits rows too; the logger's does not
    for s in (0, 1):
        run = fake_run(template, "full", s, 0.7, 3e9, data__batch_size=16 if s else 32)
        run["config"]["logger"]["name"] = f"full-seed{s}"
        mixed.append(run)
    write_runs(tmp_path, mixed)
    paths = write_report(tmp_path)
    rows = [(r["strategy"], r["setting"], r["runs"]) for r in read_csv(tmp_path / "report.csv")]
    # settings outside the strategy split every row they differ in, across strategies
    assert rows == [("full", "optimizer=adamw data.batch_size=16", "1"),
                    ("full", "optimizer=adamw data.batch_size=32", "1"),
                    ("discriminative", "lr_decay=1.6 optimizer=adamw data.batch_size=64", "2"),
                    ("discriminative", "lr_decay=2.6 optimizer=sgd data.batch_size=64", "2")]
    assert "Accuracy against lr_decay" not in paths
    assert not (tmp_path / "plots" / "accuracy_vs_lr_decay.png").exists()
    md = (tmp_path / "report.md").read_text()
    assert "differ between rows: optimizer, data.batch_size, lr_decay." in md
    assert "lr_decay is not drawn against accuracy: it never varies alone, it changes together with " \
           "optimizer" in md


def test_a_study_axis_is_drawn_where_it_varies_alone(tmp_path, template):
    runs = [fake_run(template, "discriminative", 0, 0.5 + d / 10, 3e9, strategy__lr_decay=d,
                     optimizer__name=name) for d in (1, 2) for name in ("adamw", "sgd")]
    write_runs(tmp_path, runs)
    paths = write_report(tmp_path)
    assert paths["Accuracy against lr_decay"].is_file()
    assert "points are joined only where nothing else differs" in (tmp_path / "report.md").read_text()


def test_the_marginal_view_prices_each_extra_point_over_the_cheapest_strategy(tmp_path, template):
    runs = []
    for s in (0, 1, 2):
        runs.append(fake_run(template, "linear_probe", s, 0.80, 1e12))
        runs.append(fake_run(template, "full", s, 0.90, 11e12))
        runs.append(fake_run(template, "gradual", s, 0.78, 5e12))
        for run, seconds in zip(runs[-3:], (10.0, 60.0, 30.0)):
            run["cost"]["train_seconds"] = seconds
    write_runs(tmp_path, runs)
    write_report(tmp_path)
    rows = {r["strategy"]: r for r in read_csv(tmp_path / "report.csv")}
    assert float(rows["full"]["extra_tflops_per_point"]) == pytest.approx(10 / 10)  # 10 TFLOP, 10 points
    assert float(rows["full"]["extra_seconds_per_point"]) == pytest.approx(50 / 10)
    assert rows["linear_probe"]["extra_tflops_per_point"] == ""  # the cheapest
    assert rows["gradual"]["extra_tflops_per_point"] == ""  # dearer and no better: no gain
    md = (tmp_path / "report.md").read_text()
    assert "| full | linear_probe | +10.00 | 10 TFLOP | +50.0 s | 1 TFLOP | 5.00 s |" in md
    assert "| gradual | linear_probe | -2.00 | 4 TFLOP | +20.0 s | no gain | no gain |" in md


def test_a_single_run_reports_accuracy_per_class_and_its_confusion_matrix(tmp_path, template):
    write_runs(tmp_path, [template])
    paths = write_report(tmp_path)
    assert paths["Test confusion matrix"].read_bytes()[:8] == PNG_MAGIC
    md = (tmp_path / "report.md").read_text()
    per_class = template["metrics"]["per_class_test_acc"]
    worst = min((v, k) for k, v in per_class.items() if v is not None)
    table = md[md.index("## Per-class test accuracy"):]
    first = [line for line in table.splitlines() if line.startswith("| ") and "class" not in line][0]
    assert first == f"| {worst[1]} | {worst[0]:.3f} |"


def test_the_report_says_how_probes_met_augmentation(tmp_path, template):
    cached = fake_run(template, "gradual", 0, 0.8, 1e9)  # the template starts head-only
    cached["data"]["augmented"] = True
    cached["cost"]["feature_cache"] = {"used": True}
    uncached = fake_run(template, "gradual", 1, 0.8, 1e9, data__cache_features=False)
    uncached["data"]["augmented"] = True
    uncached["cost"]["feature_cache"] = {"used": False}
    write_runs(tmp_path, [cached, uncached])
    write_report(tmp_path)
    md = (tmp_path / "report.md").read_text()
    assert "trained on cached features of the deterministic (evaluation) transform" in md
    assert "⚠ gradual data.cache_features=False: head-only epochs ran uncached with augmentation" in md


def test_malformed_jobs_are_listed_as_unreadable_with_the_reason(tmp_path, template, capsys):
    runs = [fake_run(template, "full", s, acc, 1e9) for s, acc in enumerate([0.6, 0.8])]
    write_runs(tmp_path, runs)
    broken = {
        "metrics is null, not an object": {**copy.deepcopy(template), "metrics": None},
        "not a JSON object": [1, 2],
        "config is str, not an object": {**copy.deepcopy(template), "config": "oops"},
        "history is dict, not a list": {**copy.deepcopy(template), "history": {"0": 1}},
        "metrics.test_acc is '0.9', not a number": fake_run(template, "full", 7, "0.9", 1e9),
    }
    for i, data in enumerate(broken.values()):
        (tmp_path / f"bad{i}").mkdir()
        (tmp_path / f"bad{i}" / "result.json").write_text(json.dumps(data))
    nan = fake_run(template, "full", 8, 0.5, 1e9)
    (tmp_path / "bad_nan").mkdir()
    nan["metrics"]["test_acc"] = float("nan")  # json.dumps writes NaN, which JSON does not allow
    (tmp_path / "bad_nan" / "result.json").write_text(json.dumps(nan))
    for name, text in (("bad_yaml", "a: [1, 2\nb: {"), ("yaml_list", "- 1\n- 2\n")):
        (tmp_path / name / ".hydra").mkdir(parents=True)
        (tmp_path / name / ".hydra" / "config.yaml").write_text(text)

    assert report_main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"\| full \| 2 \| 2 \| 0\.7000 \[0\.\d{4}, 1\.0000\] \(n=2\) † \|", out)  # the good runs
    for i, reason in enumerate(broken):
        assert f"| unreadable result.json: {reason} | bad{i} |" in out, reason
    assert "| unreadable result.json: metrics.test_acc is nan, not a number | bad_nan |" in out
    for name in ("bad_yaml", "yaml_list"):
        assert f"| no result.json (the job crashed or was killed) | {name} |" in out
    assert (tmp_path / "report.md").is_file()


def test_a_search_trial_is_read_by_its_validation_accuracy_a_final_run_by_its_test_accuracy():
    from ftbench.run.result import problem

    search = {"status": "completed", "config": {"tune": {"phase": "search"}},
              "metrics": {"val_acc": 0.9, "test_acc": None}}
    assert problem(search) is None  # never tested: the search looks at validation only
    assert problem({**search, "metrics": {"val_acc": None}}) == "metrics.val_acc is None, not a number"
    final = {**search, "config": {"tune": {"phase": "tuned"}}}
    assert problem(final) == "metrics.test_acc is None, not a number"


@pytest.mark.slow  # over a second or two: make test runs it, make test-fast leaves it out
def test_the_report_says_when_the_runs_compared_mixed_thread_counts(tmp_path, template):
    runs = [fake_run(template, strategy, s, 0.8, 3e9) for strategy in ("full", "linear_probe")
            for s in (0, 1)]
    for run in runs:
        run["runtime"] = {"torch_threads": 1, "threads": "auto", "cores": 2, "workers": 2}
    write_runs(tmp_path / "same", runs)
    write_report(tmp_path / "same")
    assert "thread counts" not in (tmp_path / "same" / "report.md").read_text()

    runs[0]["runtime"]["torch_threads"] = 2  # one run started alone on the machine
    write_runs(tmp_path / "mixed", runs)
    write_report(tmp_path / "mixed")
    md = (tmp_path / "mixed" / "report.md").read_text()
    assert "⚠ These runs trained at different torch thread counts: 1 (3 runs), 2 (1 run)." in md
    rows = [(r["strategy"], r["runs"]) for r in read_csv(tmp_path / "mixed" / "report.csv")]
    assert rows == [("linear_probe", "2"), ("full", "2")]  # the count is no setting: rows stay whole


def test_a_report_that_fails_at_the_end_of_a_multirun_says_so_in_one_line(tmp_path, template,
                                                                          monkeypatch, caplog):
    import logging

    from ftbench.report import callback, writing

    def broken(root, runs, choice):
        raise KeyError("a bug in the report")

    write_runs(tmp_path, [fake_run(template, "full", 0, 0.9, 1e9)])
    monkeypatch.setattr(writing, "write_report", broken)
    caplog.set_level(logging.INFO, logger="ftbench")
    assert callback.write_report_quietly(tmp_path) is None  # the runs stand
    (record,) = caplog.records
    assert record.getMessage().startswith(f"report not written into {tmp_path}: KeyError")
    assert "a bug in the report" in record.getMessage() and "\n" not in record.getMessage()
    assert not record.exc_info and "Traceback" not in caplog.text
