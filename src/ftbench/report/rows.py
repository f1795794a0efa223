"""Rows of the comparison: one per strategy (and study setting), over its seeds."""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from dataclasses import dataclass, field

from ftbench.report.collect import Run
from ftbench.report.stats import t_half_width

# Settings a study may vary besides the strategy; a row is split by those that vary.
STUDY_KNOBS = {
    "model.name": "model", "dataset.name": "dataset", "dataset.train_fraction": "train_fraction",
    "strategy.lr": "lr", "strategy.lr_decay": "lr_decay", "strategy.unfreeze_every": "unfreeze_every",
    "strategy.trainable_groups": "trainable_groups", "strategy.probe_epochs": "probe_epochs",
    "trainer.max_epochs": "epochs", "optimizer.name": "optimizer", "optimizer.schedule": "schedule",
}


SHIFT = "metrics.shift"  # accuracy per shifted test set (ftbench.data.shifts), and their mean
SHIFT_MEAN = f"{SHIFT}.mean"


@dataclass
class Row:
    """One strategy (and study setting) over its seeds."""

    strategy: str
    setting: dict = field(default_factory=dict)  # the study knobs that vary, e.g. {"lr_decay": 2}
    runs: list[Run] = field(default_factory=list)
    failed: list[Run] = field(default_factory=list)

    @property
    def label(self) -> str:
        return " ".join([self.strategy, *(f"{k}={v}" for k, v in self.setting.items())])

    def values(self, path: str) -> list[float]:
        return [v for v in (run.number(path) for run in self.runs) if v is not None]

    def mean(self, path: str) -> float | None:
        values = self.values(path)
        return statistics.fmean(values) if values else None

    def ci95(self, path: str) -> float | None:
        """Half-width of the Student-t 95% interval of the mean; None below two seeds."""
        return t_half_width(self.values(path))

    def shift_drop(self) -> float | None:
        """In-distribution test accuracy minus mean shifted accuracy, over runs that have both."""
        pairs = [(run.number("metrics.test_acc"), run.number(SHIFT_MEAN)) for run in self.runs]
        drops = [acc - shifted for acc, shifted in pairs if acc is not None and shifted is not None]
        return statistics.fmean(drops) if drops else None

    def chance(self) -> float | None:
        classes = self.mean("data.num_classes")
        return 1.0 / classes if classes else None

    def gain_per_tflop(self) -> float | None:
        """Test accuracy above chance per TFLOP of training: what the compute bought."""
        acc, flops, chance = self.mean("metrics.test_acc"), self.mean("cost.train_flops"), self.chance()
        if acc is None or not flops or chance is None:
            return None
        return (acc - chance) / (flops / 1e12)


def group_rows(runs: list[Run]) -> list[Row]:
    """Rows in strategy order, split by the study knobs that vary within a strategy."""
    by_strategy: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        by_strategy[run.strategy].append(run)
    rows: list[Row] = []
    for strategy in sorted(by_strategy, key=strategy_order):
        members = by_strategy[strategy]
        # what the completed runs vary: a failed job alone does not split a row
        done = [r for r in members if r.completed] or members
        varying = [k for k in STUDY_KNOBS if len({json.dumps(r.get(f"config.{k}")) for r in done}) > 1]
        keyed: dict[tuple, Row] = {}
        for run in members:
            setting = {STUDY_KNOBS[k]: run.get(f"config.{k}") for k in varying}
            row = keyed.setdefault(tuple(json.dumps(v) for v in setting.values()), Row(strategy, setting))
            (row.runs if run.completed else row.failed).append(run)
        rows.extend(sorted(keyed.values(), key=lambda r: [_sortable(v) for v in r.setting.values()]))
    return rows


def shift_keys(rows: list[Row]) -> list[str]:
    """The shifted test sets of any run, in the order the runs list them (``mean`` left out)."""
    keys: list[str] = []
    for row in rows:
        for run in row.runs:
            keys += [k for k in run.get(SHIFT) or {} if k != "mean" and k not in keys]
    return keys


def _sortable(value) -> tuple:
    return (0, value, "") if isinstance(value, int | float) else (1, 0, str(value))


def strategy_order(name: str) -> tuple[int, str]:
    from ftbench.strategies import STRATEGIES

    names = list(STRATEGIES)
    return (names.index(name) if name in names else len(names), name)
