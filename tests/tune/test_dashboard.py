"""What ``optuna-dashboard sqlite:///<sweep>/optuna.db`` shows: one study per strategy, named
after it, whose trials carry what they cost; read here through Optuna's public API only."""

from __future__ import annotations

import optuna
import pytest

from ftbench.run.schema import Record
from tests.helpers import comparison

COST = {"linear_probe": (1.5e9, 2.0), "full": (6.0e9, 7.5)}


@pytest.mark.parametrize("task, prefix", [(None, ""), ("dtd", "dtd/")])  # a sweep; a suite's task
def test_a_tuned_sweeps_storage_holds_one_study_per_strategy_with_each_trials_cost(tmp_path, task, prefix):
    tc = comparison(tmp_path, trials=2)
    tc.task = task
    tc.strategies = ["linear_probe", "full"]
    tc.spaces["full"] = tc.spaces["linear_probe"]
    tc.defaults["full"] = {"lr": 0.1}

    def launch(jobs, trial_ids):  # what each job's result.json says
        strategies = [next(o.split("=", 1)[1] for o in job if o.startswith("strategy=")) for job in jobs]
        return [Record.model_validate({"status": "completed", "metrics": {"val_acc": 0.5},
                                       "config": {"tune": {"phase": "search"}},
                                       "cost": {"train_flops": COST[s][0], "train_seconds": COST[s][1]}})
                for s in strategies]

    tc.launch = launch
    for strategy in tc.strategies:
        tc.search(strategy)

    url = f"sqlite:///{tmp_path}/optuna.db"
    names = {summary.study_name for summary in optuna.get_all_study_summaries(storage=url)}
    assert names == {f"{prefix}search-linear_probe", f"{prefix}search-full"}
    for strategy, (flops, seconds) in COST.items():
        trials = optuna.load_study(study_name=f"{prefix}search-{strategy}", storage=url).get_trials()
        assert len(trials) == 2
        assert all(t.user_attrs["train_flops"] == flops and t.user_attrs["train_seconds"] == seconds
                   for t in trials)
