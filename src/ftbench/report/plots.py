"""The report's plots, as PNG files drawn with matplotlib's Agg backend (no display needed).

Above ``MAX_PLOTTED`` rows no plot is drawn (nothing tells that many apart); a plot that fails
is left out with its traceback logged.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

from matplotlib.ticker import EngFormatter, Formatter, FuncFormatter, MaxNLocator

from ftbench.report.collect import Run
from ftbench.report.escape import plot_text
from ftbench.report.readings import Reading, setting, test_acc, train_flops, train_seconds
from ftbench.report.rows import Row, study_series
from ftbench.report.shift_plot import accuracy_under_shift
from ftbench.report.style import ACCURACY, colour, plt
from ftbench.report.style import legend as _legend
from ftbench.report.style import markers as _markers
from ftbench.report.style import save as _save
from ftbench.report.training_plots import drift_by_group, group_learning_rates, learning_curves

log = logging.getLogger("ftbench")
MAX_PLOTTED = 50


def _accuracy_axis(ax) -> None:
    """Accuracy lies in [0, 1]: a wide interval over few seeds must not stretch the axis past it."""
    low, high = ax.get_ylim()
    ax.set_ylim(max(low, 0.0), min(high, 1.0))


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both cost (lower) and accuracy (higher)."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], float("-inf")
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def accuracy_against_cost(rows: list[Row], cost: Reading, unit: str, xlabel: str,
                          path: Path, formatter: Formatter | None = None) -> Path | None:
    placed = [(row, x, y) for row in rows
              if (x := row.mean(cost)) is not None and (y := row.mean(test_acc)) is not None]
    if not placed:
        return None
    markers = _markers([row for row, _, _ in placed])
    fig, ax = plt.subplots(figsize=(7.5 if len(placed) > 8 else 6.5, 4.5))
    points = []
    for row, x, y in placed:
        ax.errorbar(x, y, yerr=row.error_bar(), fmt=markers[id(row)],
                    color=colour(row.strategy), capsize=4, markersize=7,
                    label=plot_text(f"{row.label} (n={len(row.runs)})"))
        points.append((x, y))
    front = pareto_front(points)
    ax.plot([points[i][0] for i in front], [points[i][1] for i in front], "--", color="black",
            linewidth=1, zorder=0, label="Pareto front")
    ax.scatter([points[i][0] for i in front], [points[i][1] for i in front], s=200,
               facecolors="none", edgecolors="black", linewidths=1, zorder=0)
    ax.xaxis.set_major_formatter(formatter or EngFormatter(unit=unit))  # 500 MFLOP, 2 GFLOP, 30 s
    ax.xaxis.set_major_locator(MaxNLocator(nbins=6))  # few enough that the labels never touch
    ax.set(xlabel=xlabel, ylabel=ACCURACY, title=f"Test accuracy against {xlabel}")
    _accuracy_axis(ax)
    ax.grid(alpha=0.3)
    _legend(ax, many=len(placed) > 8)
    return _save(fig, path)


def accuracy_against_setting(rows: list[Row], name: str, x: Reading, xlabel: str, path: Path,
                             log_x: bool = False) -> Path | None:
    """Accuracy along the study setting ``name``, one line per strategy and every other setting;
    drawn only when it varies alone somewhere (``rows.confounded_note`` says when not)."""
    series = [sorted((r for r in members if r.mean(x) is not None and r.mean(test_acc) is not None),
                     key=lambda r: r.mean(x) or 0.0)
              for members in study_series(rows, name).values()]
    series = [s for s in series if len({json.dumps(r.setting[name]) for r in s}) > 1]
    if not series:
        return None
    markers = _markers([s[0] for s in series])
    fig, ax = plt.subplots(figsize=(7.5 if len(series) > 4 else 6.5, 4.5))
    for members in series:
        first = members[0]
        others = " ".join(f"{k}={v}" for k, v in first.setting.items() if k != name)
        ns = sorted({r.n() for r in members})
        ax.errorbar([r.mean(x) or 0.0 for r in members], [r.mean(test_acc) or 0.0 for r in members],
                    yerr=[[r.error_bar()[0][0] for r in members], [r.error_bar()[1][0] for r in members]],
                    marker=markers[id(first)], capsize=4, color=colour(first.strategy),
                    label=plot_text(f"{' '.join([first.strategy, others]).strip()} "
                                    f"(n={'/'.join(str(n) for n in ns)})"))
    if log_x:
        ax.set_xscale("log")
    ax.set(xlabel=xlabel, ylabel=ACCURACY, title=f"Test accuracy against {xlabel.split(' (')[0]}")
    _accuracy_axis(ax)
    ax.grid(alpha=0.3, which="both")
    _legend(ax, many=len(series) > 4)
    return _save(fig, path)


def confusion_matrix(run: Run, path: Path) -> Path | None:
    """The test confusion matrix of one run, rows the true class, as shares of each row."""
    matrix = run.result.metrics.confusion_matrix  # a square table of counts (the result contract)
    if not matrix:
        return None
    names = run.result.data.classes or []
    names = ([plot_text(n) for n in names] if len(names) == len(matrix)
             else [str(i) for i in range(len(matrix))])
    shares = [[c / max(1, sum(line)) for c in line] for line in matrix]
    size = min(12.0, 3.0 + 0.35 * len(names))
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    if len(names) <= 30:
        ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
        ax.set_yticks(range(len(names)), names, fontsize=7)
        if len(names) <= 12:
            for i, line in enumerate(matrix):
                for j, count in enumerate(line):
                    ax.text(j, i, str(count), ha="center", va="center", fontsize=7,
                            color="white" if shares[i][j] > 0.5 else "black")
    ax.set(xlabel="predicted class", ylabel="true class",
           title=plot_text(f"Test confusion matrix: {run.strategy} (seed {run.result.seed})"))
    fig.colorbar(image, ax=ax, label="share of the true class")
    return _save(fig, path)


def _trained(groups, names: list[str]) -> tuple[tuple, str]:
    """A surgical setting's place on the x axis (probe, single groups bottom to top, combinations,
    full) and its tick label; groups may be named or indexed, as ``strategy.groups`` allows."""
    if groups == "all":
        return (3,), "all (full)"
    if not groups:
        return (0,), "none (probe)"
    if not isinstance(groups, list) or not names:
        return (4, str(groups)), plot_text(groups)
    picked = sorted(names.index(g) if g in names else g % len(names) if type(g) is int else -1
                    for g in groups)
    label = "+".join(names[i] if i >= 0 else "?" for i in picked)
    return (1 if len(picked) == 1 else 2, picked), plot_text(label)


def accuracy_by_trained_group(rows: list[Row], path: Path) -> Path | None:
    """The surgical study: test accuracy against the backbone group that trained with the head."""
    rows = [r for r in rows
            if r.strategy == "surgical" and "groups" in r.setting and r.mean(test_acc) is not None]
    if len(rows) < 2:
        return None
    names = [g.name or "?" for g in rows[0].runs[0].result.groups[:-1]]
    placed = sorted(((*_trained(r.setting["groups"], names), r) for r in rows), key=lambda t: t[0])
    fig, ax = plt.subplots(figsize=(max(6.5, 0.6 * len(placed) + 2.5), 4.5))
    for x, (_, label, row) in enumerate(placed):
        reference = label.endswith(("(probe)", "(full)"))
        ax.errorbar(x, row.mean(test_acc) or 0.0, yerr=row.error_bar(),
                    fmt="s" if reference else "o", capsize=4, markersize=7, color=colour("surgical"),
                    markerfacecolor="white" if reference else colour("surgical"))
    ax.set_xticks(range(len(placed)), [label for _, label, _ in placed], rotation=30, ha="right")
    seeds = "/".join(map(str, sorted({len(r.runs) for _, _, r in placed})))
    ax.set(xlabel="backbone group trained with the head (input → output); hollow: references",
           ylabel=ACCURACY, title=f"Surgical fine-tuning: which group to train (n={seeds} seeds)")
    _accuracy_axis(ax)
    ax.grid(alpha=0.3, axis="y")
    return _save(fig, path)


def draw_all(rows: list[Row], out_dir: Path) -> dict[str, Path]:
    """Every plot the runs allow, by title; a plot without data is not drawn, and one that
    fails on malformed data is left out with a warning rather than taking the report down."""
    plots = {
        "Accuracy against training FLOPs": lambda: accuracy_against_cost(
            rows, train_flops, "FLOP", "training compute", out_dir / "accuracy_vs_flops.png"),
        "Accuracy against training time": lambda: accuracy_against_cost(
            rows, train_seconds, "s", "training wall-clock", out_dir / "accuracy_vs_time.png"),
        "Accuracy under shift": lambda: accuracy_under_shift(rows, out_dir / "accuracy_under_shift.png"),
        "Accuracy against training memory": lambda: accuracy_against_cost(
            rows, lambda r: r.cost.train_memory_mb, "MB", "training memory",
            out_dir / "accuracy_vs_memory.png",
            FuncFormatter(lambda mb, _: f"{mb:,.0f} MB")),  # MB of 2**20 bytes, as in the table
        "Validation learning curves": lambda: learning_curves(rows, out_dir / "learning_curves.png"),
        "Per-group learning rates": lambda: group_learning_rates(rows, out_dir / "group_lrs.png"),
        "Drift from the pretrained weights": lambda: drift_by_group(rows, out_dir / "drift.png"),
        "Accuracy against training-set size": lambda: accuracy_against_setting(
            rows, "train_fraction", lambda r: r.data.train_size, "training-set size (images, log scale)",
            out_dir / "accuracy_vs_train_size.png", log_x=True),
        "Accuracy against lr_decay": lambda: accuracy_against_setting(
            rows, "lr_decay", setting("strategy", "lr_decay"),
            "lr_decay (LR ratio between neighbouring groups)",
            out_dir / "accuracy_vs_lr_decay.png"),
        "Accuracy by the group that trained (surgical)": lambda: accuracy_by_trained_group(
            rows, out_dir / "accuracy_by_trained_group.png"),
    }
    done = [run for row in rows for run in row.runs]
    if len(done) == 1:  # one run: which classes it confuses
        plots["Test confusion matrix"] = lambda: confusion_matrix(done[0], out_dir / "confusion_matrix.png")
    return draw_each(plots)


def too_many(count: int) -> str | None:
    """Why no plot is drawn for ``count`` rows (or strategies), or None if they are few enough."""
    if count <= MAX_PLOTTED:
        return None
    return (f"{count} rows: no plot is drawn above {MAX_PLOTTED}, as no colour, marker or legend "
            "tells that many apart; report.csv holds every row.")


def draw_each(plots: dict[str, Callable[[], Path | None]]) -> dict[str, Path]:
    """Draw every plot, by title; one that draws nothing is left out. The results were read
    and checked before (``ftbench.run.result``): a plot that fails here is a bug in drawing
    it, logged with its traceback, and left out rather than taking the report down."""
    drawn = {}
    for title, draw in plots.items():
        try:
            path = draw()
        except Exception:
            plt.close("all")
            log.exception("plot %r not drawn (a bug in ftbench's plotting, not in the results)", title)
            continue
        if path is not None:
            drawn[title] = path
    return drawn
