"""``verdict(folder)``: the report's verdict, one row per strategy (and task), as a DataFrame.

The candidates, their costs and the runs that failed are chosen as the report chooses them
(``ftbench.report.render``: rows of strategy and setting for ``compare``; the tuned runs and the
cost with the search for ``tuned``), and the verdict itself is the report's
(``ftbench.report.judgement.judge``). ``_frame`` is the one place that reads the verdict's
internals.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pandas as pd

from ftbench.report import judgement, tuned
from ftbench.report.collect import Run, collect
from ftbench.report.rows import group_rows
from ftbench.report.tables import unfinished
from ftbench.results.sweeps import sweeps

COLUMNS = ["task", "strategy", "seeds", "test_acc", "test_acc_low", "test_acc_high", "to_best",
           "to_best_low", "to_best_high", "verdict", "unstable", "failed", "best", "recommended",
           "best_share", "cost_flops", "margin", "confidence"]


def candidates(runs: list[Run]) -> tuple[dict[str, list[Run]], dict[str, float | None], Counter]:
    """What the report judges: completed runs per strategy, the cost it recommends by, and the
    runs that did not finish (which mark a strategy unstable)."""
    if tuned.is_tuned_sweep(runs):
        runs = tuned.without_retried(runs)
        items = tuned.tunings(runs)
        failed = Counter(r.strategy for r in runs if tuned.phase(r) == tuned.TUNED and unfinished(r))
        return ({t.strategy: t.tuned_runs for t in items if t.tuned_runs},
                {t.strategy: t.total_flops() for t in items}, failed)
    rows = group_rows(runs)
    failed = Counter(row.label for row in rows for run in row.runs if unfinished(run))
    return ({row.label: [r for r in row.runs if r.completed] for row in rows},
            {row.label: row.mean("cost.train_flops") for row in rows}, failed)


def _frame(result, costs: dict, failed: Counter) -> list[dict]:
    """The adapter: ``verdict.Verdict`` -> one dict per judged strategy."""
    rec = result.recommendation
    return [{"strategy": j.strategy, "seeds": j.seeds, "test_acc": j.accuracy.estimate,
             "test_acc_low": j.accuracy.low, "test_acc_high": j.accuracy.high, "to_best": j.to_best,
             "to_best_low": j.to_best_low, "to_best_high": j.to_best_high, "verdict": j.word,
             "unstable": failed.get(j.strategy, 0) > 0, "failed": failed.get(j.strategy, 0),
             "best": j.strategy == rec.best, "recommended": j.strategy == rec.pick,
             "best_share": j.best_share, "cost_flops": costs.get(j.strategy), "margin": result.margin,
             "confidence": result.confidence} for j in result.strategies]


def judged(root: Path, margin: float | None = None, confidence: float | None = None) -> list[dict]:
    """One sweep folder's verdict rows; none where no run kept its predictions (the report then
    gives no verdict either)."""
    runs = collect(root)
    choice = judgement.settings(runs, {"margin": margin, "confidence": confidence})
    by_strategy, costs, failed = candidates(runs)
    result, _ = judgement.judge(root, by_strategy, costs, choice)
    return [] if result is None else _frame(result, costs, failed)


def verdict(folder: str | os.PathLike, margin: float | None = None,
            confidence: float | None = None) -> pd.DataFrame:
    """Each strategy against the best, as the report judges it: accuracy with its interval over
    seeds and test examples, the difference to the best with its bounds, and the word
    (``equivalent``, ``undecided``, ``worse``); ``recommended`` marks the report's pick.

    ``margin`` and ``confidence`` default to what the runs were configured with
    (``report.margin``), as in ``python -m ftbench.report DIR --margin M``. Rows are best first,
    per task in a suite.
    """
    rows = [{"task": task, **row} for task, root in sweeps(folder)
            for row in judged(root, margin, confidence)]
    return pd.DataFrame.from_records(rows, columns=COLUMNS)
