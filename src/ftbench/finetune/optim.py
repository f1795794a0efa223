"""One optimizer holding every layer group from step 0, and one LR schedule for all of them.

Each layer group gets two param groups (with and without weight decay, as timm does for
biases and norm weights), tagged with ``layer_group``. Frozen groups are
present with ``requires_grad=False``: AdamW and SGD skip parameters without a gradient, so
unfreezing is a flag flip and the optimizer layout never changes, which is what makes a
checkpoint from any epoch restore cleanly.

The schedule applies one factor to every group (``LambdaLR`` for warm-up + cosine or
constant, torch's ``OneCycleLR`` for one-cycle), so the ratio between neighbouring groups
stays exactly ``lr_decay`` through warm-up and decay.
"""

from __future__ import annotations

import fnmatch
import math
from functools import partial

import torch
from torch import nn

from ftbench.models.backbone import LayerGroup


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
ONECYCLE_DIV = 25.0  # OneCycleLR's default: the cycle starts at lr / 25


def no_weight_decay(model: nn.Module) -> set[str]:
    """The name patterns the model exempts from weight decay (timm's ``no_weight_decay()``:
    a ViT's ``pos_embed``, ``cls_token``, ...), matched as timm's own optimizer factory does."""
    exempt = getattr(model, "no_weight_decay", None)
    return set(exempt()) if callable(exempt) else set()


def decays(name: str, param: nn.Parameter, exempt: set[str]) -> bool:
    """timm's rule (``param_groups_weight_decay``): no decay on biases, norms' 1-d weights and
    what the model names in ``no_weight_decay()``."""
    return param.ndim > 1 and not name.endswith(".bias") and \
        not any(fnmatch.fnmatch(name, pattern) for pattern in exempt)


def param_groups(model: nn.Module, groups: list[LayerGroup], lr_scales: list[float],
                 base_lr: float, weight_decay: float) -> list[dict]:
    """Per layer group, its decayed and its exempt parameters at the group's LR: every group
    from step 0, frozen or not, so that the layout never changes."""
    params = dict(model.named_parameters())
    exempt = no_weight_decay(model)
    result = []
    for index, (group, scale) in enumerate(zip(groups, lr_scales, strict=True)):
        decay = [params[n] for n in group.param_names if decays(n, params[n], exempt)]
        no_decay = [params[n] for n in group.param_names if not decays(n, params[n], exempt)]
        for subset, wd in ((decay, weight_decay), (no_decay, 0.0)):
            if subset:
                result.append({"params": subset, "lr": base_lr * scale, "weight_decay": wd,
                               "layer_group": index})
    return result


def build_optimizer(cfg, model: nn.Module, groups: list[LayerGroup], lr_scales: list[float],
                    base_lr: float) -> torch.optim.Optimizer:
    """``cfg.name``'s optimizer (checked by ``ftbench.config``) over every layer group."""
    pgs = param_groups(model, groups, lr_scales, base_lr, cfg.weight_decay)
    if cfg.name == "sgd":
        return SGD(pgs, lr=base_lr, momentum=cfg.momentum, nesterov=cfg.nesterov)
    return AdamW(pgs, lr=base_lr, betas=tuple(cfg.betas))


def lr_factor(step: int, total_steps: int, schedule: str, warmup_steps: int,
              min_factor: float) -> float:
    """Multiplier on every group's base LR at optimizer step ``step``.

    Warm-up rises linearly to 1; then ``cosine`` anneals along a cosine to ``min_factor`` and
    ``constant`` stays at 1. A floor above zero keeps the ratios between groups defined up to
    the last step.
    """
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_factor + (1.0 - min_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(cfg, optimizer: torch.optim.Optimizer, total_steps: int,
                    steps_per_epoch: int) -> torch.optim.lr_scheduler.LRScheduler:
    """``cfg.schedule`` over ``total_steps`` optimizer steps.

    ``onecycle`` is torch's ``OneCycleLR``: from ``lr / 25`` up to each group's LR over the
    warm-up (``optimizer.warmup_epochs``, or 30% of training when 0), cosine down to
    ``lr * min_lr_factor``, with momentum (AdamW's beta1) cycled between 0.85 and 0.95.
    """
    warmup_steps = round(cfg.warmup_epochs * steps_per_epoch)
    if cfg.schedule == "onecycle":
        rise = warmup_steps / total_steps if warmup_steps else 0.3
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=[g["lr"] for g in optimizer.param_groups], total_steps=total_steps,
            pct_start=min(1.0, max(rise, 1 / total_steps)), div_factor=ONECYCLE_DIV,
            final_div_factor=1 / (ONECYCLE_DIV * cfg.min_lr_factor) if cfg.min_lr_factor else math.inf)
    factor = partial(lr_factor, total_steps=total_steps, schedule=cfg.schedule,
                     warmup_steps=warmup_steps, min_factor=cfg.min_lr_factor)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
