"""Search spaces relative to the model and the budget, pruning that waits for a plan's final
groups, and the hint when a search's best lies on the edge of its space."""

from __future__ import annotations

import functools
import sqlite3
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
from lightning.pytorch.trainer.states import TrainerFn
from omegaconf import OmegaConf
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from ftbench.config import CONFIG_DIR, group_names
from ftbench.finetune.strategies import build_plan
from ftbench.run.failures import UserError
from ftbench.tune import pruning
from ftbench.tune.space import Scale, check_space, distribution, limits, near_bound
from ftbench.tune.trial import SearchTrial
from tests.helpers import FAST, make_cfg

SHIPPED_STRATEGIES = sorted(p.stem for p in Path(CONFIG_DIR, "strategy").glob("*.yaml"))
SHIPPED_MODELS = sorted(OmegaConf.load(p).name for p in Path(CONFIG_DIR, "model").glob("*.yaml"))
TINY_MODELS = ["test_resnet", "test_efficientnet", "test_convnext", "test_vit"]
FIVE_GROUPS = "test_resnet"  # stem and four stages: as many backbone groups as resnet50


@functools.cache
def strategy_cfg(name: str):
    return make_cfg(f"strategy={name}").strategy


@functools.cache
def groups_of(model: str) -> tuple[str, ...]:
    return group_names(model)


# -- relative search spaces --------------------------------------------------------------------

def test_the_tiny_model_has_as_many_backbone_groups_as_resnet50():
    assert len(groups_of(FIVE_GROUPS)) - 1 == len(groups_of("resnet50")) - 1 == 5


@pytest.mark.parametrize("max_epochs", [1, 2, 6])
def test_partial_searches_up_to_every_backbone_group_of_the_model(max_epochs):
    for model, backbone in ((FIVE_GROUPS, 5), ("tf_efficientnet_lite0", 8)):
        space = check_space(strategy_cfg("partial"), groups_of(model), max_epochs)
        assert space["trainable_groups"] == IntDistribution(1, backbone)


@pytest.mark.parametrize("max_epochs", [1, 2, 3, 6, 10])
@pytest.mark.parametrize("model", sorted({*SHIPPED_MODELS, *TINY_MODELS}))
@pytest.mark.slow  # over a second or two: make test runs it, make test-fast leaves it out
def test_every_shipped_space_fits_every_shipped_model_and_budget(model, max_epochs):
    for strategy in SHIPPED_STRATEGIES:
        if strategy == "lp_ft" and max_epochs == 1:  # a probe, then a fine-tune: 2 epochs at least
            continue
        space = check_space(strategy_cfg(strategy), groups_of(model), max_epochs)
        assert space, strategy
        for dist in space.values():  # what the study records: plain numbers and names
            values = dist.choices if isinstance(dist, CategoricalDistribution) else (dist.low, dist.high)
            assert all(not isinstance(v, str) or v in ("auto", "stem", "stage1", "stage2", "stage3")
                       for v in values), (strategy, dist)


@pytest.mark.parametrize("max_epochs, probe", [(2, 1), (3, 1), (6, 3), (7, 3)])
def test_lp_ft_probes_for_up_to_half_the_run(max_epochs, probe):
    space = check_space(strategy_cfg("lp_ft"), groups_of(FIVE_GROUPS), max_epochs)
    assert space["probe_epochs"] == IntDistribution(1, probe)


@pytest.mark.parametrize("max_epochs, choices", [(6, ("auto", 0.5, 1, 2)), (3, ("auto", 0.5, 1)),
                                                 (2, ("auto", 0.5, 1, 0.6667))])
def test_gradual_unfreezes_within_the_run(max_epochs, choices):
    space = check_space(strategy_cfg("gradual"), groups_of(FIVE_GROUPS), max_epochs)
    assert space["unfreeze_every"].choices == choices  # the same value twice is kept once


