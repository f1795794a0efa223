"""Search spaces of the tuned comparison, as declared in YAML next to each strategy.

``conf/strategy/<name>.yaml`` holds a ``search:`` block: one entry per strategy knob, each an
Optuna distribution written as YAML::

    search:
      lr: {low: 1.0e-4, high: 0.1, log: true}      # FloatDistribution
      trainable_groups: {low: 1, high: groups}     # IntDistribution: up to every backbone group
      probe_epochs: {low: 1, high: max_epochs/2}   # up to half the run
      unfreeze_every: {choices: [auto, 0.5, 1, max_epochs/3]}   # CategoricalDistribution

A bound or a choice may be relative to the model and the training budget, so that one space
fits every model and every ``trainer.max_epochs``: ``groups`` (the model's backbone groups,
head excluded) or ``max_epochs``, alone or with one operation, ``-N``, ``+N``, ``*F`` or
``/N`` (``max_epochs-1``, ``groups/2``). In an integer range (every literal end an integer)
a relative bound is rounded inwards (``low`` up, ``high`` down); such a range may shrink to
one value (``max_epochs/2`` with 2 epochs: ``probe_epochs`` 1). A whole result is an
integer, any other keeps 4 significant digits; choices that resolve to the same value are
kept once.

A space is resolved and checked once, before anything runs: every knob must be a setting of
the strategy, every distribution well formed, and every end point (and every choice) a value
the strategy accepts on this model (``build_plan`` is asked with it). The resolved space, plain
numbers only, is what the study records.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import optuna
from omegaconf import DictConfig, OmegaConf

from ftbench.finetune.strategies import build_plan
from ftbench.report.edges import NEAR, edge_hint  # the report flags the same edges
from ftbench.run.checks import number
from ftbench.run.failures import UserError

Distribution = optuna.distributions.BaseDistribution
Range = optuna.distributions.IntDistribution | optuna.distributions.FloatDistribution
_FIELDS = {"low", "high", "log", "step", "choices"}
SYMBOLS = ("groups", "max_epochs")
_RELATIVE = re.compile(r"^\s*(groups|max_epochs)\s*(?:([-+*/])\s*(\d+(?:\.\d*)?|\.\d+))?\s*$")
_OPERATIONS = {"-": operator.sub, "+": operator.add, "*": operator.mul, "/": operator.truediv}
_RELATIVE_HELP = "groups or max_epochs, alone or with -N, +N, *F or /N (e.g. max_epochs-1, groups/2)"


@dataclass(frozen=True)
class Scale:
    """What a relative bound measures: the model's backbone groups (head excluded) and the
    training budget in epochs."""

    groups: int
    max_epochs: int

    @classmethod
    def of(cls, group_names: Sequence[str], max_epochs: int) -> Scale:
        return cls(groups=len(group_names) - 1, max_epochs=max_epochs)

    def describe(self) -> str:
        return f"{self.groups} backbone groups, trainer.max_epochs={self.max_epochs}"


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_relative(value) -> bool:
    """Is ``value`` a bound written against the model or the budget (``max_epochs-1``)?"""
    return isinstance(value, str) and _RELATIVE.match(value) is not None


def resolve(where: str, value, scale: Scale | None):
    """A relative bound or choice -> its number on ``scale``; any other value as it is."""
    match = _RELATIVE.match(value) if isinstance(value, str) else None
    if match is None:
        return value
    if scale is None:
        raise UserError(f"{where}={value!r} is relative to the model and trainer.max_epochs; "
                        "resolve it with check_space")
    symbol, op, operand = match.groups()
    base = getattr(scale, symbol)
    if op is None:
        return base
    operand = float(operand) if "." in operand else int(operand)
    if op == "/" and operand == 0:
        raise UserError(f"{where}={value!r} is not valid; allowed: {_RELATIVE_HELP}, N > 0")
    result = _OPERATIONS[op](base, operand)
    # a whole number as an integer (max_epochs/3 with 6 epochs is 2), else 4 significant
    # digits: the value appears in overrides, run configs and the report
    return int(result) if float(result).is_integer() else float(f"{result:.4g}")


def distribution(where: str, spec, scale: Scale | None = None) -> Distribution:
    """One knob's YAML spec -> an Optuna distribution; ``where`` names it in errors, ``scale``
    resolves relative bounds and choices."""
    if not isinstance(spec, Mapping) or not spec or set(spec) - _FIELDS:
        raise UserError(f"{where}={spec!r} is not valid; allowed: {{low: .., high: .., log: true|false, "
                        "step: ..}} or {choices: [..]}")
    if "choices" in spec:
        choices = spec["choices"]
        if set(spec) != {"choices"} or not isinstance(choices, Sequence) or isinstance(choices, str) \
                or not choices:
            raise UserError(f"{where}.choices={choices!r} is not valid; allowed: a non-empty list")
        resolved = []
        for value in (resolve(f"{where}.choices", c, scale) for c in choices):
            if value not in resolved:  # max_epochs/3 may equal a literal choice on some budgets
                resolved.append(value)
        return optuna.distributions.CategoricalDistribution(resolved)
    if "low" not in spec or "high" not in spec:
        raise UserError(f"{where} needs both low and high (or choices)")
    for end in ("low", "high"):
        if isinstance(spec[end], str) and not is_relative(spec[end]):
            raise UserError(f"{where}.{end}={spec[end]!r} is not valid; allowed: a number, or "
                            f"{_RELATIVE_HELP}")
    log, step = bool(spec.get("log", False)), spec.get("step")
    integral = all(_is_int(spec[end]) or is_relative(spec[end]) for end in ("low", "high"))
    low, high = _end(where, spec, "low", scale, integral), _end(where, spec, "high", scale, integral)
    low = number(f"{where}.low", low, above=0 if log else None)
    if scale is not None and (is_relative(spec["low"]) or is_relative(spec["high"])):  # resolved on it
        if high < low:  # the model or the budget leaves the range empty
            raise UserError(f"{where}: {spec['low']}..{spec['high']} is empty here ({scale.describe()}: "
                            f"{_plain(low)}..{_plain(high)}); allowed: a range that holds a value")
    else:
        high = number(f"{where}.high", high, above=low)
    if integral:
        return optuna.distributions.IntDistribution(int(low), int(high), log=log, step=int(step or 1))
    return optuna.distributions.FloatDistribution(low, high, log=log, step=step)


def _end(where: str, spec: Mapping, end: str, scale: Scale | None, integral: bool):
    value = resolve(f"{where}.{end}", spec[end], scale)
    if integral and is_relative(spec[end]):  # rounded inwards: the range never passes its bound
        value = math.ceil(value) if end == "low" else math.floor(value)
    return value


def _plain(value) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def search_space(strategy_cfg: DictConfig, scale: Scale | None = None) -> dict[str, Distribution]:
    """The strategy's declared space, knob name -> distribution (in declaration order), its
    relative bounds resolved on ``scale``."""
    declared = strategy_cfg.get("search") or {}
    knobs = [str(k) for k in strategy_cfg if k not in ("name", "search")]  # a config's keys are names
    space = {}
    for knob, spec in declared.items():
        where = f"strategy={strategy_cfg.name}: strategy.search.{knob}"
        if knob not in knobs:
            raise UserError(f"{where} is not a setting of the strategy; allowed: {', '.join(knobs)}")
        space[knob] = distribution(where, OmegaConf.to_container(spec) if OmegaConf.is_config(spec)
                                   else spec, scale)
    return space


def end_points(dist: Distribution) -> list:
    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        return list(dist.choices)
    ends = _range(dist)
    return [ends.low, ends.high]


def _range(dist: Distribution) -> Range:
    """``dist`` as the range it is when it holds no choices (every other Optuna distribution)."""
    if not isinstance(dist, optuna.distributions.IntDistribution | optuna.distributions.FloatDistribution):
        raise TypeError(f"{type(dist).__name__} is neither choices nor a range")
    return dist


def check_space(strategy_cfg: DictConfig, group_names: Sequence[str], max_epochs: int) -> dict:
    """The space resolved on this model and budget, after checking that the strategy accepts
    every end point here."""
    space = search_space(strategy_cfg, Scale.of(group_names, max_epochs))
    for knob, dist in space.items():
        for value in end_points(dist):
            probe = OmegaConf.merge(strategy_cfg, {knob: value})
            try:
                build_plan(probe, group_names, max_epochs)
            except UserError as err:
                raise UserError(f"strategy={strategy_cfg.name}: strategy.search.{knob} reaches "
                                f"{value!r}, which the strategy refuses here: {err}") from err
    return space


def near_bound(knob: str, dist: Distribution, value, *, within: float = NEAR,
               limits: Sequence[float] = ()) -> str | None:
    """``report.edges.edge_hint`` for a search's best ``value`` in the distribution ``dist``
    (choices have no order: never flagged)."""
    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        return None
    ends = _range(dist)
    return edge_hint(knob, ends.low, ends.high, bool(ends.log), value, within=within, limits=limits)


def limits(strategy_cfg: DictConfig, knob: str, dist: Distribution, group_names: Sequence[str],
           max_epochs: int) -> list[float]:
    """The bounds of ``dist`` the strategy cannot pass on this model and budget (``lr_decay``
    below 1, more groups than the model has), for ``near_bound``: a value just beyond each bound
    is put to ``build_plan``."""
    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        return []
    ends = _range(dist)
    integral = isinstance(ends, optuna.distributions.IntDistribution)
    found = []
    for bound, sign in ((ends.low, -1), (ends.high, 1)):
        beyond = bound + sign * ends.step if integral and ends.step else \
            (bound * 1.1 ** sign if bound > 0 else bound + sign * 0.1 * (ends.high - ends.low))
        try:
            build_plan(OmegaConf.merge(strategy_cfg, {knob: beyond}), group_names, max_epochs)
        except UserError:
            found.append(bound)
    return found


def as_override(knob: str, value) -> str:
    """A sampled value as a Hydra override of the strategy's knob."""
    if isinstance(value, float):
        value = repr(value)
    return f"strategy.{knob}={value}"


def as_choice(value):
    """A default as a search space holds it: a one-item list (``groups: [stage1]``) as its item."""
    if OmegaConf.is_list(value) and len(value) == 1:
        return value[0]
    return OmegaConf.to_container(value) if OmegaConf.is_config(value) else value


def contains(dist: optuna.distributions.BaseDistribution, value) -> bool:
    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        return value in dist.choices
    ends = _range(dist)
    return isinstance(value, int | float) and ends.low <= value <= ends.high
