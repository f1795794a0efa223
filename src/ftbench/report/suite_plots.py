"""The plot of the report across tasks: accuracy against relative training cost, one point per strategy.

Accuracy is each task's test accuracy minus that task's best, so that tasks of different
difficulty can be averaged (0: the best on every task); error bars run over tasks.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from ftbench.report.across import CrossTask
from ftbench.report.style import colour, legend, plt, save


def accuracy_against_relative_cost(cross: CrossTask, path: Path) -> Path | None:
    points = [(s, cost) for s in cross.summaries.values() if s.gaps and (cost := s.relative_cost) is not None]
    if not points:
        return None
    fig, ax = plt.subplots(figsize=(6.8, 4.5))
    ax.axhspan(-cross.margin, 0.0, color="green", alpha=0.08, zorder=0,
               label=f"within the margin ({cross.margin:g}) of the best")
    for summary, x in points:
        y = statistics.fmean(summary.gaps)
        # equal ratios give a geometric mean a rounding away from them: no bar below zero
        xerr = [[max(0.0, x - min(summary.relative_costs))], [max(0.0, max(summary.relative_costs) - x)]]
        yerr = statistics.stdev(summary.gaps) if len(summary.gaps) > 1 else 0.0
        ax.errorbar(x, y, xerr=xerr, yerr=yerr, fmt="o", color=colour(summary.strategy), capsize=4,
                    markersize=7, label=f"{summary.strategy} ({len(summary.gaps)} tasks)")
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))  # 0.1×, 0.2×, 0.5×, 1×
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:.2g}×"))  # a ratio, not 10^-1
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set(xlabel=f"training FLOPs relative to {cross.reference} (geometric mean over tasks; bars: "
           "min to max)", ylabel="test accuracy − the task's best (mean ± sd over tasks)",
           title=f"Accuracy against relative cost across {len(cross.tasks)} tasks")
    ax.grid(alpha=0.3, which="both")
    legend(ax, many=len(points) > 6)
    return save(fig, Path(path))
