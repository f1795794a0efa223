"""Search spaces of the tuned comparison, as declared in YAML next to each strategy.

``conf/strategy/<name>.yaml`` holds a ``search:`` block: one entry per strategy knob, each an
Optuna distribution written as YAML::

    search:
      lr: {low: 1.0e-4, high: 0.1, log: true}      # FloatDistribution
      trainable_groups: {low: 1, high: 6}          # IntDistribution (both ends integers)
      unfreeze_every: {choices: [0.5, 1, auto]}    # CategoricalDistribution

A space is checked once, before anything runs: every knob must be a setting of the strategy,
every distribution well formed, and every end point (and every choice) a value the strategy
accepts on this model (``build_plan`` is asked with it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import optuna
from omegaconf import DictConfig, OmegaConf

from ftbench.finetune.strategies import build_plan
from ftbench.run.checks import number
from ftbench.run.failures import UserError

Distribution = optuna.distributions.BaseDistribution
_FIELDS = {"low", "high", "log", "step", "choices"}


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def distribution(where: str, spec) -> Distribution:
    """One knob's YAML spec -> an Optuna distribution; ``where`` names it in errors."""
    if not isinstance(spec, Mapping) or not spec or set(spec) - _FIELDS:
        raise UserError(f"{where}={spec!r} is not valid; allowed: {{low: .., high: .., log: true|false, "
                        "step: ..}} or {choices: [..]}")
    if "choices" in spec:
        choices = spec["choices"]
        if set(spec) != {"choices"} or not isinstance(choices, Sequence) or isinstance(choices, str) \
                or not choices:
            raise UserError(f"{where}.choices={choices!r} is not valid; allowed: a non-empty list")
        return optuna.distributions.CategoricalDistribution(list(choices))
    if "low" not in spec or "high" not in spec:
        raise UserError(f"{where} needs both low and high (or choices)")
    log, step = bool(spec.get("log", False)), spec.get("step")
    low = number(f"{where}.low", spec["low"], above=0 if log else None)
    high = number(f"{where}.high", spec["high"], above=low)
    if _is_int(spec["low"]) and _is_int(spec["high"]):
        return optuna.distributions.IntDistribution(int(low), int(high), log=log, step=int(step or 1))
    return optuna.distributions.FloatDistribution(low, high, log=log, step=step)


def search_space(strategy_cfg: DictConfig) -> dict[str, Distribution]:
    """The strategy's declared space, knob name -> distribution (in declaration order)."""
    declared = strategy_cfg.get("search") or {}
    knobs = [k for k in strategy_cfg if k not in ("name", "search")]
    space = {}
    for knob, spec in declared.items():
        where = f"strategy={strategy_cfg.name}: strategy.search.{knob}"
        if knob not in knobs:
            raise UserError(f"{where} is not a setting of the strategy; allowed: {', '.join(knobs)}")
        space[knob] = distribution(where, OmegaConf.to_container(spec) if OmegaConf.is_config(spec)
                                   else spec)
    return space


def end_points(dist: Distribution) -> list:
    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        return list(dist.choices)
    return [dist.low, dist.high]


def check_space(strategy_cfg: DictConfig, group_names: Sequence[str], max_epochs: int) -> dict:
    """The space, after checking that the strategy accepts every end point on this model."""
    space = search_space(strategy_cfg)
    for knob, dist in space.items():
        for value in end_points(dist):
            probe = OmegaConf.merge(strategy_cfg, {knob: value})
            try:
                build_plan(probe, group_names, max_epochs)
            except UserError as err:
                raise UserError(f"strategy={strategy_cfg.name}: strategy.search.{knob} reaches "
                                f"{value!r}, which the strategy refuses here: {err}") from err
    return space


def as_override(knob: str, value) -> str:
    """A sampled value as a Hydra override of the strategy's knob."""
    if isinstance(value, float):
        value = repr(value)
    return f"strategy.{knob}={value}"
