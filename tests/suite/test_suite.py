"""Suites (``experiment=benchmark``): the report across tasks on hand-made results, the checks a
suite makes before it runs, a tuned suite of image folders end to end, and a killed suite that
continues without running again what completed."""

from __future__ import annotations

import csv
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml

from ftbench.report.cli import main as report_main
from ftbench.report.intervals import BOOTSTRAP
from ftbench.report.outcomes import EQUIVALENT, LOSS, UNDECIDED, WIN, by_seed_means
from ftbench.report.suite_report import write_suite_report
from ftbench.run.atomic import write_json
from ftbench.run.result import job_record
from ftbench.stats.ranks import critical_difference
from ftbench.train import fit
from tests.helpers import FAST, PNG_MAGIC, fake_run, image_folder, logged_run, make_cfg, table_rows

STRATEGIES = ["linear_probe", "bitfit", "lp_ft", "full"]
# task -> strategy -> mean test accuracy; each is the mean of three seeds at -0.01, 0, +0.01
MEANS = {
    "t1": {"full": 0.90, "lp_ft": 0.895, "bitfit": 0.85, "linear_probe": 0.80},
    "t2": {"full": 0.799, "lp_ft": 0.81, "bitfit": 0.805, "linear_probe": 0.70},
    "t3": {"full": 0.70, "lp_ft": 0.70, "bitfit": 0.60, "linear_probe": 0.65},
    "t4": {"full": 0.95, "lp_ft": 0.90, "bitfit": 0.945, "linear_probe": 0.93},
    "t5": {"full": 0.60, "lp_ft": 0.595, "bitfit": 0.50, "linear_probe": 0.62},
}
FLOPS = {"linear_probe": 1e9, "bitfit": 2e9, "lp_ft": 5e9, "full": 1e10}
LP_FT_FLOPS = {"t1": 2e9, "t2": 8e9}  # lp_ft at 0.2x and 0.8x of full there, 0.5x elsewhere
SOURCES = {"t1": "alpha", "t2": "alpha", "t3": "t3", "t4": "t4", "t5": "t5"}
OFFSETS = (-0.01, 0.0, 0.01)


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> dict:
    """One real result.json to vary (``fake_run``): the contract's shape, not a measurement."""
    run_dir = tmp_path_factory.mktemp("template")
    return fit(make_cfg(*FAST, "strategy=full", "trainer.max_epochs=1", "eval.shifts=[]", run_dir=run_dir),
               run_dir)


