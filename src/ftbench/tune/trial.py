"""The job side of a search trial: report each epoch's validation accuracy to its Optuna trial."""

from __future__ import annotations

import optuna
from lightning import Callback, LightningModule, Trainer
from lightning.pytorch.trainer.states import TrainerFn
from omegaconf import DictConfig

from ftbench.tune import studies


class SearchTrial(Callback):
    """Reports validation accuracy after every epoch; stops the run when the pruner says so.

    Optuna's own Lightning callback raises ``TrialPruned``, which would lose the run's record;
    here the run stops at the end of the epoch (``trainer.should_stop``) and writes its
    ``result.json`` with ``status: pruned`` and what it cost, which the search counts.
    """

    def __init__(self, trial: optuna.Trial) -> None:
        self.trial = trial
        self.pruned = False

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        value = pl_module.epoch_value("val_acc")
        if trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING or value is None:
            return
        self.trial.report(value, trainer.current_epoch)
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

    url = studies.storage_url(tune, HydraConfig.get().sweep.dir)
    storage = studies.open_storage(url, tune.heartbeat_seconds)
    study = studies.open_study(storage, tune.study, tune)
    return SearchTrial(optuna.trial.Trial(study, tune.trial_id))
