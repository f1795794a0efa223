"""Hydra's entry to ftbench's suites (``experiment=benchmark``).

Hydra instantiates sweepers only from the ``hydra_plugins`` package; this class is the thin
shell, and ``ftbench.suite.runner`` does the work. Each task's jobs go through the configured
launcher, so ``hydra/launcher=joblib`` or ``submitit_slurm`` spread a suite with no new code.
"""

from __future__ import annotations

from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class BenchmarkSweeper(Sweeper):
    def __init__(self, shares_sweep_dir: bool = False) -> None:
        self.shares_sweep_dir = shares_sweep_dir  # read by ftbench.train.PrepareRun: the suite's lock
        self.hydra_context: HydraContext | None = None
        self.config: DictConfig | None = None
        self.launcher = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:
        self.hydra_context, self.config = hydra_context, config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> None:
        from ftbench.suite.runner import SuiteRun

        def load_config(overrides: list[str]) -> DictConfig:
            return self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))

        SuiteRun(self.config, self.launcher, load_config, arguments).run()