def write_suite(root: Path, tasks: dict[str, dict], protocol: str = "compare", margin: float = 0.01) -> None:
    """``suite.yaml`` as the suite writes it."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "suite.yaml").write_text(yaml.safe_dump({
        "name": "hand", "protocol": protocol, "model": "test_efficientnet", "seeds": [0, 1, 2],
        "strategies": STRATEGIES, "margin": margin, "arguments": [],
        "tasks": [{"name": t, "dataset": "digits", "source": SOURCES.get(t, t), "overrides": []}
                  for t in tasks]}))


def write_compare_task(root: Path, template: dict, task: str, means: dict[str, float],
                       logger: dict | None = None) -> None:
    for strategy, mean in means.items():
        flops = LP_FT_FLOPS.get(task, 5e9) if strategy == "lp_ft" else FLOPS[strategy]
        for seed, offset in enumerate(OFFSETS):
            run = fake_run(template, strategy, seed, mean + offset, flops)
            if logger:
                run["config"]["logger"] = logger
            write_json(root / task / f"{strategy}_seed{seed}" / "result.json", run)


def read_csv(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.fixture
def hand_suite(tmp_path, template):
    root = tmp_path / "suite"
    write_suite(root, MEANS)
    for task, means in MEANS.items():
        write_compare_task(root, template, task, means)
    return root


def test_the_report_across_tasks_ranks_counts_prices_and_recommends(hand_suite):
    cross, paths = write_suite_report(hand_suite, classify=by_seed_means)  # runs without predictions

    # average ranks by hand (t3: full and lp_ft tie at 1.5)
    assert cross.ranking.average_ranks == pytest.approx(
        {"full": 1.7, "lp_ft": 2.3, "bitfit": 3.0, "linear_probe": 3.0})
    # Friedman: 12N/(k(k+1)) * (sum R^2 - k(k+1)^2/4) = 3 * (1.7^2 + 2.3^2 + 9 + 9 - 25)
    assert cross.ranking.friedman_chi2 == pytest.approx(3.54)
    assert cross.ranking.cd == pytest.approx(critical_difference(4, 5)) and cross.ranking.tested
    # margin 0.01 against each task's best mean; a tie for the best is two wins
    assert cross.outcomes["t1"] == {"full": WIN, "lp_ft": EQUIVALENT, "bitfit": LOSS, "linear_probe": LOSS}
    assert cross.outcomes["t2"] == {"full": LOSS, "lp_ft": WIN, "bitfit": EQUIVALENT, "linear_probe": LOSS}
    assert cross.outcomes["t3"]["full"] == cross.outcomes["t3"]["lp_ft"] == WIN
    counts = {s: (c.counts[WIN], c.counts[EQUIVALENT], c.counts[LOSS]) for s, c in cross.summaries.items()}
    assert counts == {"full": (3, 0, 2), "lp_ft": (2, 1, 2), "bitfit": (0, 2, 3), "linear_probe": (1, 0, 4)}
    # relative cost: geometric mean over tasks of FLOPs / full's on the same task
    assert cross.summaries["lp_ft"].relative_cost == pytest.approx((0.2 * 0.8 * 0.5 ** 3) ** 0.2)
    assert cross.summaries["linear_probe"].relative_cost == pytest.approx(0.1)
    assert cross.summaries["full"].relative_cost == pytest.approx(1.0)
    # full and lp_ft both match the best on 3 of 5 tasks: the cheaper one is recommended
    assert cross.recommended() == "lp_ft"

    md = paths["report.md"].read_text()
    assert "**Recommendation across tasks:** `lp_ft` is the cheapest strategy" in md
    assert "3 of 5 (60%), at 0.457× the training FLOPs of `full`" in md
    assert "t1, t2 (source: alpha)" in md and "not independent" in md  # the tasks sharing a source
    assert "Friedman's χ² = 3.540" in md and "finds no difference between the strategies" in md
    # runs without predictions: Student's t(2) over seeds 0.89, 0.90, 0.91, marked ‡
    half = 4.302653 * 0.01 / math.sqrt(3)
    assert f"| **0.9000 [{0.9 - half:.4f}, {0.9 + half:.4f}] (n=3) ‡** |" in md  # t1's best, bold
    assert (hand_suite / "plots" / "cd_diagram.png").read_bytes()[:8] == PNG_MAGIC
    assert (hand_suite / "plots" / "accuracy_vs_relative_cost.png").read_bytes()[:8] == PNG_MAGIC

    rows = read_csv(paths["report.csv"])
    assert len(rows) == 20 and {r["task"] for r in rows} == set(MEANS)
    (cell,) = [r for r in rows if r["task"] == "t1" and r["strategy"] == "full"]
    assert float(cell["test_acc_mean"]) == pytest.approx(0.9)
    assert float(cell["test_acc_high"]) == pytest.approx(0.9 + half)
    assert cell["test_acc_interval"] == "seeds only"
    assert cell["outcome"] == WIN and float(cell["rank"]) == 1.0 and float(cell["relative_cost"]) == 1.0
    by_strategy = {r["strategy"]: r for r in read_csv(paths["strategies.csv"])}
    assert by_strategy["lp_ft"]["recommended"] == "True" and by_strategy["full"]["recommended"] == "False"
    assert float(by_strategy["bitfit"]["average_rank"]) == 3.0


def test_the_outcomes_come_from_the_classifier_the_report_is_given(hand_suite):
    """The per-task classification is a parameter: a verdict plugs in there."""

    def everything_but_full_loses(task, margin):
        return {s: WIN if s == "full" else LOSS for s in task.means()}

    cross, paths = write_suite_report(hand_suite, classify=everything_but_full_loses)
    assert cross.summaries["full"].counts[WIN] == 5 and cross.summaries["lp_ft"].counts[LOSS] == 5
    assert cross.recommended() == "full"
    assert "`full` is the cheapest strategy" in paths["report.md"].read_text()


def test_the_report_cli_finds_a_suite_and_takes_its_margin(hand_suite, capsys):
    assert report_main([str(hand_suite), "--margin", "0.02"]) == 0
    out = capsys.readouterr().out
    assert str(hand_suite / "report.md") in out
    md = (hand_suite / "report.md").read_text()
    assert "at a margin of 0.02 test accuracy" in md


def test_tasks_without_predictions_decide_nothing_and_the_report_says_how_many(hand_suite, capsys):
    """Means alone weigh no noise: by default such a task counts as undecided for every strategy."""
    cross, paths = write_suite_report(hand_suite)
    assert all(o == UNDECIDED for outcomes in cross.outcomes.values() for o in outcomes.values())
    assert cross.recommended() is None and len(cross.silent) == 5
    md = paths["report.md"].read_text()
    assert "**No recommendation across tasks**: no task's verdict showed any strategy" in md
    assert "5 of 5 tasks count as undecided for every strategy: 5 with no saved predictions" in md
    assert "Every task weighs the same." in md


def test_with_too_few_tasks_there_is_no_test_and_the_report_says_why(tmp_path, template):
    root = tmp_path / "suite"
    few = {t: MEANS[t] for t in ("t3", "t4", "t5")}
    write_suite(root, few)
    for task, means in few.items():
        write_compare_task(root, template, task, means)
    cross, paths = write_suite_report(root)
    assert not cross.ranking.tested and not (root / "plots" / "cd_diagram.png").exists()
    md = paths["report.md"].read_text()
    assert "No critical-difference diagram: Too few tasks for Friedman's test: 3 tasks" in md
    assert "not independent" not in md  # no two tasks share a source


def test_a_failed_job_leaves_its_strategy_out_of_the_ranking_and_is_listed(hand_suite, template):
    job = hand_suite / "t2" / "bitfit_seed0" / "result.json"
    for seed in range(3):
        failed = {"schema": 1, "status": "failed", "strategy": "bitfit", "seed": seed,
                  "error": "RuntimeError: out of memory"}
        write_json(hand_suite / "t2" / f"bitfit_seed{seed}" / "result.json", failed)
    assert job_record(job.parent).status == "failed"
    cross, paths = write_suite_report(hand_suite, classify=by_seed_means)
    assert "bitfit" in cross.ranking.dropped and "bitfit" not in cross.ranking.average_ranks
    assert cross.summaries["bitfit"].tasks == 4
    md = paths["report.md"].read_text()
    assert "- t2: 3 of 12 jobs failed" in md and "Left out of the ranking" in md


def test_the_tuned_protocol_counts_the_search_in_the_cost(tmp_path, template):
    root = tmp_path / "suite"
    tasks = {"t1": MEANS["t1"], "t2": MEANS["t2"]}
    write_suite(root, tasks, protocol="tuned")
    search = {"full": 4e10, "lp_ft": 1e10, "bitfit": 1e10, "linear_probe": 1e9}
    for task, means in tasks.items():
        for strategy, mean in means.items():
            for trial in range(2):  # each search trial costs half the strategy's search
                run = fake_run(template, strategy, 0, mean, search[strategy] / 2, tune__phase="search",
                               tune__job=f"trial{trial}")
                write_json(root / task / "search" / strategy / f"trial{trial}" / "result.json", run)
            for seed, offset in enumerate(OFFSETS):
                run = fake_run(template, strategy, seed + 1, mean + offset, FLOPS[strategy],
                               tune__phase="tuned", tune__job=f"seed{seed + 1}")
                write_json(root / task / "tuned" / strategy / f"seed{seed + 1}" / "result.json", run)
    cross, paths = write_suite_report(root, classify=by_seed_means)
    assert {t.protocol for t in cross.tasks} == {"tuned"}
    # (search + one final run) / full's (search + one final run)
    assert cross.summaries["lp_ft"].relative_cost == pytest.approx((1e10 + 5e9) / (4e10 + 1e10))
    rows = read_csv(paths["report.csv"])
    (cell,) = [r for r in rows if r["task"] == "t1" and r["strategy"] == "lp_ft"]
    assert float(cell["search_flops"]) == 1e10 and float(cell["total_flops"]) == 1.5e10
    assert "search included" in paths["report.md"].read_text()


@pytest.mark.slow
@pytest.mark.usefixtures("no_credentials")
def test_a_suite_that_logged_to_wandb_logs_its_report_as_one_summary_run(tmp_path, template, capsys):
    from ftbench.report.callback import WriteReport
    from ftbench.report.wandb_summary import WANDB_LOGGER

    root = tmp_path / "suite"
    write_suite(root, MEANS)
    logger = {"_target_": WANDB_LOGGER, "project": "ftbench", "mode": "offline", "init_timeout": 30}
    for task, means in MEANS.items():
        write_compare_task(root, template, task, means, logger)
    WriteReport()._write_suite(root, final=True)

    run = logged_run(root)  # the suite folder's own W&B run, in the suite's group
    assert run["group"] == str(root) and run["config"]["suite"] == "hand"
    assert run["summary"]["suite/tasks/_type"] == run["summary"]["suite/strategies/_type"] == "table-file"
    assert run["summary"]["plots/cd_diagram/_type"] == "image-file"
    strategies = {r["strategy"]: r for r in table_rows(root, "suite/strategies")}
    # runs without predictions decide nothing: no recommendation, the suite's last printed line
    assert not any(r["recommended"] for r in strategies.values())
    assert strategies["full"]["average_rank"] == 1.7
    assert len(table_rows(root, "suite/tasks")) == 20
    out = capsys.readouterr()
    assert out.out.rstrip().splitlines()[-1].startswith("No recommendation across tasks")
    assert out.out.count("recommendation across tasks") == 1
    assert "wandb sync" in out.err


# -- the checks a suite makes before anything runs ------------------------------------------------
@pytest.mark.parametrize("overrides, message", [
    (["seed=4"], "'seed=4': a suite sets seed itself; allowed: benchmark.seeds=[...]"),
    (["tune.seeds=1"], "a suite sets tune.seeds itself; allowed: benchmark.seeds=[...]"),
    (["tune.strategies=[full]"], "allowed: benchmark.strategies=[...]"),
    (["dataset=cifar10"], "a suite sets dataset itself"),
    (["trainer.max_epochs=1,2"], "experiment=benchmark runs its own sweep"),
    (["benchmark.protocol=fast"], "benchmark.protocol='fast' is not valid; allowed: compare, tuned"),
    (["benchmark.strategies=[full,fastest]"], "benchmark.strategies[]='fastest' is not valid"),
    (["benchmark.seeds=[1,1]"], "benchmark.seeds=[1, 1] is not valid"),
    (["benchmark.protocol=tuned", "benchmark.seeds=[0,1]"],
     "tune.search_seed=0 is one of benchmark.seeds=[0, 1]; allowed: final seeds apart from the search seed"),
    (["benchmark.tasks.0.name=../up"], "benchmark.tasks[0].name='../up' is not valid"),
    (["benchmark.tasks.1.name=digits-50"], "benchmark.tasks[1].name='digits-50' names two tasks"),
    (["+benchmark.tasks.0.split=1"], "benchmark.tasks[0] has split; allowed: name, dataset, source,"),
    (["benchmark.tasks.0.dataset=nope"], "benchmark task 'digits-50': dataset='nope' is not valid"),
])
def test_a_wrong_suite_is_one_line_before_anything_runs(tmp_path, cli, overrides, message):
    code, err = cli("-m", "experiment=benchmark", f"hydra.sweep.dir={tmp_path / 'suite'}", *overrides)
    assert code != 0 and message in err, err
    assert len(err.strip().splitlines()) == 1
    assert not list((tmp_path / "suite").rglob("result.json"))
    assert not (tmp_path / "suite" / "suite.yaml").exists()


# -- end to end -----------------------------------------------------------------------------------
TINY = ["model.name=test_resnet", "model.weights=none", "dataset.image_size=32", "trainer.max_epochs=1"]


def user_suite(tmp_path: Path, protocol: str, tasks: int) -> list[str]:
    """A suite of ``tasks`` small image folders, in a YAML of the user's on Hydra's search path."""
    entries = []
    for i, name in enumerate("abc"[:tasks]):
        root = image_folder(tmp_path / "data" / name, classes=("x", "y", "z"), per_class=8 + i)
        entries.append({"name": name, "dataset": "imagefolder", "overrides": {"dataset.root": str(root)}})
    conf = tmp_path / "conf" / "benchmark"
    conf.mkdir(parents=True)
    (conf / "mine.yaml").write_text(yaml.safe_dump({
        "name": "mine", "protocol": protocol, "seeds": [1], "strategies": ["linear_probe", "full"],
        "overrides": {"eval.shifts": []}, "tasks": entries}))
    return [sys.executable, "-m", "ftbench.train", "-m", "experiment=benchmark", "benchmark=mine",
            f"hydra.searchpath=[file://{tmp_path / 'conf'}]", f"hydra.sweep.dir={tmp_path / 'suite'}", *TINY]


def environment() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.mark.slow
def test_a_tuned_suite_of_image_folders_searches_each_task_on_its_own(tmp_path):
    suite = tmp_path / "suite"
    command = [*user_suite(tmp_path, "tuned", 3), "tune.trials=2", "tune.heartbeat_seconds=1"]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=900, env=environment())
    assert proc.returncode == 0, proc.stderr[-3000:]
    for task in "abc":
        # each task its own studies: the whole budget of trials, in its own folder
        storage = f"sqlite:///{suite / task / 'optuna.db'}"
        for strategy in ("linear_probe", "full"):
            study = optuna.load_study(study_name=f"{task}/search-{strategy}", storage=storage)
            assert len(study.trials) == 2
            trials = sorted(p.parent.name for p in (suite / task / "search" / strategy).glob("*/result.json"))
            assert trials == ["trial0", "trial1"]
        records = [job_record(p.parent) for p in (suite / task).rglob("result.json")]
        search = [r for r in records if r.config_at("tune", "phase") == "search"]
        final = [r for r in records if r.config_at("tune", "phase") != "search"]
        assert {r.seed for r in search} == {0} and {r.seed for r in final} == {1}  # apart
        assert {r.config_at("dataset", "root") for r in records} == {str(tmp_path / "data" / task)}
        assert (suite / task / "report.md").is_file()
    rows = read_csv(suite / "report.csv")
    assert sorted((r["task"], r["strategy"]) for r in rows) == [
        (t, s) for t in "abc" for s in ("full", "linear_probe")]
    assert all(float(r["search_flops"]) > 0 and r["protocol"] == "tuned" for r in rows)
    md = (suite / "report.md").read_text()
    assert "Too few tasks for Friedman's test: 3 tasks" in md
    assert (suite / "plots" / "accuracy_vs_relative_cost.png").is_file()
    assert "recommendation across tasks" in proc.stdout.lower()  # the sentence; one seed names no pick


def results(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("result.json"))}


@pytest.mark.slow
def test_a_suite_killed_after_its_first_task_reruns_nothing_that_completed(tmp_path):
    suite = tmp_path / "suite"
    command = user_suite(tmp_path, "compare", 2)
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             env=environment(), start_new_session=True)
    try:
        deadline = time.time() + 600
        while len([p for p in (suite / "a").glob("*/result.json")]) < 2 and first.poll() is None:
            assert time.time() < deadline, "the first task did not finish"
            time.sleep(0.2)
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    before = results(suite)
    assert sorted(k for k in before if k.startswith("a/")) == [
        "a/full_seed1/result.json", "a/linear_probe_seed1/result.json"]

    again = subprocess.run(command, capture_output=True, text=True, timeout=600, env=environment())
    assert again.returncode == 0, again.stderr[-3000:]
    after = results(suite)
    assert {k: after[k] for k in before} == before  # not one completed job ran again
    assert sorted(after) == ["a/full_seed1/result.json", "a/linear_probe_seed1/result.json",
                             "b/full_seed1/result.json", "b/linear_probe_seed1/result.json"]
    assert all(job_record(suite / Path(k).parent).status == "completed" for k in after)
    assert "benchmark task a: 2 job(s) completed before, not run again" in again.stdout + again.stderr
    assert {r["task"] for r in read_csv(suite / "report.csv")} == {"a", "b"}

    # started with another setting, the suite refuses to mix its results with the old ones
    changed = subprocess.run([*command, "optimizer.weight_decay=0.02"], capture_output=True, text=True,
                             timeout=600, env=environment())
    assert changed.returncode != 0
    assert "holds runs made with other settings (overrides then -, now optimizer.weight_decay=0.02)" \
        in changed.stderr
    assert results(suite) == after


def test_a_tasks_cells_show_the_intervals_of_the_tasks_own_report(tmp_path, template):
    """One draw per task: the suite's table and the task's report.md give a strategy one interval."""
    from ftbench.report.render import compare_verdict
    from ftbench.report.suite_results import read_task
    from ftbench.report.writing import screened_runs
    from tests.helpers import write_runs

    accs = {"full": [0.90, 0.86, 0.93], "linear_probe": [0.70, 0.74, 0.69], "lora": [0.88, 0.9, 0.85]}
    write_runs(tmp_path / "t1", [fake_run(template, s, seed, a, 1e9) for s, seeds in accs.items()
                                 for seed, a in enumerate(seeds)], examples=500)
    task = read_task(tmp_path, {"name": "t1", "dataset": "digits", "source": "digits"})
    rows, _, _, _ = compare_verdict(tmp_path / "t1", *screened_runs(tmp_path / "t1"))
    reported = {row.label: row.interval() for row in rows}
    assert {s: c.interval for s, c in task.cells.items()} == reported
    assert all(b is not None and b.method == BOOTSTRAP for b in reported.values())


def test_a_tasks_outcomes_come_from_its_verdict_when_its_runs_kept_predictions(tmp_path, template):
    from ftbench.report.outcomes import by_verdict
    from ftbench.report.suite_results import read_task
    from tests.helpers import fake_run, write_runs

    accs = {"full": [0.90] * 3, "bitfit": [0.899] * 3, "linear_probe": [0.60] * 3, "lora": [0.88] * 3}
    write_runs(tmp_path / "t1", [fake_run(template, s, seed, a, 1e9) for s, seeds in accs.items()
                                 for seed, a in enumerate(seeds)], examples=1000)
    task = read_task(tmp_path, {"name": "t1", "dataset": "digits", "source": "digits"})
    outcomes = by_verdict(task, 0.01)
    # full leads by 0.001 on 1,000 examples: its verdict cannot place it within 0.01 of the best,
    # so leading by noise is no win; only the decided loss counts
    assert outcomes == {"full": UNDECIDED, "bitfit": UNDECIDED, "lora": UNDECIDED, "linear_probe": LOSS}
    assert outcomes.undecided_because is None
    # at 0.95 on 4,000 examples the leader's lead is decided (equivalent to the best): a win
    accs = {"full": [0.95] * 3, "bitfit": [0.949] * 3, "linear_probe": [0.60] * 3, "lora": [0.88] * 3}
    write_runs(tmp_path / "t2", [fake_run(template, s, seed, a, 1e9) for s, seeds in accs.items()
                                 for seed, a in enumerate(seeds)], examples=4000)
    outcomes = by_verdict(read_task(tmp_path, {"name": "t2", "dataset": "digits", "source": "digits"}), 0.01)
    assert outcomes == {"full": WIN, "bitfit": EQUIVALENT, "lora": LOSS, "linear_probe": LOSS}
