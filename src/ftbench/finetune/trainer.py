"""Lightning's Trainer, built as ``cfg.trainer`` says.

Its own module (not ``ftbench.train``, which runs as ``__main__``): a launcher that pickles
the task function by value (submitit) would otherwise try to pickle ``torch.utils.deterministic``,
which cannot be.
"""

from __future__ import annotations

import hydra
import torch
from hydra.errors import InstantiationException
from lightning import Trainer
from omegaconf import DictConfig, OmegaConf

from ftbench.run.failures import UserError, one_line


def build_trainer(cfg: DictConfig, **kwargs) -> Trainer:
    """Lightning's Trainer as ``cfg.trainer`` says; a setting it refuses is one line."""
    settings = OmegaConf.to_container(cfg.trainer, resolve=True)
    if not isinstance(settings, dict):
        raise UserError(f"trainer={settings!r} is not valid; allowed: a mapping of Trainer settings")
    settings.pop("threads", None)  # ftbench's own (ftbench.run.threads), not the Trainer's
    try:
        trainer = hydra.utils.instantiate(settings, **kwargs)
    except InstantiationException as err:
        cause = err.__cause__ or err
        raise UserError(f"trainer: Lightning refuses these settings ({one_line(cause)})") from err
    # deterministic=True also fills every new tensor with NaN (torch's guard against kernels
    # that read memory they never wrote): a tenth of a CPU step's time, for no kernel ftbench
    # runs reads such memory. The deterministic kernels themselves stay on; the same-seed and
    # resume tests check that runs still repeat bit for bit.
    # a property torch puts on the module object at import; its stub declares none
    torch.utils.deterministic.fill_uninitialized_memory = False  # type: ignore[attr-defined]
    return trainer
