"""The report's plot of accuracy under distribution shift: in-distribution against shifted."""

from __future__ import annotations

from pathlib import Path

from ftbench.report.escape import plot_text
from ftbench.report.readings import shift_mean, test_acc
from ftbench.report.rows import Row
from ftbench.report.style import ACCURACY, colour, legend, markers, plt, save


def pooled_shift_ratio(rows: list[Row]) -> float | None:
    """Shifted over in-distribution accuracy, pooled over every run that has both: the share of
    its accuracy a strategy would keep if shift cost every strategy the same share."""
    pairs = [(acc, shifted) for row in rows for run in row.runs
             if (acc := test_acc(run.result)) is not None and (shifted := shift_mean(run.result)) is not None]
    total = sum(acc for acc, _ in pairs)
    return sum(shifted for _, shifted in pairs) / total if total > 0 else None


def _padded(low: float, high: float) -> tuple[float, float]:
    pad = max(0.02, 0.1 * (high - low))
    return max(0.0, low - pad), min(1.0, high + pad)


def accuracy_under_shift(rows: list[Row], path: Path) -> Path | None:
    """In-distribution test accuracy (x) against mean shifted accuracy (y), mean and interval;
    above the dashed line of the pooled ratio a strategy is effectively robust (docs/shift.md)."""
    placed = [(row, x, y) for row in rows
              if (x := row.mean(test_acc)) is not None and (y := row.mean(shift_mean)) is not None]
    ratio = pooled_shift_ratio([row for row, _, _ in placed])
    if not placed or ratio is None:
        return None
    marker = markers([row for row, _, _ in placed])
    fig, ax = plt.subplots(figsize=(8.5, 4.8))
    xs, ys = [], []
    for row, x, y in placed:
        dx, dy = row.error_bar(test_acc), row.error_bar(shift_mean)
        ax.errorbar(x, y, xerr=dx, yerr=dy, fmt=marker[id(row)], color=colour(row.strategy),
                    capsize=4, markersize=7, label=plot_text(f"{row.label} (n={len(row.runs)})"))
        xs += [x - dx[0][0], x + dx[1][0]]
        ys += [y - dy[0][0], y + dy[1][0]]
    ax.plot([0, 1], [0, ratio], "--", color="black", linewidth=1, zorder=0,
            label=f"same share kept: shifted = {ratio:.3f} × in-distribution")
    ax.plot([0, 1], [0, 1], ":", color="grey", linewidth=1, zorder=0, label="no loss under shift")
    ax.set_xlim(*_padded(min(xs), max(xs)))
    ax.set_ylim(*_padded(min(ys + [ratio * min(xs)]), max(ys + [ratio * max(xs)])))
    ax.set(xlabel="in-distribution " + ACCURACY,
           ylabel="mean accuracy over the corruptions (interval over seeds and test images)",
           title="Accuracy under shift (above the dashed line: effectively robust)")
    ax.grid(alpha=0.3)
    legend(ax, many=True)  # beside the axes: the points sit where a legend inside would go
    return save(fig, path)
