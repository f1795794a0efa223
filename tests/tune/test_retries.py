"""No trial is left running by the search's own failure; a trial that never beat goes stale; a
search trial whose worker died is run again, and its folder is no failure of the comparison."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from ftbench.report.collect import collect
from ftbench.report.tuned import default_against_tuned, tunings
from ftbench.tune import studies
from ftbench.tune.storage import open_storage
from tests.helpers import TUNE_TINY as TINY
from tests.helpers import comparison, study, tuned_command

LR = optuna.distributions.FloatDistribution(1e-3, 1.0, log=True)


class BrokenLauncher:
    def launch(self, jobs, initial_job_idx):
        raise RuntimeError("the launcher broke")


def test_a_failure_between_ask_and_tell_fails_the_trial_and_queues_it_again(tmp_path):
    tc = comparison(tmp_path, trials=2)
    tc.launcher = BrokenLauncher()
    with pytest.raises(RuntimeError, match="the launcher broke"):
        tc.search("linear_probe")
    trials = study(tmp_path, "search-linear_probe").trials
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.WAITING]  # the defaults, again
    assert "the launcher broke" in trials[0].user_attrs[studies.ABANDONED]
    assert trials[1].params == {"lr": 0.1} and studies.ABANDONED not in trials[1].user_attrs


def test_a_space_optuna_refuses_fails_the_trial_it_asked_for(tmp_path):
    tc = comparison(tmp_path, trials=3)
    search = optuna.create_study(study_name="search-linear_probe", storage=tc.storage, direction="maximize")
    search.add_trial(optuna.trial.create_trial(value=0.5, params={"lr": 0.1}, distributions={"lr": LR}))
    tc.spaces["linear_probe"] = {"lr": optuna.distributions.CategoricalDistribution([0.1, 0.01])}
    with pytest.raises(ValueError, match="Cannot set different distribution kind"):
        tc.search("linear_probe")
    assert [t.state for t in study(tmp_path, "search-linear_probe").trials] == [TrialState.COMPLETE,
                                                                                 TrialState.FAIL]


@pytest.mark.slow  # waits out the 3 s grace period: make test runs it, make test-fast leaves it out
def test_a_running_trial_that_never_beat_goes_stale_after_the_grace_period(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path}/optuna.db", 1)  # grace period: 3 s
    s = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    silent = s.ask({"lr": LR})  # its worker died before its first beat
    beating = studies.ask(storage, s, {"lr": LR})
    time.sleep(3.5)
    storage.record_heartbeat(studies.storage_id(storage, s, beating.number))  # alive
    studies.fail_stale(storage, s)
    states = {t.number: t.state for t in s.trials}
    assert states == {silent.number: TrialState.FAIL, beating.number: TrialState.RUNNING,
                      2: TrialState.WAITING}
    assert s.trials[2].params == silent.params  # queued again, as a stale trial is


def write_job(folder: Path, trial: int, record: dict | None, retry_of: list[int] | None = None) -> None:
    config = {"strategy": {"name": "linear_probe", "lr": 0.1, "search": {"lr": {"low": 0.001, "high": 1.0}}},
              "tune": {"phase": "search", "job": f"trial{trial}", "retry_of": retry_of}}
    job = folder / "search" / "linear_probe" / f"trial{trial}"
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "config.yaml").write_text(json.dumps(config))
    if record is not None:
        (job / "result.json").write_text(json.dumps({**record, "strategy": "linear_probe", "seed": 0,
                                                     "config": config}))


def test_the_folder_of_a_trial_run_again_is_no_trial_of_the_report(tmp_path):
    done = {"status": "completed", "metrics": {"val_acc": 0.5, "test_acc": None},
            "cost": {"train_flops": 1.0}}
    write_job(tmp_path, 0, done)
    write_job(tmp_path, 1, None)  # killed: no result.json
    write_job(tmp_path, 2, done, retry_of=[1])
    table = default_against_tuned(tunings(collect(tmp_path)))
    assert "| 2 (0, 0) |" in table, table


@pytest.mark.slow
def test_a_search_trial_killed_with_its_worker_runs_again_and_is_counted_once(tmp_path):
    sweep = tmp_path / "tuned"
    longer = [o for o in TINY if not o.startswith("+trainer.limit_train_batches")]
    command = tuned_command(sweep, "tune.trials=2", "tune.seeds=1", "tune.strategies=[linear_probe]",
                            "trainer.max_epochs=1", "+trainer.limit_train_batches=6", base=longer)
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    second = sweep / "search" / "linear_probe" / "trial1"
    # Hydra saves overrides.yaml after config.yaml: the job's config is whole, its training ahead
    while not (second / ".hydra" / "overrides.yaml").exists() and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL and not (second / "result.json").exists()

    again = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    trials = study(sweep, "search-linear_probe").trials
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE]
    retry = json.loads((sweep / "search" / "linear_probe" / "trial2" / "result.json").read_text())
    assert retry["config"]["tune"]["retry_of"] == [1]
    report = (sweep / "report.md").read_text()
    assert "| 2 (0, 0) |" in report  # two trials, none failed: the killed one's retry counts
    assert "trial1" not in report.split("## Failed runs")[1].split("##")[0]
