"""What the callbacks that watch training (the meter, the run preview, the epoch lines, a
search trial's reporter) may read of it: ``TrainingView``, which ``FineTuneModule`` provides.

Observers live in lower layers (``ftbench.cost``, ``ftbench.tracking``) and never import the
module; they name this protocol for the type checker only (``if TYPE_CHECKING``) and reach
nothing else of the module, so that the module's internals can change freely. ``mypy`` checks
both sides: an observer reading a member the protocol lacks, and a module that stops providing
one (``_provided_by`` below), fail ``make lint``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import torch
from lightning import Callback
from torch import nn

if TYPE_CHECKING:
    from ftbench.finetune.module import FineTuneModule
    from ftbench.finetune.strategies import Mask, StrategyPlan
    from ftbench.models.backbone import LayerGroup


class TrainingView(Protocol):
    """The run's training as its observers see it; every value is current for the step whose
    hooks run (the module applies the plan before them)."""

    @property
    def model(self) -> nn.Module: ...

    @property
    def device(self) -> torch.device: ...

    @property
    def training(self) -> bool: ...

    @property
    def groups(self) -> Sequence[LayerGroup]:
        """The layer groups, bottom to top (the head last)."""

    @property
    def group_params(self) -> Sequence[Sequence[nn.Parameter]]:
        """Each group's parameters, bottom to top."""

    @property
    def plan(self) -> StrategyPlan: ...

    @property
    def trainable(self) -> Mask:
        """Which groups the current step trains."""

    def trainable_at(self, progress: float) -> Mask:
        """Which groups train at ``progress`` (in epochs)."""

    def trainable_params(self, mask: Sequence[bool]) -> int:
        """Parameters that move while ``mask``'s groups train."""

    def group_lrs(self, mask: Sequence[bool]) -> list[float]:
        """Each group's current LR, 0 where ``mask`` freezes it."""

    def epoch_value(self, name: str) -> float | None:
        """An epoch metric (``train_loss``, ``val_acc``, …), None before its stage ran."""

    def serving_features(self, stage: str) -> bool:
        """Are this epoch's inputs of ``stage`` cached features (only the head runs)?"""

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...

    def train(self, mode: bool = True) -> object: ...

    def eval(self) -> object: ...


class RunStopper(Callback):
    """A callback that may stop the run early and name its status (a pruned search trial):
    ``ftbench.train.fit`` takes these apart from other callbacks and records the status."""

    @property
    def run_status(self) -> str | None:
        """The status of the run this callback stopped; None while it has not."""
        return None


if TYPE_CHECKING:
    def _provided_by(module: FineTuneModule) -> TrainingView:
        """The type checker's proof that the module provides every member of the view."""
        return module
