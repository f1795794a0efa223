"""The answer at every margin, drawn: the cheapest strategy shown equivalent to the best against
the margin, as its cost relative to the best's."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ftbench.report import margins
from ftbench.report.escape import plot_text
from ftbench.report.style import colour, plt, save
from ftbench.stats.verdict import Verdict

FILE = "margin_vs_cost.png"
TITLE = "The cheapest strategy at every margin"


def margin_against_cost(result: Verdict, costs: Mapping[str, float | None], path: Path) -> Path | None:
    """Each strategy that may be recommended at its ``within`` (x, points) and relative cost (y);
    the step line is the cheapest shown equivalent at each margin; the dotted line the user's."""
    shown = [(j.strategy, j.within, ratio) for j in margins.candidates(result, costs)
             if j.within is not None
             and (ratio := margins.relative_cost(result, costs, j.strategy)) is not None]
    if not shown:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for strategy, within, ratio in shown:
        ax.scatter(100 * within, ratio, s=50, color=colour(strategy), zorder=3,
                   label=plot_text(f"{strategy} (within {100 * within:.1f})"))
    edges = sorted({0.0, *(100 * within for _, within, _ in shown)})
    reach = max(edges[-1] * 1.15, 100 * result.margin * 1.5, 1.0)
    xs, ys = [], []
    for low, high in zip(edges, [*edges[1:], reach], strict=True):
        best = margins.at(result, costs, (low + high) / 200)  # the answer between two strategies' within
        if best.relative_cost is not None:
            xs += [low, high]
            ys += [best.relative_cost] * 2
    ax.plot(xs, ys, "-", color="black", linewidth=1, zorder=2, label="cheapest shown equivalent")
    ax.axvline(100 * result.margin, linestyle=":", color="grey", label="report.margin")
    ax.set(yscale="log", xlabel=f"margin (points of accuracy; {result.confidence:.0%}, joint over the "
           "strategies)", ylabel="cost relative to the best's (log scale)", title=TITLE)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return save(fig, path)


def draw(result: Verdict | None, costs: Mapping[str, float | None], folder: Path) -> dict[str, Path]:
    """The plot by title, when there is a verdict with costs to draw."""
    from ftbench.report.plots import draw_each

    if result is None:
        return {}
    return draw_each({TITLE: lambda: margin_against_cost(result, costs, folder / FILE)})
