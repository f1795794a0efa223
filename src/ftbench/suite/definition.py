"""A suite as its YAML declares it (``conf/benchmark/<name>.yaml``), checked once before anything runs.

::

    name: embedded
    protocol: compare              # compare | tuned
    seeds: [1, 2, 3]               # or K: seeds 0..K-1
    strategies: [linear_probe, full]   # default: tune.strategies (all nine)
    overrides: {trainer.max_epochs: 4}           # every task (a mapping, or a list of key=value)
    tasks:
      - name: digits-50                          # the task's folder under the suite's
        dataset: digits                          # a dataset/ choice
        source: digits                           # the data underneath; tasks sharing one are not
        overrides: {dataset.train_size: 50}      #   independent (the report says so)

A task's overrides are ordinary Hydra overrides: ``dataset=imagefolder`` with
``dataset.root=...`` makes a user's own image folder a task.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from omegaconf import DictConfig, ListConfig, OmegaConf

from ftbench.report.suite_results import TASK_NAME
from ftbench.run.checks import choice
from ftbench.run.failures import UserError

PROTOCOLS = ("compare", "tuned")
_PLAIN_VALUE = re.compile(r"[A-Za-z0-9_./:+@-]+")


@dataclass(frozen=True)
class Task:
    """One task of a suite: where its comparison runs and what its jobs override."""

    name: str
    dataset: str
    source: str
    overrides: tuple[str, ...]  # the suite's common overrides, then the task's own

    def as_record(self) -> dict:
        return {"name": self.name, "dataset": self.dataset, "source": self.source,
                "overrides": list(self.overrides)}


@dataclass(frozen=True)
class Suite:
    name: str
    protocol: str
    seeds: tuple[int, ...]
    strategies: tuple[str, ...]
    tasks: tuple[Task, ...]


def override_value(value) -> str:
    """A YAML value as the right-hand side of a Hydra override."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Sequence) and not isinstance(value, str):
        return "[" + ",".join(override_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{k}:{override_value(v)}" for k, v in value.items()) + "}"
    text = str(value)
    if _PLAIN_VALUE.fullmatch(text):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def as_overrides(where: str, overrides) -> list[str]:
    """``overrides`` (a mapping of key -> value, or a list of ``key=value``) as override strings."""
    if overrides is None:
        return []
    if OmegaConf.is_config(overrides):
        overrides = OmegaConf.to_container(overrides, resolve=True)
    if isinstance(overrides, Mapping):
        return [f"{key}={override_value(value)}" for key, value in overrides.items()]
    if isinstance(overrides, Sequence) and not isinstance(overrides, str) \
            and all(isinstance(o, str) and "=" in o for o in overrides):
        return list(overrides)
    raise UserError(f"{where}={overrides!r} is not valid; allowed: a mapping of key: value, or a "
                    "list of key=value overrides")


def seeds_of(value) -> tuple[int, ...]:
    """``seeds``: K (seeds 0..K-1) or a list of distinct seeds."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return tuple(range(value))
    if isinstance(value, ListConfig | list) and value and all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in value) \
            and len(set(value)) == len(value):
        return tuple(value)
    raise UserError(f"benchmark.seeds={value!r} is not valid; allowed: an integer K >= 1 (seeds "
                    "0..K-1) or a list of distinct seeds >= 0")


def read_suite(cfg: DictConfig, strategies: Sequence[str]) -> Suite:
    """The suite of ``cfg.benchmark``; ``strategies``: the names a strategy may have."""
    bench = cfg.get("benchmark")
    if not isinstance(bench, DictConfig):
        raise UserError("benchmark has no suite; allowed: benchmark=<name> of conf/benchmark/, "
                        "e.g. benchmark=embedded")
    name = bench.get("name")
    if not isinstance(name, str) or not TASK_NAME.fullmatch(name):
        raise UserError(f"benchmark.name={name!r} is not valid; allowed: letters, digits, '.', '_', '-'")
    protocol = str(choice("benchmark.protocol", bench.get("protocol"), PROTOCOLS))  # one of the names
    chosen = bench.get("strategies")
    if chosen is None:
        chosen = cfg.tune.strategies
    if not isinstance(chosen, ListConfig | list) or not chosen:
        raise UserError(f"benchmark.strategies={chosen!r} is not valid; allowed: a list of strategies")
    for strategy in chosen:
        choice("benchmark.strategies[]", strategy, strategies)
    if len(set(chosen)) != len(chosen):
        raise UserError(f"benchmark.strategies={list(chosen)} names a strategy twice; allowed: each once")
    common = as_overrides("benchmark.overrides", bench.get("overrides"))
    tasks = bench.get("tasks")
    if not isinstance(tasks, ListConfig) or not tasks:
        raise UserError("benchmark.tasks is empty; allowed: a list of tasks, each with a name and a dataset")
    return Suite(name=name, protocol=protocol, seeds=seeds_of(bench.get("seeds", 3)),
                 strategies=tuple(chosen), tasks=_tasks(tasks, common))


def _tasks(tasks: ListConfig, common: list[str]) -> tuple[Task, ...]:
    out, seen = [], set()
    for i, task in enumerate(tasks):
        where = f"benchmark.tasks[{i}]"
        if not isinstance(task, DictConfig):
            raise UserError(f"{where}={task!r} is not valid; allowed: a mapping with name, dataset, "
                            "source and overrides")
        unknown = set(task) - {"name", "dataset", "source", "overrides"}
        if unknown:
            raise UserError(f"{where} has {', '.join(sorted(unknown))}; allowed: name, dataset, source, "
                            "overrides")
        name, dataset = task.get("name"), task.get("dataset")
        if not isinstance(name, str) or not TASK_NAME.fullmatch(name):
            raise UserError(f"{where}.name={name!r} is not valid; allowed: a folder name of letters, "
                            "digits, '.', '_', '-'")
        if name in seen:
            raise UserError(f"{where}.name={name!r} names two tasks; allowed: a name per task")
        seen.add(name)
        if not isinstance(dataset, str) or not dataset:
            raise UserError(f"{where}.dataset={dataset!r} is not valid; allowed: a dataset choice "
                            "(digits, cifar100, imagefolder, ...)")
        own = as_overrides(f"{where}.overrides", task.get("overrides"))
        source = task.get("source")
        if source is None:  # an image folder is its folder; any other dataset is itself
            root = next((o.split("=", 1)[1] for o in own if o.startswith("dataset.root=")), None)
            source = root or dataset
        if not isinstance(source, str) or not source:
            raise UserError(f"{where}.source={source!r} is not valid; allowed: a name for the data "
                            "underneath (tasks of one source are not independent)")
        out.append(Task(name, dataset, source, (f"dataset={dataset}", *common, *own)))
    return tuple(out)