@pytest.mark.parametrize("spec, scale, expected", [
    ({"low": 1, "high": "groups"}, Scale(5, 6), IntDistribution(1, 5)),
    ({"low": 1, "high": "max_epochs-1"}, Scale(5, 6), IntDistribution(1, 5)),
    ({"low": "groups/3", "high": "groups*0.75"}, Scale(8, 6), IntDistribution(3, 6)),  # rounded inwards
    ({"low": 0.5, "high": "max_epochs/4"}, Scale(5, 6), FloatDistribution(0.5, 1.5)),
    ({"choices": ["auto", "max_epochs+1", "groups"]}, Scale(5, 6), CategoricalDistribution(["auto", 7, 5])),
])
def test_a_relative_bound_resolves_on_the_model_and_the_budget(spec, scale, expected):
    assert distribution("x", spec, scale) == expected


@pytest.mark.parametrize("spec, message", [
    ({"low": 1, "high": "epochs-1"}, "x.high='epochs-1' is not valid; allowed: a number, or groups or "
                                     "max_epochs, alone or with -N, +N, *F or /N"),
    ({"low": 3, "high": "groups-3"}, "x: 3..groups-3 is empty here (5 backbone groups, "
                                     "trainer.max_epochs=6: 3..2); allowed: a range that holds a value"),
    ({"low": 1, "high": "max_epochs/0"}, "x.high='max_epochs/0' is not valid"),
])
def test_a_wrong_relative_bound_is_one_line(spec, message):
    with pytest.raises(UserError) as err:
        distribution("x", spec, Scale(5, 6))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_relative_bound_from_the_command_line_is_resolved():
    cfg = make_cfg("strategy=lp_ft", "strategy.search.probe_epochs.high=max_epochs-1")
    space = check_space(cfg.strategy, groups_of(FIVE_GROUPS), 4)
    assert space["probe_epochs"] == IntDistribution(1, 3)


def test_a_relative_bound_the_strategy_refuses_names_its_value():
    cfg = make_cfg("strategy=partial", "strategy.search.trainable_groups.high=groups+1")
    with pytest.raises(UserError, match="strategy.search.trainable_groups reaches 6, which the strategy "
                                        "refuses here"):
        check_space(cfg.strategy, groups_of(FIVE_GROUPS), 6)


@pytest.mark.slow
def test_a_tuned_search_of_partial_runs_on_a_five_group_model_for_one_epoch(tmp_path, cli):
    sweep = tmp_path / "tuned"
    tiny = [o for o in FAST if not o.startswith(("model.", "trainer.max_epochs"))]
    code, stderr = cli("-m", "experiment=tuned", f"hydra.sweep.dir={sweep}", *tiny,
                       f"model.name={FIVE_GROUPS}", "model.weights=none", "tune.strategies=[partial]",
                       "tune.trials=2", "tune.seeds=1", "trainer.max_epochs=1", "tune.heartbeat_seconds=1")
    assert code == 0, stderr[-3000:]
    study = optuna.load_study(study_name="search-partial", storage=f"sqlite:///{sweep}/optuna.db")
    trials = study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
    assert len(trials) == 2
    # the study holds the resolved space: every backbone group of this model, as a number
    assert all(t.distributions["trainable_groups"] == IntDistribution(1, 5) for t in trials)
    with sqlite3.connect(sweep / "optuna.db") as db:
        stored = [row[0] for row in db.execute("SELECT distribution_json FROM trial_params")]
    assert stored and not any("groups" in d for d in stored)
    assert (sweep / "report.md").is_file()


# -- fair pruning ------------------------------------------------------------------------------

def plan(strategy: str, max_epochs: int = 6, **knobs):
    cfg = OmegaConf.merge(strategy_cfg(strategy), knobs)
    return build_plan(cfg, groups_of(FIVE_GROUPS), max_epochs)


@pytest.mark.parametrize("strategy, knobs, final", [
    ("full", {}, 0), ("linear_probe", {}, 0), ("partial", {"trainable_groups": 2}, 0),
    ("gradual", {"unfreeze_every": 2}, 4),      # head, +1 at epoch 2, +1 at epoch 4
    ("gradual", {"unfreeze_every": 1}, 5),      # still unfreezing at the last epoch
    ("gradual", {"unfreeze_every": 0.5}, 3),    # five backbone groups by epoch 2.5: epoch 3 is whole
    ("gradual", {"unfreeze_every": 1.1}, 6),    # the last group joins during the last epoch
    ("lp_ft", {"probe_epochs": 3}, 3),
])
def test_the_epoch_a_plan_reaches_its_final_groups(strategy, knobs, final):
    assert pruning.final_set_epoch(plan(strategy, **knobs), 6) == final


