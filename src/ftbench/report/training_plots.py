"""Plots of how runs trained: validation learning curves, per-group learning rates, drift."""

from __future__ import annotations

import statistics
from pathlib import Path

from matplotlib.colors import to_rgb
from matplotlib.ticker import MaxNLocator

from ftbench.report.collect import Run
from ftbench.report.escape import plot_text
from ftbench.report.rows import Row
from ftbench.report.style import MARKERS, colour, plt
from ftbench.report.style import legend as _legend
from ftbench.report.style import markers as _markers
from ftbench.report.style import save as _save
from ftbench.run.result import number


def _val_acc_by_epoch(runs: list[Run]) -> tuple[list[int], list[float]]:
    """Mean validation accuracy over the runs, per epoch; an entry without both adds nothing."""
    by_epoch: dict[int, list[float]] = {}
    for run in runs:
        for entry in run.result.history:
            value, epoch = entry.val_acc, entry.epoch
            if value is not None and epoch is not None:
                by_epoch.setdefault(epoch, []).append(value)
    epochs = sorted(by_epoch)
    return [e + 1 for e in epochs], [statistics.fmean(by_epoch[e]) for e in epochs]


def learning_curves(rows: list[Row], path: Path) -> Path | None:
    rows = [r for r in rows if r.runs]
    if not rows:
        return None
    markers = _markers(rows)
    fig, ax = plt.subplots(figsize=(7.5 if len(rows) > 8 else 6.5, 4.5))
    for row in rows:
        epochs, acc = _val_acc_by_epoch(row.runs)
        ax.plot(epochs, acc, marker=markers[id(row)], color=colour(row.strategy), label=plot_text(row.label))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="epoch", ylabel="validation accuracy (fraction; mean over seeds)",
           title="Validation accuracy during training")
    ax.grid(alpha=0.3)
    _legend(ax, many=len(rows) > 8)
    return _save(fig, path)


def _shades(strategy: str, n: int) -> list[tuple[float, ...]]:
    """n shades of the strategy's colour, light (stem) to full (head)."""
    base = to_rgb(colour(strategy))
    return [tuple(1 - (1 - c) * (0.25 + 0.75 * i / max(1, n - 1)) for c in base) for i in range(n)]


GROUP_LR_STRATEGIES = ("discriminative", "gradual")  # the ones whose per-group LRs tell a story


def _lr_history(run: Run) -> list[tuple[int, list[float | None]]]:
    """(epoch, the LR of each group) of every history entry that has both."""
    return [(h.epoch, h.lrs) for h in run.result.history if h.epoch is not None and h.lrs is not None]


def group_learning_rates(rows: list[Row], path: Path) -> Path | None:
    """Each group's LR per epoch (first seed of each row); a frozen group draws no line."""
    shown = [r for r in rows if r.strategy in GROUP_LR_STRATEGIES and r.runs and _lr_history(r.runs[0])][:4]
    if not shown:
        return None
    fig, axes = plt.subplots(1, len(shown), figsize=(6.4 * len(shown), 4.2), squeeze=False)
    for ax, row in zip(axes[0], shown, strict=True):
        history = _lr_history(row.runs[0])
        width = max(len(lrs) for _, lrs in history)
        names = [g.name or f"group{i}" for i, g in enumerate(row.runs[0].result.groups)]
        names = names if len(names) == width else [f"group{i}" for i in range(width)]
        epochs = [epoch + 1 for epoch, _ in history]
        for i, (name, shade) in enumerate(zip(names, _shades(row.strategy, len(names)), strict=True)):
            lrs = [lr if i < len(lrs) and (lr := number(lrs[i])) and lr > 0 else float("nan")
                   for _, lrs in history]
            ax.plot(epochs, lrs, marker="o", markersize=4, color=shade, label=plot_text(name))
        ax.set(yscale="log", xlabel="epoch", ylabel="learning rate at epoch start (log scale)",
               title=plot_text(f"{row.label}: per-group LR"))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7, title="group (frozen: no point)", title_fontsize=7,
                  loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    return _save(fig, path)


def drift_by_group(rows: list[Row], path: Path) -> Path | None:
    rows = [r for r in rows if any(run.result.cost.drift for run in r.runs)]
    if not rows:
        return None
    # the new head starts from random weights: its drift is not forgetting, and would dwarf the rest
    names = list(dict.fromkeys(n for row in rows for run in row.runs for n in run.result.cost.drift or {}
                               if n != "head"))
    width = 0.8 / len(rows)
    markers = _markers(rows)
    fig, ax = plt.subplots(figsize=(max(6.5, 0.9 * len(names) + 2), 4.5))
    for k, row in enumerate(rows):
        values = [statistics.fmean([(run.result.cost.drift or {}).get(n) or 0.0 for run in row.runs])
                  for n in names]
        hatch = None if markers[id(row)] == MARKERS[0] else "//"
        ax.bar([i + (k - (len(rows) - 1) / 2) * width for i in range(len(names))], values, width,
               color=colour(row.strategy), hatch=hatch, label=plot_text(row.label))
    ax.set_xticks(range(len(names)), [plot_text(n) for n in names], rotation=30, ha="right")
    ax.set(xlabel="layer group (input → output)", ylabel="relative drift ||w − w0|| / ||w0|| (mean over "
           "seeds)", title="How far each strategy moved the pretrained groups (new head not shown)")
    ax.grid(alpha=0.3, axis="y")
    _legend(ax, many=len(rows) > 8)
    return _save(fig, path)
