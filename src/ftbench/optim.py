"""One optimizer holding every layer group from step 0, and one LR schedule for all of them.

Each layer group gets two param groups (with and without weight decay, as timm does for
biases and norm weights), tagged with ``layer_group`` and ``lr_scale``. Frozen groups are
present with ``requires_grad=False``: AdamW and SGD skip parameters without a gradient, so
unfreezing is a flag flip and the optimizer layout never changes, which is what makes a
checkpoint from any epoch restore cleanly.

The schedule is a single ``LambdaLR`` factor applied to every group, so the ratio between
neighbouring groups stays exactly ``lr_decay`` through warm-up and decay.
"""

from __future__ import annotations

import math
from functools import partial

import torch
from torch import nn

from ftbench.backbone import LayerGroup
from ftbench.errors import choice_error


class SkipFrozenGroups:
    """Optimizer mixin: a step visits only the param groups that received a gradient.

    Frozen groups stay in ``param_groups`` (state dicts and schedulers see every group), but
    torch's optimizers walk each group in Python even when no parameter has a gradient:
    with a frozen backbone that bookkeeping costs more than the head's update itself.
    """

    def step(self, closure=None):
        loss = None
        if closure is not None:  # Lightning passes forward+backward as the closure
            with torch.enable_grad():
                loss = closure()
        every_group = self.param_groups
        self.param_groups = [g for g in every_group if any(p.grad is not None for p in g["params"])]
        try:
            super().step()
        finally:
            self.param_groups = every_group
        return loss


class AdamW(SkipFrozenGroups, torch.optim.AdamW):
    pass


class SGD(SkipFrozenGroups, torch.optim.SGD):
    pass


OPTIMIZERS = {"adamw": AdamW, "sgd": SGD}
SCHEDULES = ("cosine", "onecycle", "constant")


def param_groups(model: nn.Module, groups: list[LayerGroup], lr_scales: list[float],
                 base_lr: float, weight_decay: float) -> list[dict]:
    params = dict(model.named_parameters())
    result = []
    for index, (group, scale) in enumerate(zip(groups, lr_scales, strict=True)):
        decay = [params[n] for n in group.param_names if params[n].ndim > 1]
        no_decay = [params[n] for n in group.param_names if params[n].ndim <= 1]
        for subset, wd in ((decay, weight_decay), (no_decay, 0.0)):
            if subset:
                result.append({"params": subset, "lr": base_lr * scale, "weight_decay": wd,
                               "layer_group": index, "lr_scale": scale})
    return result


def build_optimizer(cfg, model: nn.Module, groups: list[LayerGroup], lr_scales: list[float],
                    base_lr: float) -> torch.optim.Optimizer:
    name = cfg.name
    if name not in OPTIMIZERS:
        raise choice_error("optimizer.name", name, OPTIMIZERS)
    pgs = param_groups(model, groups, lr_scales, base_lr, cfg.weight_decay)
    if name == "sgd":
        return SGD(pgs, lr=base_lr, momentum=cfg.get("momentum", 0.9),
                               nesterov=cfg.get("nesterov", True))
    return AdamW(pgs, lr=base_lr, betas=tuple(cfg.get("betas", (0.9, 0.999))))


def lr_factor(step: int, total_steps: int, schedule: str, warmup_steps: int,
              min_factor: float) -> float:
    """Multiplier on every group's base LR at optimizer step ``step``.

    Warm-up rises linearly to 1; then ``cosine`` and ``onecycle`` anneal along a cosine to
    ``min_factor`` and ``constant`` stays at 1. ``onecycle`` differs from ``cosine`` only by
    its default rise (30% of training, as in ``torch.optim.lr_scheduler.OneCycleLR``).
    A floor above zero keeps the ratios between groups defined up to the last step.
    """
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_factor + (1.0 - min_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(cfg, optimizer: torch.optim.Optimizer, total_steps: int,
                    steps_per_epoch: int) -> torch.optim.lr_scheduler.LambdaLR:
    schedule = cfg.schedule
    if schedule not in SCHEDULES:
        raise choice_error("optimizer.schedule", schedule, SCHEDULES)
    warmup_steps = round(cfg.warmup_epochs * steps_per_epoch)
    if schedule == "onecycle" and warmup_steps == 0:
        warmup_steps = round(0.3 * total_steps)  # one-cycle's default rising phase
    factor = partial(lr_factor, total_steps=total_steps, schedule=schedule,
                     warmup_steps=warmup_steps, min_factor=cfg.min_lr_factor)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