def far_ahead_study(kind: str = "median") -> optuna.Study:
    """A study whose completed trials scored 0.99 at every epoch; pruning after 3 of them."""
    tune = OmegaConf.create({"pruner": {"kind": kind, "startup_trials": 3, "warmup_epochs": 1}})
    study = optuna.create_study(direction="maximize", pruner=pruning.pruner(tune))
    for _ in range(3):
        study.add_trial(optuna.trial.create_trial(
            state=TrialState.COMPLETE, value=0.99, intermediate_values=dict.fromkeys(range(6), 0.99),
            distributions={}, params={}))
    return study


def drive(callback: SearchTrial, plan, max_epochs: int = 6, value: float = 0.1) -> list[int]:
    """Feed the callback one validation per epoch, as Lightning would; the epochs it ran."""
    module = SimpleNamespace(plan=plan, epoch_value=lambda key: value)
    trainer = SimpleNamespace(sanity_checking=False, state=SimpleNamespace(fn=TrainerFn.FITTING),
                              max_epochs=max_epochs, should_stop=False, current_epoch=0)
    ran = []
    for epoch in range(max_epochs):
        trainer.current_epoch = epoch
        callback.on_validation_end(trainer, module)
        ran.append(epoch)
        if trainer.should_stop:
            break
    return ran


def test_a_gradual_trial_is_not_pruned_before_its_last_unfreeze():
    study = far_ahead_study()
    late = SearchTrial(study.ask(), warmup_epochs=1, startup_trials=3)
    ran = drive(late, plan("gradual", unfreeze_every=2))
    # its last unfreeze is at epoch 4; a whole epoch with those groups, then it may be pruned
    assert late.pruned and ran == [0, 1, 2, 3, 4, 5]
    assert study.trials[-1].intermediate_values == dict.fromkeys(range(6), 0.1)  # every epoch reported


class AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study, trial) -> bool:
        return True


@pytest.mark.parametrize("knobs, first", [({"unfreeze_every": 2}, 5), ({"unfreeze_every": 0.5}, 4)])
def test_whatever_the_pruner_a_gradual_trial_is_first_asked_after_its_final_groups_trained(knobs, first):
    study = far_ahead_study()
    study.pruner = AlwaysPrune()
    trial = SearchTrial(study.ask(), warmup_epochs=1, startup_trials=3)
    assert drive(trial, plan("gradual", **knobs))[-1] == first and trial.pruned


def test_the_same_scores_prune_a_plan_that_trains_everything_from_the_start():
    study = far_ahead_study()
    early = SearchTrial(study.ask(), warmup_epochs=1, startup_trials=3)
    assert drive(early, plan("full")) == [0, 1] and early.pruned


def test_an_lp_ft_trial_is_judged_after_its_probe():
    study = far_ahead_study()
    trial = SearchTrial(study.ask(), warmup_epochs=1, startup_trials=3)
    assert drive(trial, plan("lp_ft", probe_epochs=3)) == [0, 1, 2, 3, 4] and trial.pruned


def test_no_trial_is_pruned_before_the_startup_trials_completed():
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.SuccessiveHalvingPruner())
    study.add_trial(optuna.trial.create_trial(state=TrialState.COMPLETE, value=0.99,
                                              intermediate_values=dict.fromkeys(range(6), 0.99)))
    trial = SearchTrial(study.ask(), warmup_epochs=1, startup_trials=2)
    assert drive(trial, plan("full")) == list(range(6)) and not trial.pruned


@pytest.mark.parametrize("kind, pruner", [
    ("median", optuna.pruners.MedianPruner), ("successive_halving", optuna.pruners.SuccessiveHalvingPruner),
    ("hyperband", optuna.pruners.HyperbandPruner), ("none", optuna.pruners.NopPruner)])
