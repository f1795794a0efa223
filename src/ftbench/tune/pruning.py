"""Which search trials may be stopped early, and when: fair pruning.

A pruner compares a trial's validation accuracy after an epoch with other trials' at the same
epoch. A plan that unfreezes late (``gradual``, ``lp_ft``) is still training its head alone,
or part of its backbone, while others fine-tune everything: its early accuracy says little
about where it ends, and pruning it then removes the slow settings of those strategies from
the search. So a trial reports every epoch but is put to the pruner only once its plan has
trained with its final set of groups for ``tune.pruner.warmup_epochs`` whole epochs, and once
``tune.pruner.startup_trials`` trials of its study have completed.

``tune.pruner.kind``: ``median`` (Optuna's ``MedianPruner``: below the median of completed
trials at the same epoch), ``successive_halving`` or ``hyperband`` (Optuna's asynchronous
successive halving, alone or over several brackets: only the best third of the trials that
reach a rung go on), or ``none`` (``tune.pruner: null`` too).
"""

from __future__ import annotations

import optuna

from ftbench.finetune.strategies import StrategyPlan
from ftbench.run.checks import choice

KINDS = ("median", "successive_halving", "hyperband", "none")
REDUCTION_FACTOR = 3  # successive halving: the share of a rung's trials that go on is 1/3


def pruner(tune) -> optuna.pruners.BasePruner:
    """The pruner ``tune.pruner`` names (``tune.pruner: null``: none)."""
    settings = tune.pruner
    kind = choice("tune.pruner.kind", settings.get("kind", "median"), KINDS) if settings else "none"
    if kind == "none":
        return optuna.pruners.NopPruner()
    warmup = settings.warmup_epochs
    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=settings.startup_trials, n_warmup_steps=warmup)
    # the first rung after the warm-up; a rung's value is the accuracy when the trial is first
    # put to the pruner there, which for a late plan is a later epoch than its competitors'
    first_rung = max(1, warmup)
    if kind == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=first_rung,
                                                      reduction_factor=REDUCTION_FACTOR)
    return optuna.pruners.HyperbandPruner(min_resource=first_rung, reduction_factor=REDUCTION_FACTOR)


def final_set_epoch(plan: StrategyPlan, max_epochs: int) -> int:
    """The first epoch that trains, from its first step, with the set of groups the run ends
    with; ``max_epochs`` when the set still changes during the last epoch.

    The set only grows (``ftbench.finetune.strategies``), so it is final from there on.
    """
    final = plan.trained_through(max_epochs - 1)
    return next((epoch for epoch in range(max_epochs) if plan.trainable(epoch) == final), max_epochs)


def first_prunable_epoch(plan: StrategyPlan, max_epochs: int, warmup_epochs: int) -> int:
    """The first epoch after which the trial may be put to the pruner: its final set of groups
    has trained for ``warmup_epochs`` whole epochs before it (the epoch itself included when
    ``warmup_epochs`` is 0)."""
    return final_set_epoch(plan, max_epochs) + warmup_epochs


def startup_done(study: optuna.Study, startup_trials: int) -> bool:
    """Have ``startup_trials`` trials of the study run to their end? Until then none is pruned,
    whichever the pruner (successive halving has no such setting of its own)."""
    if startup_trials <= 0:
        return True
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    return len(done) >= startup_trials
