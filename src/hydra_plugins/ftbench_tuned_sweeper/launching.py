"""What ftbench's sweepers share: the configured launcher, through which they run their jobs."""

from __future__ import annotations

from hydra.core.plugins import Plugins
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class Launching:
    """A sweeper that launches its jobs through Hydra's configured launcher (not a plugin itself).

    ``shares_sweep_dir`` is read by ``ftbench.train.PrepareRun``: whether workers of one sweep
    share its folder (the tuned comparison) or one process holds its lock (a suite)."""

    def __init__(self, shares_sweep_dir: bool) -> None:
        self.shares_sweep_dir = shares_sweep_dir
        self.hydra_context: HydraContext | None = None
        self.config: DictConfig | None = None
        self.launcher = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:
        self.hydra_context, self.config = hydra_context, config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config)
