"""``runs(folder)``: one row per run, as a DataFrame.

Every job folder the report would list is a row, failed and unreadable ones included (with
their ``status`` and ``error``, and no figures): dropping them would flatter a strategy, as
the report says. Figures are read from the typed record (``Run.result``), so anything that is not
a finite number within the contract's bounds is missing (NaN), never a string in a numeric column.
"""

from __future__ import annotations

import os

import pandas as pd

from ftbench.report.collect import Run, collect
from ftbench.results.sweeps import sweeps
from ftbench.run.fields import number

IDENTITY = ["task", "dir", "strategy", "seed", "status", "phase", "model", "dataset"]
ACCURACY = ["val_acc", "test_acc", "test_loss", "shift_acc"]
# the contract's cost figures (``ftbench.run.result.Cost`` and what the meter adds): always
# columns, so that code written against one sweep runs on another that lacks some
COST = ["train_seconds", "wall_seconds", "train_flops", "eval_flops", "shift_eval_flops",
        "shift_eval_seconds", "shift_eval_images", "train_images", "train_memory_mb", "peak_memory_mb",
        "trainable_params", "total_params", "images_per_second", "devices"]
NOT_KNOBS = ("name", "search")


def _scalar(value):
    """A config value as a DataFrame cell: scalars as they are, lists as tuples (hashable, so
    they group), anything else left out."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, list) and all(isinstance(v, str | int | float | bool) for v in value):
        return tuple(value)
    return None


def _plain(value):
    return value if value is None or isinstance(value, str | int | float | bool) else str(value)


def run_row(task: str, run: Run) -> dict:
    """One run as a flat dict: identity, the strategy's knobs (``strategy.<knob>``), accuracies
    (``shift_acc``: the mean over the corruptions; ``shift.<set>``: each shifted set) and every
    numeric cost figure (``cost.<name>`` for those beyond the contract's)."""
    result = run.result
    strategy = result.config_at("strategy")
    row = {"task": task, "dir": run.dir, "strategy": result.strategy, "seed": result.seed,
           "status": run.status, "phase": _plain(result.config_at("tune", "phase")), "model": result.model,
           "dataset": result.dataset, "error": result.error}
    row |= {f"strategy.{k}": _scalar(v) for k, v in (strategy if isinstance(strategy, dict) else {}).items()
            if k not in NOT_KNOBS}
    metrics, cost = result.metrics.model_dump(), result.cost.model_dump()  # every field, None if unset
    row |= {key: number(metrics[key]) for key in ACCURACY if key != "shift_acc"}
    row["shift_acc"] = result.metrics.shift_mean
    row |= {f"shift.{k}": number(v) for k, v in (result.metrics.shift or {}).items() if k != "mean"}
    row |= {key: number(cost[key]) for key in COST}
    row |= {f"cost.{k}": number(v) for k, v in cost.items()
            if k not in COST and isinstance(v, int | float) and not isinstance(v, bool)}
    return row


def runs(folder: str | os.PathLike) -> pd.DataFrame:
    """Every run of a sweep folder, or of every task of a suite's folder: one row each.

    Columns: ``task`` (a suite's task, else the sweep folder's name), ``dir`` (the job folder,
    relative to the task's), ``strategy``, ``seed``, ``status`` (``completed``, ``failed``,
    ``diverged``, ``pruned``, ``unreadable``), ``phase`` (``search``/``default``/``tuned`` in a
    tuned sweep), ``model``, ``dataset``, ``error``, ``strategy.<knob>`` for each setting of the
    run's strategy config, ``val_acc``, ``test_acc``, ``test_loss``, ``shift_acc``,
    ``shift.<set>``, and every cost figure (``train_flops``, ``train_seconds``, ...).
    """
    records = [run_row(task, run) for task, root in sweeps(folder) for run in collect(root)]
    columns = _columns(records)
    frame = pd.DataFrame.from_records(records, columns=columns)
    figures = [c for c in columns if c in ACCURACY or c in COST or c.startswith(("shift.", "cost."))]
    return frame.astype({c: float for c in figures})  # a missing figure is NaN, never None


def _columns(records: list[dict]) -> list[str]:
    """Identity first, then knobs, accuracies and costs in a stable order."""
    seen = dict.fromkeys([*IDENTITY, "error"])
    knobs = sorted({k for r in records for k in r if k.startswith("strategy.")})
    shifts = sorted({k for r in records for k in r if k.startswith("shift.")})
    extra = sorted({k for r in records for k in r if k.startswith("cost.")})
    return [*seen, *knobs, *ACCURACY, *shifts, *COST, *extra]
