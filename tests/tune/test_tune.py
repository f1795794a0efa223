"""The tuned comparison: the same search budget for every strategy, final runs on shared seeds,
a search that survives being killed, several workers on one study, pruning that keeps its cost."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import optuna
import pytest
from omegaconf import OmegaConf
from optuna.trial import TrialState

from ftbench.train import fit
from ftbench.tune.studies import counted
from ftbench.tune.trial import SearchTrial
from tests.helpers import FAST, make_cfg, study, tuned_command
from tests.helpers import TUNE_TINY as TINY


def results(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.rglob("result.json"))]


@pytest.mark.slow
def test_every_strategy_gets_the_same_trials_then_default_and_tuned_runs_on_shared_seeds(tmp_path):
    sweep = tmp_path / "tuned"
    proc = subprocess.run(tuned_command(sweep, "tune.trials=3", "tune.seeds=2",
                                        "tune.strategies=[linear_probe,discriminative]"),
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"report: {sweep / 'report.md'}" in proc.stdout + proc.stderr
    shipped = {"linear_probe": {"lr": 0.1}, "discriminative": {"lr": 0.01, "lr_decay": 1.6}}
    for strategy, defaults in shipped.items():
        trials = counted(study(sweep, f"search-{strategy}"))
        assert len(trials) == 3 and sorted(t.number for t in trials) == [0, 1, 2]
        assert trials[0].params == defaults  # the search starts from the shipped defaults
        searched = results(sweep / "search" / strategy)
        assert len(searched) == 3 and all(r["metrics"]["test_acc"] is None for r in searched)
        assert not list((sweep / "search").rglob("model.safetensors"))  # trials save no weights
        default = results(sweep / "default" / strategy)
        # final seeds apart from the search seed (0): the first two others
        assert sorted(r["seed"] for r in default) == [1, 2] and all(r["metrics"]["test_acc"] is not None
                                                                    for r in default)
        tuned = results(sweep / "tuned" / strategy) if (sweep / "tuned" / strategy).exists() else default
        best = max(trials, key=lambda t: (t.value if t.value is not None else -1, -t.number))
        assert all(r["config"]["strategy"][k] == v for r in tuned for k, v in best.params.items())
    report = (sweep / "report.md").read_text()
    for part in ("ecommendation", "## Verdict", "resolves about", "What was tuned", "validation split",
                 "## Default against tuned", "### The answer at every margin",
                 "## Sensitivity", "## Search spaces", "plots/sensitivity_lr.png",
                 "## Tuning cost: expected best validation accuracy after n trials",
                 "plots/expected_best_validation.png", "- `linear_probe`: "):
        assert part in report, part
    assert "Which differences are real" not in report and "Holm" not in report  # one vocabulary
    assert (sweep / "expected_best_validation.csv").read_text().count("\ndiscriminative,") == 3


@pytest.mark.parametrize("overrides, message", [
    (["strategy.search.lr.low=-1"], "strategy.search.lr.low=-1 is not valid; allowed: a number > 0"),
    (["+strategy.search.speed={low:1,high:2}"], "strategy.search.speed is not a setting of the strategy"),
    (["~strategy.search.lr.high"], "strategy.search.lr needs both low and high"),
    (["strategy.search.lr.high=0.0001"], "strategy.search.lr.high=0.0001 is not valid; allowed: a number > "),
    (["tune.strategies=[discriminative]", "strategy.search.lr_decay.low=0.5"],
     "strategy.search.lr_decay reaches 0.5, which the strategy refuses here: strategy.lr_decay=0.5"),
    (["seed=0,1"], "experiment=tuned runs its own sweep"),
    (["strategy=full"], "the tuned comparison sets strategy itself"),
])
def test_a_wrong_search_is_one_line_before_anything_runs(tmp_path, cli, overrides, message):
    sweep = tmp_path / "tuned"
    code, stderr = cli("-m", "experiment=tuned", f"hydra.sweep.dir={sweep}", *TINY,
                       "tune.strategies=[linear_probe,discriminative]", *overrides)
    lines = stderr.strip().splitlines()
    assert code == 2 and len(lines) == 1 and message in lines[0], stderr
    assert not sweep.exists()


@pytest.mark.slow
def test_overrides_change_the_search(tmp_path, cli):
    sweep = tmp_path / "tuned"
    code, stderr = cli("-m", "experiment=tuned", f"hydra.sweep.dir={sweep}", *TINY,
                       "tune.strategies=[discriminative]", "tune.trials=2", "tune.seeds=1",
                       "tune.startup_trials=1", "strategy.search.lr={low:0.02,high:0.03,log:true}",
                       "trainer.limit_train_batches=1", "trainer.max_epochs=1")
    assert code == 0, stderr[-2000:]
    trials = counted(study(sweep, "search-discriminative"))
    assert len(trials) == 2
    # the default lr (0.01) lies outside the narrowed range, so no trial starts from it
    assert all(0.02 <= t.params["lr"] <= 0.03 for t in trials)


class AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study, trial) -> bool:
        return True


def test_a_pruned_trial_stops_after_its_epoch_untested_and_keeps_its_cost(tmp_path):
    search = optuna.create_study(direction="maximize", pruner=AlwaysPrune())
    trial = SearchTrial(search.ask())
    cfg = make_cfg(*FAST, "trainer.max_epochs=3", "strategy=full", "run.test=false", "run.checkpoint=false",
                   "run.save_weights=false", run_dir=tmp_path)
    result = fit(cfg, tmp_path, stoppers=[trial])
    assert result["status"] == "pruned" and len(result["history"]) == 1
    assert result["metrics"]["test_acc"] is None and result["cost"]["train_flops"] > 0
    assert json.loads((tmp_path / "result.json").read_text())["status"] == "pruned"
    assert not (tmp_path / "model.safetensors").exists()
    assert search.trials[0].intermediate_values == {0: result["history"][0]["val_acc"]}


@pytest.mark.slow
def test_a_killed_search_continues_without_running_a_completed_trial_twice(tmp_path):
    sweep = tmp_path / "tuned"
    longer = [o for o in TINY if not o.startswith("+trainer.limit_train_batches")]
    command = tuned_command(sweep, "tune.trials=4", "tune.seeds=1", "tune.strategies=[discriminative]",
                            "+trainer.limit_train_batches=6", base=longer)
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    done = sweep / "search" / "discriminative"
    while len(list(done.rglob("result.json"))) < 2 and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the search ended before it could be killed"
    before = {p: p.read_bytes() for p in done.rglob("result.json")}  # jobs that ended, told or not
    finished_before = {t.number: t.datetime_complete for t in counted(study(sweep, "search-discriminative"))}
    assert len(before) >= 2

    again = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    trials = counted(study(sweep, "search-discriminative"))
    assert len(trials) == 4
    for number, completed_at in finished_before.items():  # told once, never run again
        assert next(t for t in trials if t.number == number).datetime_complete == completed_at
    assert all(p.read_bytes() == data for p, data in before.items())  # none ran again
    assert len(list(done.rglob("result.json"))) == 4  # four jobs in all: no trial ran twice
    assert (sweep / "report.md").is_file()


@pytest.mark.slow
def test_two_workers_on_one_study_run_the_budget_once(tmp_path):
    sweep = tmp_path / "tuned"
    command = tuned_command(sweep, "tune.trials=4", "tune.seeds=1", "tune.strategies=[full]",
                            "trainer.max_epochs=1")
    workers = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
               for _ in range(2)]
    outputs = [w.communicate(timeout=900)[0] for w in workers]
    assert all(w.returncode == 0 for w in workers), outputs[0][-2000:] + outputs[1][-2000:]
    trials = counted(study(sweep, "search-full"))
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]
    assert len(list((sweep / "search").rglob("result.json"))) == 4
    ran = [r["config"]["tune"]["phase"] for r in results(sweep) if r["config"]["tune"]["phase"] != "search"]
    assert sorted(ran) in (["default"], ["default", "tuned"])  # each final run once, by one worker
    assert OmegaConf.load(sweep / "multirun.yaml").tune.trials == 4


def test_a_trial_killed_while_being_told_counts_once_through_its_retry():
    s = optuna.create_study(direction="maximize")
    told_half = optuna.trial.create_trial(state=TrialState.FAIL, user_attrs={"outcome": "completed"})
    failed_job = optuna.trial.create_trial(state=TrialState.FAIL, user_attrs={"outcome": "failed"})
    for trial in (told_half, failed_job):
        s.add_trial(trial)
    s.add_trial(optuna.trial.create_trial(state=TrialState.COMPLETE, value=0.5,
                                          system_attrs={"failed_trial": 0}))  # the retry of trial 0
    assert [t.number for t in counted(s)] == [1, 2]


def test_of_two_workers_asking_for_the_last_trial_at_once_the_later_gives_way():
    from ftbench.tune.studies import within_budget

    s = optuna.create_study(direction="maximize")
    for value in (0.1, 0.2, 0.3):
        s.add_trial(optuna.trial.create_trial(state=TrialState.COMPLETE, value=value))
    first, second = s.ask(), s.ask()  # both saw room for one more trial of a budget of 4
    assert within_budget(s, first, 4) and not within_budget(s, second, 4)
    assert within_budget(s, second, 5)


@pytest.mark.parametrize("outcomes, best", [
    # (status, val_acc) per trial: the most accurate completed one, the earliest of a tie
    ([("completed", 0.7), ("diverged", 0.0), ("completed", 0.8), ("completed", 0.8), ("pruned", 0.9)], 2),
    ([("diverged", 0.0), ("pruned", 0.5), ("failed", None)], None),  # none completed
])
def test_the_search_and_its_report_pick_the_same_best_trial(outcomes, best):
    from ftbench.report.collect import Run
    from ftbench.report.tuned import Tuning
    from ftbench.tune.studies import OUTCOME, best_trial

    s = optuna.create_study(direction="maximize")
    runs = []
    for number, (status, val_acc) in enumerate(outcomes):
        state = {"completed": TrialState.COMPLETE, "diverged": TrialState.COMPLETE,
                 "pruned": TrialState.PRUNED}.get(status, TrialState.FAIL)
        s.add_trial(optuna.trial.create_trial(state=state, user_attrs={OUTCOME: status},
                                              value=val_acc if state == TrialState.COMPLETE else None))
        runs.append(Run({"status": status, "metrics": {"val_acc": val_acc},
                         "config": {"tune": {"job": f"trial{number}", "phase": "search"}}}))
    chosen = best_trial(s)
    assert (chosen and chosen.number) == best
    reported = Tuning("full", trials=runs).best
    job = reported.result.config_at("tune", "job") if reported else None
    assert job == (None if best is None else f"trial{best}")
