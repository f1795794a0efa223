"""Fine-tuning strategies as plans: what trains, and how fast, at every point of training.

Every strategy is the same mechanism with different settings (the table in docs/strategies.md). A
plan says, as a pure function of training *progress* (epochs, fractions allowed), which
layer groups train (any of them: the top ones, a chosen one, all); a static rule says which
parameters of a training group move (all of them, only biases for BitFit, only the adapters
for LoRA); and each group's LR is ``lr / lr_decay**i`` for group *i* counted from the top.
Nothing has to be replayed or checkpointed: a resumed run derives its state from its step
counter alone, and the optimizer holds every group from step 0.

The set of training groups only ever grows with progress (gradual unfreezing, LP-FT), so
what has trained up to a point is what trains at that point.

Groups are ordered bottom (stem) to top; the last one is the new classifier, "head".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from ftbench.finetune.plugins import load_plugins
from ftbench.run.checks import choice_error, integer, number
from ftbench.run.failures import UserError

HEAD = "head"
# progress just before the next epoch starts: the last step of an epoch runs below it
_EPOCH_END = 1 - 1e-6

Mask = tuple[bool, ...]


def every_param(group: str, param: str) -> bool:
    return True


@dataclass(frozen=True)
class StrategyPlan:
    """When each group trains and how fast, for a model whose groups are ``group_names``."""

    name: str
    group_names: tuple[str, ...]
    lr: float
    lr_decay: float
    schedule: Callable[[float], Mask]  # progress in epochs -> per group, bottom to top: trains?
    trains_param: Callable[[str, str], bool] = every_param  # (group, parameter name) -> moves?
    # The backbone's running statistics (BatchNorm) stay put while only some of its parameters
    # train (BitFit, adapters): those strategies promise every other backbone tensor unchanged.
    # Only the layers that keep statistics run in eval mode; dropout (LoRA's own) stays on.
    backbone_stats_frozen: bool = False
    changes_within_epochs: bool = False  # the mask may change between two steps of one epoch

    @property
    def num_groups(self) -> int:
        return len(self.group_names)

    def trainable(self, progress: float) -> Mask:
        """Per group, bottom to top: does it train at ``progress`` (epochs since the start)?"""
        return self.schedule(progress)

    def trained_through(self, epoch: int) -> Mask:
        """Per group: has it trained at any step up to the end of ``epoch``?"""
        return self.trainable(epoch + _EPOCH_END)

    def head_only_through(self, epoch: int) -> bool:
        """Is the whole backbone frozen at every step up to the end of ``epoch``?"""
        return not any(self.trained_through(epoch)[:-1])

    def lr_scales(self) -> list[float]:
        """Per group, bottom to top: the factor on ``lr``; the head is 1, each step down / decay."""
        return [self.lr_decay ** -(self.num_groups - 1 - i) for i in range(self.num_groups)]


def top(k: int, num_groups: int) -> Mask:
    """The top ``k`` groups (head included) train; at least the head, at most all."""
    k = max(1, min(num_groups, k))
    return tuple(i >= num_groups - k for i in range(num_groups))


def build_plan(cfg, group_names: Sequence[str], max_epochs: int) -> StrategyPlan:
    """Turn the ``strategy`` config node into a plan for a model with ``group_names``.

    The strategy's own knobs are checked here, where their ranges are known (they depend on
    the model's groups and the number of epochs), and nowhere else.
    """
    name = cfg.name
    strategies = registered()
    if name not in strategies:
        raise choice_error("strategy", name, strategies)
    names = tuple(group_names)
    fields = strategies[name](cfg, names, max_epochs)
    return StrategyPlan(name=name, group_names=names,
                        lr=number("strategy.lr", cfg.lr, above=0),
                        lr_decay=number("strategy.lr_decay", cfg.lr_decay, at_least=1), **fields)


def _linear_probe(cfg, names: tuple[str, ...], max_epochs: int) -> dict:
    head_only = top(1, len(names))
    return {"schedule": lambda progress: head_only}


def _all_groups(cfg, names: tuple[str, ...], max_epochs: int) -> dict:
    everything = top(len(names), len(names))
    return {"schedule": lambda progress: everything}


def _gradual(cfg, names: tuple[str, ...], max_epochs: int) -> dict:
    every = unfreeze_interval(cfg.unfreeze_every, len(names), max_epochs)
    return {"schedule": lambda progress: top(1 + math.floor(progress / every + 1e-9), len(names)),
            "changes_within_epochs": not float(every).is_integer()}


def unfreeze_interval(value, num_groups: int, max_epochs: int) -> float:
    """``strategy.unfreeze_every`` in epochs; ``auto`` spreads the groups evenly over the run,
    so that the last one still trains for as long as each group waited for its turn."""
    if value == "auto":
        return max_epochs / num_groups
    if isinstance(value, str):
        raise choice_error("strategy.unfreeze_every", value, ["auto", "a number of epochs > 0"])
    return number("strategy.unfreeze_every", value, above=0)


def _partial(cfg, names: tuple[str, ...], max_epochs: int) -> dict:
    backbone = len(names) - 1
    k = integer("strategy.trainable_groups", cfg.trainable_groups, 0, backbone,
                why=f"this model has {backbone} backbone groups")
    mask = top(k + 1, len(names))
    return {"schedule": lambda progress: mask}


def _lp_ft(cfg, names: tuple[str, ...], max_epochs: int) -> dict:
    if max_epochs < 2:
        raise UserError(f"strategy=lp_ft needs trainer.max_epochs >= 2 (a probe, then a "
                        f"fine-tune); got trainer.max_epochs={max_epochs}")
    probe = integer("strategy.probe_epochs", cfg.probe_epochs, 1, max_epochs - 1,
                    why=f"below trainer.max_epochs={max_epochs}")
    head_only, everything = top(1, len(names)), top(len(names), len(names))
    return {"schedule": lambda progress: head_only if progress < probe else everything}


def _surgical(cfg, names: tuple[str, ...], max_epochs: int) -> dict:
    chosen = surgical_groups(cfg.groups, names[:-1])
    mask = tuple(name in chosen for name in names[:-1]) + (True,)
    return {"schedule": lambda progress: mask}


def surgical_groups(value, backbone: Sequence[str]) -> set[str]:
    """``strategy.groups``: backbone groups by name or index (from the stem, 0; or from the top,
    -1), one such group alone, ``all`` (every group: the full fine-tune of the surgical study)
    or ``[]`` (the probe)."""
    allowed = (f"a list of {', '.join(backbone)} or their indices 0..{len(backbone) - 1} "
               f"(-{len(backbone)}..-1 from the top), [] or all")
    if value == "all":
        return set(backbone)
    if isinstance(value, str | int) and not isinstance(value, bool):
        value = [value]  # one group: stage1, or -1 (as a search space's choice names it)
    if not isinstance(value, Iterable):
        raise UserError(f"strategy.groups={value!r} is not valid; allowed: {allowed}")
    chosen = set()
    for item in value:
        if isinstance(item, int) and not isinstance(item, bool) and -len(backbone) <= item < len(backbone):
            chosen.add(backbone[item])
        elif item in backbone:
            chosen.add(item)
        else:
            raise UserError(f"strategy.groups: {item!r} is not a backbone group of this model; "
                            f"allowed: {allowed}")
    return chosen


def _bitfit(cfg, names: tuple[str, ...], max_epochs: int) -> dict:
    everything = top(len(names), len(names))
    return {"schedule": lambda progress: everything, "trains_param": bias_or_head,
            "backbone_stats_frozen": True}


def bias_or_head(group: str, param: str) -> bool:
    """BitFit: every bias vector (of convolutions, linear and normalisation layers), the whole head."""
    return group == HEAD or param.rsplit(".", 1)[-1] == "bias"


def _lora(cfg, names: tuple[str, ...], max_epochs: int) -> dict:
    integer("strategy.rank", cfg.rank, 1)
    number("strategy.alpha", cfg.alpha, above=0)
    number("strategy.dropout", cfg.dropout, at_least=0, below=1)
    everything = top(len(names), len(names))
    return {"schedule": lambda progress: everything, "trains_param": adapter_or_head,
            "backbone_stats_frozen": True}


def adapter_or_head(group: str, param: str) -> bool:
    """LoRA: the adapters' parameters (which sit in the group of the layer they adapt), the head.
    (Imported here: the plans' names are read without torch, by ``ftbench.results`` and the report.)"""
    from ftbench.models.adapters import ADAPTER_PREFIX

    return group == HEAD or ADAPTER_PREFIX in param


# name -> factory(strategy cfg, group names, max_epochs) -> the plan's schedule and rules: the one
# list of strategies, from which the configs' lists (``${ftbench.strategies:}``), --help and the
# plots' colours derive, each through ``registered()``. A new strategy is its factory, registered
# here or by another package (an entry point of the group ``ftbench.strategies``, ftbench.finetune.plugins),
# and its YAML file in conf/strategy/ (or the other package's, on Hydra's search path).
STRATEGIES: dict[str, Callable[..., dict]] = {}
SUMMARIES: dict[str, str] = {}  # name -> its line in --help: what trains, and its knobs


def register(name: str, factory: Callable[..., dict], summary: str) -> None:
    """Make ``strategy=name`` a strategy: ``factory`` builds its plan, ``summary`` says it in --help.
    A name is registered once: a plugin that took ``full`` would silently change what it means."""
    if STRATEGIES.get(name, factory) is not factory:
        raise UserError(f"strategy {name!r} is registered already; allowed: a name not in "
                        f"{', '.join(STRATEGIES)}")
    STRATEGIES[name] = factory
    SUMMARIES[name] = summary


def registered() -> dict[str, Callable[..., dict]]:
    """The registry, installed plugins' strategies included (loaded on this first read): the
    one way every list of strategies is read."""
    load_plugins()
    return STRATEGIES


def help_lines(indent: int = 2) -> str:
    """The strategies of --help, one a line."""
    names = list(registered())
    width = max(map(len, names), default=0) + 2
    return "\n".join(f"{' ' * indent}{name:<{width}}{SUMMARIES.get(name, '')}" for name in names)


for _name, _factory, _summary in (
        ("linear_probe", _linear_probe, "the head only (feature extraction); knobs: lr"),
        ("full", _all_groups, "every group, one low LR; knobs: lr"),
        ("discriminative", _all_groups, "every group, group i from the top at lr/lr_decay**i; "
                                        "knobs: lr, lr_decay"),
        ("gradual", _gradual, "head first, one more group every unfreeze_every epochs (ULMFiT); "
                              "knobs: unfreeze_every"),
        ("partial", _partial, "head + the top trainable_groups backbone groups; knobs: trainable_groups"),
        ("lp_ft", _lp_ft, "head only for probe_epochs, then every group; knobs: probe_epochs"),
        ("surgical", _surgical, "head + the listed backbone groups (e.g. [stage1]); knobs: groups"),
        ("bitfit", _bitfit, "head + every bias vector; knobs: lr"),
        ("lora", _lora, "head + low-rank adapters (peft), merged at the end; knobs: rank, alpha")):
    register(_name, _factory, _summary)
