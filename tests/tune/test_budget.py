"""Budgets, batches and seeds below 1 are refused before anything runs; the final runs' seeds
never include the search seed; no loop of the search spins."""

from __future__ import annotations

import threading

import optuna
import pytest
from omegaconf import OmegaConf
from optuna.trial import TrialState

from ftbench.run.failures import UserError
from ftbench.tune.budget import final_seeds
from tests.helpers import comparison

TINY = ["model.name=test_resnet", "model.weights=none", "dataset.image_size=32", "trainer.max_epochs=1",
        "tune.strategies=[linear_probe]"]


@pytest.mark.parametrize("override, message", [
    ("tune.trials=0", "tune.trials=0 is not valid; allowed: an integer >= 1"),
    ("tune.trials=-3", "tune.trials=-3 is not valid; allowed: an integer >= 1"),
    ("tune.batch=0", "tune.batch=0 is not valid; allowed: an integer >= 1"),
    ("tune.seeds=0", "tune.seeds=0 is not valid; allowed: an integer 1.."),
    ("tune.seeds=[]", "tune.seeds=[] is not valid"),
    ("tune.seeds=[2,0,5]", "tune.seeds=[2, 0, 5] holds the search seed 0 (tune.search_seed)"),
    ("tune.heartbeat_seconds=0", "tune.heartbeat_seconds=0 is not valid; allowed: a number > 0"),
])
def test_a_budget_batch_or_seed_count_below_one_is_one_line_before_anything_runs(tmp_path, cli, override,
                                                                                  message):
    sweep = tmp_path / "tuned"
    code, stderr = cli("-m", "experiment=tuned", f"hydra.sweep.dir={sweep}", *TINY, override)
    lines = stderr.strip().splitlines()
    assert code == 2 and len(lines) == 1 and message in lines[0], stderr
    assert not sweep.exists()


def test_final_seeds_leave_out_the_search_seed():
    assert final_seeds(3, 0) == [1, 2, 3]
    assert final_seeds(3, 1) == [0, 2, 3]
    assert final_seeds(OmegaConf.create([4, 7]), 0) == [4, 7]
    with pytest.raises(UserError, match="holds the search seed 7"):
        final_seeds([4, 7], 7)
    with pytest.raises(UserError, match="repeats a seed"):
        final_seeds([4, 4], 0)


def finishes(target, timeout: float = 120.0) -> bool:
    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(timeout)
    return not worker.is_alive()


def test_a_queued_trial_beyond_the_budget_does_not_make_the_search_spin(tmp_path):
    tc = comparison(tmp_path, trials=2)
    study = optuna.create_study(study_name="search-linear_probe", storage=tc.storage, direction="maximize")
    dist = tc.spaces["linear_probe"]["lr"]
    for lr, value in ((0.1, 0.5), (0.01, 0.6)):
        study.add_trial(optuna.trial.create_trial(value=value, params={"lr": lr}, distributions={"lr": dist}))
    study.enqueue_trial({"lr": 0.2})  # queued, but the budget of 2 is spent
    assert finishes(lambda: tc.settle("linear_probe")), "settle() never returned"
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.WAITING]
