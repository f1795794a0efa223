"""The loggers under the path that configs saved by earlier runs name as ``_target_``
(``ftbench.loggers.RunCSVLogger``): a resume instantiates the run's own saved config."""

from ftbench.tracking.loggers import RunCSVLogger, wandb_logger

__all__ = ["RunCSVLogger", "wandb_logger"]
