"""Hydra's entry to ftbench's tuned comparison (``experiment=tuned``).

Hydra instantiates sweepers only from the ``hydra_plugins`` package; this class is the thin
shell, and ``ftbench.tune.protocol`` does the work. Jobs go through the configured launcher,
so ``hydra/launcher=joblib`` or ``submitit_slurm`` spread a search with no new code.
"""

from __future__ import annotations

from collections.abc import Sequence

from hydra.plugins.sweeper import Sweeper
from omegaconf import DictConfig, OmegaConf

from hydra_plugins.ftbench_tuned_sweeper.launching import Launching


class TunedSweeper(Launching, Sweeper):
    def __init__(self, shares_sweep_dir: bool = True) -> None:
        super().__init__(shares_sweep_dir)

    def sweep(self, arguments: list[str]) -> None:
        from ftbench.tune.protocol import TunedComparison

        sweep_dir = self.config.hydra.sweep.dir

        def compose(overrides: Sequence[str]) -> DictConfig:
            cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
            if cfg.get("logger"):  # checked as a job would see it; its own folder is not known yet
                cfg.logger.save_dir = sweep_dir
            return OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])

        TunedComparison(self.config, self.launcher, compose, arguments).run()
