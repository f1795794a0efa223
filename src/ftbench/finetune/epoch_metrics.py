"""The metrics a module updates every step and logs once per epoch, typed as what they are."""

from __future__ import annotations

from collections.abc import ValuesView
from typing import cast

import torch
from torch import nn
from torchmetrics import Metric


class BatchMean(Metric):
    """Mean of a per-batch value weighted by batch size, summed over ranks at compute.

    ``self.log(tensor, on_epoch=True)`` costs about a millisecond a call, most of a step when
    only the head trains on cached features; ``MeanMetric`` checks for NaN every step (a device
    sync on GPU), and its ``nan_strategy="disable"`` drops the weights."""

    full_state_update = False
    total: torch.Tensor  # states made by add_state, declared for the type checker
    weight: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        # float32, not float64: MPS has no float64, and an epoch's sum needs no more
        self.add_state("total", torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("weight", torch.tensor(0.0), dist_reduce_fx="sum")

    def update(self, value: torch.Tensor, weight: int) -> None:
        self.total += value.detach().float() * weight
        self.weight += weight

    def compute(self) -> torch.Tensor:
        return self.total / self.weight


class MetricDict(nn.ModuleDict):
    """A ``ModuleDict`` that holds only torchmetrics ``Metric``s, and says so: torch types an
    item as any ``Module``, whose members (``update``, ``compute``) read as ``Tensor | Module``."""

    def __getitem__(self, key: str) -> Metric:
        return cast(Metric, super().__getitem__(key))

    def values(self) -> ValuesView[Metric]:
        return cast("ValuesView[Metric]", super().values())
