"""The job side of a search trial: report each epoch's validation accuracy to its Optuna trial."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, cast

import optuna
from lightning import LightningModule, Trainer
from lightning.pytorch.trainer.states import TrainerFn
from omegaconf import DictConfig

from ftbench.finetune.observed import RunStopper
from ftbench.tune import pruning, storage, studies

if TYPE_CHECKING:
    from ftbench.finetune.observed import TrainingView


class ReportedTrial(Protocol):
    """What a search job does with its trial: ``optuna.Trial`` has it, and so has ``StoredTrial``."""

    @property
    def study(self) -> optuna.Study: ...

    def report(self, value: float, step: int) -> None: ...

    def should_prune(self) -> bool: ...


class StoredTrial:
    """A trial another process asked for, named by its storage id: reports go through the
    storage's public interface (``optuna.storages.BaseStorage``), pruning through the study's
    pruner, as ``optuna.Trial.report``/``should_prune`` do for the process that asked."""

    def __init__(self, storage: optuna.storages.BaseStorage, study: optuna.Study, trial_id: int) -> None:
        self.storage, self._study, self.trial_id = storage, study, trial_id

    @property
    def study(self) -> optuna.Study:
        return self._study

    def report(self, value: float, step: int) -> None:
        self.storage.set_trial_intermediate_value(self.trial_id, step, float(value))

    def should_prune(self) -> bool:
        return self._study.pruner.prune(self._study, self.storage.get_trial(self.trial_id))


class SearchTrial(RunStopper):
    """Reports validation accuracy after every epoch; stops the run when the pruner says so.

    The pruner is asked only from the epoch ``pruning.first_prunable_epoch`` gives for the
    run's plan (its final set of training groups, then ``warmup_epochs``), and once
    ``startup_trials`` trials of the study have completed: a plan that unfreezes late is
    judged like one that trains everything from the start, on the groups it ends with.

    Optuna's own Lightning callback raises ``TrialPruned``, which would lose the run's record;
    here the run stops at the end of the epoch (``trainer.should_stop``) and writes its
    ``result.json`` with ``status: pruned`` and what it cost, which the search counts.
    """

    def __init__(self, trial: ReportedTrial, warmup_epochs: int = 0, startup_trials: int = 0) -> None:
        self.trial = trial
        self.warmup_epochs, self.startup_trials = warmup_epochs, startup_trials
        self.pruned = False

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        view = watched(pl_module)
        value = view.epoch_value("val_acc")
        if trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING or value is None:
            return
        epoch = trainer.current_epoch
        self.trial.report(value, epoch)
        if epoch < pruning.first_prunable_epoch(view.plan, trainer.max_epochs or 0, self.warmup_epochs) \
                or not pruning.startup_done(self.trial.study, self.startup_trials):
            return
        if self.trial.should_prune():
            self.pruned = True
            trainer.should_stop = True

    @property
    def run_status(self) -> str | None:
        """The status of the run this callback stopped (``ftbench.train.fit`` records it)."""
        return "pruned" if self.pruned else None


def search_trial(tune: DictConfig) -> SearchTrial:
    """The trial this job runs, from ``tune.study`` and ``tune.trial_id`` (set by the search);
    instantiated from the job's ``callbacks.search_trial``."""
    from hydra.core.hydra_config import HydraConfig

    url = storage.storage_url(tune, HydraConfig.get().sweep.dir)
    opened = storage.open_storage(url, tune.heartbeat_seconds)
    study = studies.open_study(opened, tune.study, tune)
    settings = tune.pruner
    return SearchTrial(StoredTrial(opened, study, tune.trial_id),
                       warmup_epochs=settings.warmup_epochs if settings else 0,
                       startup_trials=settings.startup_trials if settings else 0)


def watched(pl_module: LightningModule) -> TrainingView:
    """The module as ``TrainingView``: what this observer may read of training."""
    return cast("TrainingView", pl_module)
