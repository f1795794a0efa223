"""Hydra's entry to ftbench's tuned comparison (``experiment=tuned``).

Hydra instantiates sweepers only from the ``hydra_plugins`` package; this class is the thin
shell, and ``ftbench.tune.protocol`` does the work. Jobs go through the configured launcher,
so ``hydra/launcher=joblib`` or ``submitit_slurm`` spread a search with no new code.
"""

from __future__ import annotations

from collections.abc import Sequence

from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf


class TunedSweeper(Sweeper):
    def __init__(self, shares_sweep_dir: bool = True) -> None:
        self.shares_sweep_dir = shares_sweep_dir  # read by ftbench.train.PrepareRun: no sweep lock
        self.hydra_context: HydraContext | None = None
        self.config: DictConfig | None = None
        self.launcher = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:
        self.hydra_context, self.config = hydra_context, config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> None:
        from ftbench.tune.protocol import TunedComparison

        sweep_dir = self.config.hydra.sweep.dir

        def compose(overrides: Sequence[str]) -> DictConfig:
            cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
            if cfg.get("logger"):  # checked as a job would see it; its own folder is not known yet
                cfg.logger.save_dir = sweep_dir
            return OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])

        TunedComparison(self.config, self.launcher, compose, arguments).run()
