"""Fine-tuning strategies as plans: which top groups train in each epoch, and at what LR.

Every strategy is the same mechanism with different settings (see the table in the
README). A plan is a pure function of the epoch, so the state of a resumed run is derived
from its epoch counter alone: nothing has to be replayed or checkpointed.

Groups are counted from the top: index 0 is the new classifier ("head"), index 1 the last
backbone stage, and so on. ``trainable_groups`` counts *backbone* groups that train along
with the head, so 0 is a linear probe and ``num_backbone_groups`` a full fine-tune.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ftbench.errors import choice_error, integer, number


@dataclass(frozen=True)
class StrategyPlan:
    """When each group trains and how fast, for a model with ``num_groups`` groups (head included)."""

    name: str
    num_groups: int
    lr: float
    lr_decay: float
    schedule: Callable[[int], int]  # epoch -> number of top groups that train (head included)

    def num_trainable(self, epoch: int) -> int:
        return max(1, min(self.num_groups, self.schedule(epoch)))

    def trainable_mask(self, epoch: int) -> list[bool]:
        """Per group, bottom to top: does it train in ``epoch``?"""
        k = self.num_trainable(epoch)
        return [i >= self.num_groups - k for i in range(self.num_groups)]

    def untouched_groups(self, epoch: int) -> int:
        """How many bottom groups trained in no epoch up to ``epoch``: they hold their start."""
        return self.num_groups - max(self.num_trainable(e) for e in range(epoch + 1))

    def lr_scales(self) -> list[float]:
        """Per group, bottom to top: the factor on ``lr``; the head is 1, each step down / decay."""
        return [self.lr_decay ** -(self.num_groups - 1 - i) for i in range(self.num_groups)]



def build_plan(cfg, num_groups: int, max_epochs: int) -> StrategyPlan:
    """Turn the ``strategy`` config node into a plan for a model with ``num_groups`` groups."""
    name = cfg.name
    if name not in STRATEGIES:
        raise choice_error("strategy", name, STRATEGIES)
    lr = number("strategy.lr", cfg.lr, above=0)
    lr_decay = number("strategy.lr_decay", cfg.get("lr_decay", 1.0), at_least=1)
    schedule = STRATEGIES[name](cfg, num_groups - 1, max_epochs)
    return StrategyPlan(name=name, num_groups=num_groups, lr=lr, lr_decay=lr_decay, schedule=schedule)


def _linear_probe(cfg, num_backbone: int, max_epochs: int) -> Callable[[int], int]:
    return lambda epoch: 1


def _all_groups(cfg, num_backbone: int, max_epochs: int) -> Callable[[int], int]:
    return lambda epoch: num_backbone + 1


def _gradual(cfg, num_backbone: int, max_epochs: int) -> Callable[[int], int]:
    every = integer("strategy.unfreeze_every", cfg.unfreeze_every, lowest=1)
    return lambda epoch: 1 + epoch // every


def _partial(cfg, num_backbone: int, max_epochs: int) -> Callable[[int], int]:
    k = integer("strategy.trainable_groups", cfg.trainable_groups, 0, num_backbone,
                why=f"this model has {num_backbone} backbone groups")
    return lambda epoch: k + 1


def _lp_ft(cfg, num_backbone: int, max_epochs: int) -> Callable[[int], int]:
    probe = integer("strategy.probe_epochs", cfg.probe_epochs, 1, max_epochs - 1,
                    why=f"below trainer.max_epochs={max_epochs}")
    return lambda epoch: 1 if epoch < probe else num_backbone + 1


# name -> factory(strategy cfg, number of backbone groups, max_epochs) -> schedule
STRATEGIES: dict[str, Callable] = {
    "linear_probe": _linear_probe,
    "full": _all_groups,
    "discriminative": _all_groups,
    "gradual": _gradual,
    "partial": _partial,
    "lp_ft": _lp_ft,
}
