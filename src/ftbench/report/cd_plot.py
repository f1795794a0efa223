"""The critical-difference diagram of a ``Ranking`` (Demšar 2006, Figure 1(a)), drawn by
scikit-posthocs from the ranking's own pairs, so it cannot disagree with the report's text
(docs/suites.md). scikit-posthocs is imported only when a diagram is drawn: it takes seconds."""

from __future__ import annotations

from pathlib import Path

from matplotlib import transforms

from ftbench.report.style import colour, plt, save
from ftbench.stats.ranks import Ranking


def plot_cd_diagram(ranking: Ranking, path: Path) -> Path | None:
    """Draw ``ranking``'s critical-difference diagram to ``path`` (a PNG); None when it has no test
    (too few tasks or strategies: ``ranking.note`` says why)."""
    if ranking.cd is None:
        return None
    import pandas as pd
    import scikit_posthocs as sp

    names = list(ranking.strategies)
    # scikit-posthocs reads entries below alpha as "different"; 0 and 1 sit on either side of it
    apart = pd.DataFrame([[0.0 if ranking.different(a, b) else 1.0 for b in names] for a in names],
                         index=names, columns=names)
    fig, ax = plt.subplots(figsize=(7, 1.2 + 0.3 * len(names)), layout="constrained")
    sp.critical_difference_diagram(
        ranking.average_ranks, apart, alpha=ranking.alpha, ax=ax, label_fmt_left="{label} ({rank:.2f})",
        label_fmt_right="({rank:.2f}) {label}", label_props={"fontsize": 9},
        color_palette={name: colour(name) for name in names})
    _cd_bar(ax, min(ranking.average_ranks.values()), ranking.cd)
    ax.set_title(f"Average rank over {len(ranking.tasks)} tasks (1 = best); Nemenyi CD at alpha = "
                 f"{ranking.alpha:g}", fontsize=9, pad=34)
    return save(fig, Path(path))


def _cd_bar(ax, start: float, cd: float) -> None:
    """A bar one CD long from the best average rank ``start``, placed in points above the axis
    (not in data units), so the tick labels never cover it whatever the number of strategies."""
    above = transforms.offset_copy(ax.transData, fig=ax.figure, y=20, units="points")
    ax.plot([start, start + cd], [0, 0], color="k", linewidth=2, transform=above, clip_on=False)
    ax.text(start + cd / 2, 0, f"CD = {cd:.2f}", ha="center", va="bottom", fontsize=8,
            transform=transforms.offset_copy(ax.transData, fig=ax.figure, y=23, units="points"))
