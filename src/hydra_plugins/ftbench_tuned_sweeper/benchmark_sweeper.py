"""Hydra's entry to ftbench's suites (``experiment=benchmark``).

Hydra instantiates sweepers only from the ``hydra_plugins`` package; this class is the thin
shell, and ``ftbench.suite.runner`` does the work. Each task's jobs go through the configured
launcher, so ``hydra/launcher=joblib`` or ``submitit_slurm`` spread a suite with no new code.
"""

from __future__ import annotations

from hydra.plugins.sweeper import Sweeper
from omegaconf import DictConfig

from hydra_plugins.ftbench_tuned_sweeper.launching import Launching


class BenchmarkSweeper(Launching, Sweeper):
    def __init__(self, shares_sweep_dir: bool = False) -> None:
        super().__init__(shares_sweep_dir)

    def sweep(self, arguments: list[str]) -> None:
        from ftbench.suite.runner import SuiteRun

        def load_config(overrides: list[str]) -> DictConfig:
            return self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))

        SuiteRun(self.config, self.launcher, load_config, arguments).run()