def test_the_pruner_kind_is_a_setting(kind, pruner):
    assert isinstance(pruning.pruner(make_cfg(f"tune.pruner.kind={kind}").tune), pruner)
    assert isinstance(pruning.pruner(make_cfg("tune.pruner=null").tune), optuna.pruners.NopPruner)


def test_a_wrong_pruner_kind_is_one_line_before_anything_runs(tmp_path, cli):
    sweep = tmp_path / "tuned"
    code, stderr = cli("-m", "experiment=tuned", f"hydra.sweep.dir={sweep}", *FAST,
                       "tune.strategies=[full]", "tune.pruner.kind=asha")
    lines = stderr.strip().splitlines()
    assert code == 2 and len(lines) == 1, stderr
    assert "tune.pruner.kind='asha' is not valid; allowed: median, successive_halving, hyperband" in lines[0]
    assert not sweep.exists()


# -- a best value on the edge of its space -----------------------------------------------------

LR = FloatDistribution(1e-4, 0.1, log=True)


@pytest.mark.parametrize("knob, dist, value, hint", [
    ("lr", LR, 0.0939, "lr=0.0939 is within 5% of its upper bound 0.1 (log scale); widen strategy.search.lr"),
    ("lr", LR, 1.05e-4, "lr=0.000105 is within 5% of its lower bound 0.0001 (log scale); widen "
                        "strategy.search.lr"),
    ("lr", LR, 0.1, "lr=0.1 is at its upper bound 0.1 (log scale); widen strategy.search.lr"),
    ("lr", LR, 0.01, None),
    ("lr", LR, 0.0049, None),  # 4.8% of the range on a linear scale, 56% on the log scale it was searched on
    ("lr_decay", FloatDistribution(1.0, 4.0), 3.9, "lr_decay=3.9 is within 5% of its upper bound 4; widen "
                                                   "strategy.search.lr_decay"),
    ("lr_decay", FloatDistribution(1.0, 4.0), 3.8, None),
    ("trainable_groups", IntDistribution(1, 8), 1, "trainable_groups=1 is at its lower bound 1; widen "
                                                   "strategy.search.trainable_groups"),
    ("trainable_groups", IntDistribution(1, 8), 2, None),
    ("unfreeze_every", CategoricalDistribution(["auto", 0.5, 1, 2]), 2, None),
])
def test_a_best_value_near_a_bound_is_flagged(knob, dist, value, hint):
    assert near_bound(knob, dist, value) == hint


def test_a_bound_the_strategy_cannot_pass_is_not_flagged():
    partial = strategy_cfg("partial")
    space = check_space(partial, groups_of(FIVE_GROUPS), 6)
    found = {k: limits(partial, k, d, groups_of(FIVE_GROUPS), 6) for k, d in space.items()}
    assert found == {"lr": [], "lr_decay": [1.0], "trainable_groups": [5]}
    dist = space["trainable_groups"]
    assert near_bound("trainable_groups", dist, 5, limits=found["trainable_groups"]) is None
    assert near_bound("trainable_groups", dist, 1, limits=found["trainable_groups"]) is not None


def test_the_tuned_report_flags_a_best_value_on_the_edge_of_its_space():
    from ftbench.report.collect import Run
    from ftbench.report.tuned import Tuning, edge_hints

    def trial(lr: float, acc: float, number: int) -> Run:
        return Run({"status": "completed", "strategy": "full", "metrics": {"val_acc": acc},
                    "config": {"tune": {"phase": "search", "job": f"trial{number}"},
                               "strategy": {"lr": lr, "groups": "all",
                                            "search": {"lr": {"low": 1e-4, "high": 0.1, "log": True},
                                                       "trainable_groups": {"low": 1, "high": "groups"}}}}})

    edge = Tuning("full", trials=[trial(0.0939, 0.9, 0), trial(0.01, 0.8, 1)])
    assert edge_hints(edge) == ["lr=0.0939 is within 5% of its upper bound 0.1 (log scale); "
                                "widen strategy.search.lr"]
    inside = Tuning("full", trials=[trial(0.0939, 0.8, 0), trial(0.01, 0.9, 1)])
    assert edge_hints(inside) == []  # the best is inside; a relative bound is never flagged
