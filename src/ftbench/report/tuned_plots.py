"""The tuned comparison's own plots: sensitivity to the LR, and accuracy against total cost."""

from __future__ import annotations

from pathlib import Path

from ftbench.report.escape import plot_text
from ftbench.report.readings import setting
from ftbench.report.style import colour, log_x_plot, plt, save
from ftbench.report.tuned import Tuning, last_val_acc


def sensitivity(items: list[Tuning], path: Path) -> Path | None:
    """Each trial's validation accuracy against its lr, one panel per strategy, lr_decay as colour
    (pruned trials hollow, at the accuracy where they stopped)."""
    shown = [t for t in items if t.trials and "lr" in t.knobs]
    if not shown:
        return None
    cols = min(3, len(shown))
    rows = (len(shown) + cols - 1) // cols
    # constrained layout: tight_layout cannot place a colour bar shared by several axes
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.6 * rows), squeeze=False,
                             layout="constrained")
    lr, lr_decay = setting("strategy", "lr"), setting("strategy", "lr_decay")
    decays = [lr_decay(r.result) or 1.0 for t in shown for r in t.trials]
    low, high = min(decays), max(decays)
    span = (high - low) or 1.0
    cmap = plt.get_cmap("viridis")
    for ax, t in zip(axes.flat, shown, strict=False):
        for run in t.trials:
            acc, rate = last_val_acc(run), lr(run.result)
            if acc is None or rate is None or rate <= 0:
                continue
            shade = cmap(((lr_decay(run.result) or 1.0) - low) / span)
            pruned = run.status == "pruned"
            ax.scatter(rate, acc, s=40, facecolors="none" if pruned else shade, edgecolors=shade,
                       linewidths=1.5)
        ax.set(xscale="log", xlabel="strategy.lr (log scale)", ylabel="validation accuracy")
        ax.set_title(plot_text(t.strategy), color=colour(t.strategy))
        ax.grid(alpha=0.3, which="both")
    for ax in list(axes.flat)[len(shown):]:
        ax.axis("off")
    mappable = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(low, low + span))
    fig.colorbar(mappable, ax=axes.ravel().tolist(), label="strategy.lr_decay (hollow: pruned)")
    fig.suptitle("Sensitivity: every search trial's validation accuracy against its LR")
    return save(fig, path)


def accuracy_against_total_cost(items: list[Tuning], path: Path) -> Path | None:
    """Tuned test accuracy (mean and interval) against the whole search's FLOPs + one final run."""
    shown = [(t, bounds, flops) for t in items
             if (bounds := t.interval("tuned")) and (flops := t.total_flops())]
    if not shown:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for t, bounds, flops in shown:
        below, above = bounds.error_bar()
        ax.errorbar(flops, bounds.mean, yerr=[[below], [above]], fmt="o",
                    color=colour(t.strategy), capsize=4, label=plot_text(f"{t.strategy} (n={bounds.n})"))
    return log_x_plot(fig, ax, path, xlabel="total training FLOPs: the search + one final run (log scale)",
                      ylabel="tuned test accuracy (mean, interval over seeds and test images)",
                      title="What a tuned strategy costs, search included")
