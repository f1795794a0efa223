"""Hydra's entry to ftbench's tuned comparison (``experiment=tuned``).

Hydra instantiates sweepers only from the ``hydra_plugins`` package; this class is the thin
shell, and ``ftbench.tune.protocol`` does the work. Jobs go through the configured launcher,
so ``hydra/launcher=joblib`` or ``submitit_slurm`` spread a search with no new code.
"""

from __future__ import annotations

from collections.abc import Sequence

from hydra.plugins.sweeper import Sweeper
from omegaconf import DictConfig

from hydra_plugins.ftbench_tuned_sweeper.launching import Launching


class TunedSweeper(Launching, Sweeper):
    def __init__(self, shares_sweep_dir: bool = True) -> None:
        super().__init__(shares_sweep_dir)

    def sweep(self, arguments: list[str]) -> None:
        from ftbench.config import job_config
        from ftbench.tune.protocol import TunedComparison

        sweep_dir = self.config.hydra.sweep.dir

        def compose(overrides: Sequence[str]) -> DictConfig:
            loaded = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
            return job_config(loaded, sweep_dir)

        TunedComparison(self.config, self.launcher, compose, arguments).run()
