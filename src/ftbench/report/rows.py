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
    "strategy.groups": "groups", "strategy.rank": "rank", "strategy.alpha": "alpha",
    "strategy.dropout": "dropout", "strategy.target_modules": "target_modules",
    "trainer.max_epochs": "epochs", "optimizer.name": "optimizer", "optimizer.schedule": "schedule",
}


@dataclass
class Row:
    """One strategy (and study setting) over its seeds."""

    strategy: str
    setting: dict = field(default_factory=dict)  # the study knobs that vary, e.g. {"lr_decay": 2}
    runs: list[Run] = field(default_factory=list)
    failed: list[Run] = field(default_factory=list)

    @property
    def setting_text(self) -> str:
        """``lr_decay=2``, ``groups=[stage1,stage2]``: as the setting is written on the command line."""
        return " ".join(f"{k}={show(v)}" for k, v in self.setting.items())

    @property
    def label(self) -> str:
        return " ".join(filter(None, [self.strategy, self.setting_text]))

    def values(self, path: str) -> list[float]:
        return [v for v in (run.number(path) for run in self.runs) if v is not None]

    def mean(self, path: str) -> float | None:
        values = self.values(path)
        return statistics.fmean(values) if values else None

    def ci95(self, path: str) -> float | None:
        """Half-width of the Student-t 95% interval of the mean; None below two seeds."""
        return t_half_width(self.values(path))

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
        rows.extend(sorted(keyed.values(), key=_setting_order))
    return rows


def show(value) -> str:
    """A setting's value as on the command line: lists without quotes."""
    if isinstance(value, list | tuple):
        return "[" + ",".join(show(v) for v in value) + "]"
    return str(value)


def _setting_order(row: Row) -> list[tuple]:
    """Numbers in order, then lists (layer groups bottom to top, as the runs name them), then text."""
    runs = row.runs or row.failed
    names = [g.get("name") for g in runs[0].data.get("groups") or []] if runs else []
    return [_sortable(v, names) for v in row.setting.values()]


def _sortable(value, names: list[str]) -> tuple:
    if isinstance(value, int | float):
        return (0, value, "")
    if isinstance(value, list):
        return (1, [names.index(v) if v in names else v for v in value], "")
    return (2, 0, str(value))


def strategy_order(name: str) -> tuple[int, str]:
    from ftbench.strategies import STRATEGIES

    names = list(STRATEGIES)
    return (names.index(name) if name in names else len(names), name)
