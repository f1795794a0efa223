"""Rows of the comparison: one per strategy and setting, over its seeds.

Runs are seeds of one row only if their configs agree on every setting (``NOT_SETTINGS`` only
say how a run was recorded or shown): settings outside the strategy split rows when they differ
anywhere in the folder, the strategy's own knobs when they differ within the strategy.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ftbench.report import intervals
from ftbench.report.collect import Run
from ftbench.report.escape import md
from ftbench.report.readings import Reading, shift_mean, test_acc, train_flops
from ftbench.tracking.flat import leaves

# Short names for the settings studies vary; any other key is shown as its dotted path.
STUDY_KNOBS = {
    "model.name": "model", "dataset.name": "dataset", "dataset.train_fraction": "train_fraction",
    "strategy.lr": "lr", "strategy.lr_decay": "lr_decay", "strategy.unfreeze_every": "unfreeze_every",
    "strategy.trainable_groups": "trainable_groups", "strategy.probe_epochs": "probe_epochs",
    "strategy.groups": "groups", "strategy.rank": "rank", "strategy.alpha": "alpha",
    "strategy.dropout": "dropout", "strategy.target_modules": "target_modules",
    "trainer.max_epochs": "epochs", "optimizer.name": "optimizer", "optimizer.schedule": "schedule",
}
# How a run was recorded, shown, resumed or searched for: never a setting of the comparison.
# By config group ("": top-level keys).
NOT_SETTINGS = tuple(f"{group}.{key}".lstrip(".") for group, keys in {
    "": ("seed", "resume", "progress", "logger", "paths", "hydra", "tune"), "strategy": ("search",),
    "data": ("num_workers", "pin_memory", "feature_store"), "dataset": ("download",),
    "trainer": ("enable_progress_bar", "enable_model_summary", "log_every_n_steps", "default_root_dir",
                "threads"),
}.items() for key in keys)
FEW_SEEDS = 3  # below this many seeds an interval is flagged


@dataclass
class Row:
    """One strategy (and setting) over its seeds."""

    strategy: str
    setting: dict = field(default_factory=dict)  # the settings that vary, e.g. {"lr_decay": 2}
    runs: list[Run] = field(default_factory=list)
    failed: list[Run] = field(default_factory=list)
    # the settings outside the strategy (model, dataset, …): rows compare across strategies
    # only within one context
    context: tuple = ()
    # accuracy (test or mean shifted) -> its interval from both sources of noise (``with_intervals``)
    bounds: dict[Reading, intervals.Bounds] = field(default_factory=dict)

    @property
    def setting_text(self) -> str:
        """``lr_decay=2``, ``groups=[stage1,stage2]``: as the setting is written on the command line."""
        return " ".join(f"{k}={show(v)}" for k, v in self.setting.items())

    @property
    def label(self) -> str:
        return " ".join(filter(None, [self.strategy, self.setting_text]))

    def values(self, read: Reading) -> list[float]:
        return [v for run in self.runs if (v := read(run.result)) is not None]

    def mean(self, read: Reading) -> float | None:
        values = self.values(read)
        return statistics.fmean(values) if values else None

    def interval(self, read: Reading = test_acc) -> intervals.Bounds | None:
        """The mean of ``read`` with its interval: over seeds and test examples where
        ``with_intervals`` found the runs' predictions, else Student's t over seeds."""
        return self.bounds.get(read) or intervals.over_seeds(self.values(read))

    def error_bar(self, read: Reading = test_acc) -> list[list[float]]:
        """The interval of ``read`` as matplotlib's ``yerr`` of one point: [[below], [above]]."""
        bounds = self.interval(read)
        below, above = bounds.error_bar() if bounds is not None else (0.0, 0.0)
        return [[below], [above]]

    def shift_drop(self) -> float | None:
        """In-distribution test accuracy minus mean shifted accuracy, over runs that have both."""
        pairs = [(test_acc(run.result), shift_mean(run.result)) for run in self.runs]
        drops = [acc - shifted for acc, shifted in pairs if acc is not None and shifted is not None]
        return statistics.fmean(drops) if drops else None

    def n(self, read: Reading = test_acc) -> int:
        """How many runs the mean and interval of ``read`` rest on."""
        return len(self.values(read))

    def few_seeds(self, read: Reading = test_acc) -> bool:
        return 0 < self.n(read) < FEW_SEEDS

    def chance(self) -> float | None:
        classes = self.mean(lambda r: r.data.num_classes)
        return 1.0 / classes if classes else None

    def gain_per_tflop(self) -> float | None:
        """Test accuracy above chance per TFLOP of training: what the compute bought."""
        acc, flops, chance = self.mean(test_acc), self.mean(train_flops), self.chance()
        if acc is None or not flops or chance is None:
            return None
        return (acc - chance) / (flops / 1e12)


def with_intervals(root: Path, rows: list[Row], choice: Mapping, drawn=None) -> list[Row]:
    """Give each row the bootstrap interval of its test and mean shifted accuracy, from its runs'
    predictions under ``root`` (``choice``: the verdict's settings, ``judgement.settings``). The
    test accuracy's is the verdict's own (``drawn``: a ``verdict.Verdict``) where it covers all
    of the row's runs, so that a row has one interval in every table."""
    for row in rows:
        for read in (test_acc, shift_mean):
            if (found := intervals.of_runs(root, row.runs, choice, read, drawn, row.label)) is not None:
                row.bounds[read] = found
    return rows


