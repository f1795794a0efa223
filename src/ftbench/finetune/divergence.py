"""The divergence guard: a NaN or infinite training loss stops the run at once, named."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, cast

import torch
from lightning import Callback, LightningModule, Trainer

from ftbench.run.failures import Diverged

if TYPE_CHECKING:  # what it reads of training (the plan's LR), for the type checker
    from ftbench.finetune.observed import TrainingView


class DivergenceGuard(Callback):
    """Stops the run at the first non-finite training loss, naming where it happened.

    On CPU every step is checked. On an accelerator, reading the loss back each step would
    stall the device: steps fold ``isfinite`` into a device flag, read every
    ``every_n_steps`` steps and at epoch end, so no divergence slips through.
    """

    def __init__(self, every_n_steps: int = 20, read_every_step: bool | None = None) -> None:
        self.every_n_steps = every_n_steps
        self.read_every_step = read_every_step  # None: on CPU only
        self._every_step = True
        self._finite: torch.Tensor | None = None

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        on_cpu = pl_module.device.type == "cpu"
        self._every_step = on_cpu if self.read_every_step is None else self.read_every_step
        self._finite = None

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        loss = outputs["loss"].detach()
        if self._every_step:
            value = float(loss)
            self._check(trainer, pl_module, math.isfinite(value), f"is {value}")
            return
        finite = torch.isfinite(loss)
        self._finite = finite if self._finite is None else self._finite & finite
        if (batch_idx + 1) % self.every_n_steps == 0:
            self._check(trainer, pl_module, bool(self._finite))

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._finite is not None:
            self._check(trainer, pl_module, bool(self._finite))

    def _check(self, trainer: Trainer, pl_module: LightningModule, finite: bool,
               what: str = "is not finite (NaN or inf)") -> None:
        if not finite:
            raise Diverged(f"training loss {what} at epoch {trainer.current_epoch}, step "
                           f"{trainer.global_step}; lower strategy.lr "
                           f"(now {cast('TrainingView', pl_module).plan.lr:g}) or check the data")
