"""The loggers under a second path, ``ftbench.loggers.RunCSVLogger``, which saved configs may
name as ``_target_``: a resume instantiates the run's own saved config."""

from ftbench.tracking.loggers import RunCSVLogger, wandb_logger

__all__ = ["RunCSVLogger", "wandb_logger"]