def is_setting(path: str) -> bool:
    """Whether the config path ``path`` is a setting of the comparison (not in ``NOT_SETTINGS``)."""
    return not any(path == p or path.startswith(f"{p}.") for p in NOT_SETTINGS)


def varying_keys(runs: list[Run]) -> list[str]:
    """Config paths whose values differ between ``runs`` (study knobs first, then by name).

    Only paths every run records are compared: a key one run's config has and another's lacks
    says nothing about how the two differ.
    """
    per_run = [leaves(run.result.config) for run in runs]
    if not per_run:
        return []
    common = set.intersection(*(set(leaf) for leaf in per_run))
    varying = [k for k in common if is_setting(k)
               and len({json.dumps(leaf[k], sort_keys=True) for leaf in per_run}) > 1]
    return sorted(varying, key=lambda k: (_order(k), k))


def group_rows(runs: list[Run]) -> list[Row]:
    """Rows in strategy order, split by every setting that differs (see the module's notes)."""
    by_strategy: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        by_strategy[run.strategy].append(run)
    # what the completed runs vary: a failed job alone does not split a row
    done = [r for r in runs if r.completed] or runs
    shared = [k for k in varying_keys(done) if not k.startswith("strategy.")]
    rows: list[Row] = []
    for strategy in sorted(by_strategy, key=strategy_order):
        members = by_strategy[strategy]
        own = [r for r in members if r.completed] or members
        knobs = [k for k in varying_keys(own) if k.startswith("strategy.")]
        keys = sorted(shared + knobs, key=lambda k: (_order(k), k))
        keyed: dict[tuple, Row] = {}
        for run in members:
            setting = {STUDY_KNOBS.get(k, k): run.result.config_at(*k.split(".")) for k in keys}
            context = tuple(json.dumps(run.result.config_at(*k.split("."))) for k in shared)
            row = keyed.setdefault(tuple(json.dumps(v) for v in setting.values()),
                                   Row(strategy, setting, context=context))
            (row.runs if run.completed else row.failed).append(run)
        rows.extend(sorted(keyed.values(), key=_setting_order))
    return rows


def shift_keys(rows: list[Row]) -> list[str]:
    """The shifted test sets of any run, in the order the runs list them (``mean`` left out)."""
    keys = dict.fromkeys(k for row in rows for run in row.runs for k in run.result.metrics.shift or {}
                         if k != "mean")
    return list(keys)


def _order(key: str) -> int:
    order = list(STUDY_KNOBS)
    return order.index(key) if key in order else len(order)


def show(value) -> str:
    """A setting's value as on the command line: lists without quotes."""
    if isinstance(value, list | tuple):
        return "[" + ",".join(show(v) for v in value) + "]"
    return str(value)


def _setting_order(row: Row) -> list[tuple]:
    """Numbers in order, then lists (layer groups bottom to top, as the runs name them), then text."""
    runs = row.runs or row.failed
    names = [g.name for g in runs[0].result.groups] if runs else []
    return [_sortable(v, names) for v in row.setting.values()]


def _sortable(value, names: list[str | None]) -> tuple:
    if isinstance(value, int | float):
        return (0, value, "")
    if isinstance(value, list):
        return (1, [(names.index(v), "") if v in names else (len(names), str(v)) for v in value], "")
    return (2, 0, str(value))


def strategy_order(name: str) -> tuple[int, str]:
    from ftbench.finetune.strategies import registered

    names = list(registered())
    return (names.index(name) if name in names else len(names), name)


def study_series(rows: list[Row], setting: str) -> dict[tuple, list[Row]]:
    """Rows along a study ``setting``, one series per strategy and every other setting: only
    rows that differ in ``setting`` alone belong on one line."""
    series: dict[tuple, list[Row]] = {}
    for row in rows:
        if setting in row.setting and row.runs:
            others = tuple((k, json.dumps(v)) for k, v in row.setting.items() if k != setting)
            series.setdefault((row.strategy, others), []).append(row)
    return series


def confounded_note(rows: list[Row], setting: str) -> str | None:
    """What the report says when ``setting`` varies together with other settings."""
    along = [r for r in rows if setting in r.setting and r.runs]
    if len({json.dumps(r.setting[setting]) for r in along}) < 2:
        return None
    keys = dict.fromkeys(k for r in along for k in r.setting if k != setting)
    others = [k for k in keys if len({json.dumps(r.setting.get(k)) for r in along}) > 1]
    if not others:
        return None
    series = study_series(rows, setting).values()
    together = ", ".join(md(k) for k in others)
    if not any(len({json.dumps(r.setting[setting]) for r in s}) > 1 for s in series):
        return (f"{setting} is not drawn against accuracy: it never varies alone, it changes "
                f"together with {together}, so no difference could be put down to {setting}.")
    return (f"Accuracy against {setting}: {together} differ too; points are joined only where "
            "nothing else differs.")
