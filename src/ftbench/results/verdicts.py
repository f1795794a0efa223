"""``verdict(folder)``: the report's verdict, one row per strategy (and task), as a DataFrame.

The verdict is the report's own (``ftbench.report.render.folder_verdict``: the same screened
runs, candidates, costs, failed runs and bootstrap), so the frame and ``report.md`` cannot
disagree. ``_frame`` is the one place that reads the
verdict's internals.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from ftbench.report import render
from ftbench.report.writing import screened_runs
from ftbench.results.sweeps import sweeps
from ftbench.stats.verdict import Verdict

COLUMNS = ["task", "strategy", "seeds", "test_acc", "test_acc_low", "test_acc_high", "to_best",
           "to_best_low", "to_best_high", "within", "verdict", "caveat", "unstable", "failed", "best",
           "recommended", "best_share", "cost_flops", "margin", "confidence"]


def _frame(result: Verdict, costs: Mapping[str, float | None], failed: Mapping[str, int]) -> list[dict]:
    """The adapter: ``verdict.Verdict`` -> one dict per judged strategy."""
    rec = result.recommendation
    leaders = set(rec.leaders) or {rec.best}
    return [{"strategy": j.strategy, "seeds": j.seeds, "test_acc": j.accuracy.estimate,
             "test_acc_low": j.accuracy.low, "test_acc_high": j.accuracy.high, "to_best": j.to_best,
             "to_best_low": j.to_best_low, "to_best_high": j.to_best_high, "within": j.within,
             "verdict": j.word, "caveat": j.caveat, "unstable": failed.get(j.strategy, 0) > 0,
             "failed": failed.get(j.strategy, 0), "best": j.strategy in leaders,
             "recommended": j.strategy == rec.pick, "best_share": j.best_share,
             "cost_flops": costs.get(j.strategy), "margin": result.margin,
             "confidence": result.confidence} for j in result.strategies]


def judged(root: Path, margin: float | None = None, confidence: float | None = None) -> list[dict]:
    """One sweep folder's verdict rows; none where no run kept its predictions (the report then
    gives no verdict either)."""
    runs, choice = screened_runs(root, {"margin": margin, "confidence": confidence})
    result, costs, failed = render.folder_verdict(root, runs, choice)
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
