"""What every plot of the report shares: one colour per strategy, markers per setting of a study
within one strategy, the legend, saving.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ftbench.finetune.strategies import registered  # noqa: E402
from ftbench.report.rows import Row  # noqa: E402
from ftbench.run.atomic import atomic_write  # noqa: E402

PALETTE = matplotlib.color_sequences["tab10"]
GOLDEN = 0.618033988749895  # hue steps that stay apart however many colours are drawn
MARKERS = "osD^vPX*"
ACCURACY = "test accuracy (fraction; mean, interval over seeds and test images)"


def palette_colour(index: int) -> tuple[float, ...]:
    """The ``index``-th colour of a palette without end: tab10's ten, then hues a golden
    ratio apart (each distinct from the ones before)."""
    if index < len(PALETTE):
        return tuple(float(c) for c in matplotlib.colors.to_rgb(PALETTE[index]))
    hue = ((index - len(PALETTE)) * GOLDEN + 0.05) % 1.0
    return tuple(float(c) for c in matplotlib.colors.hsv_to_rgb((hue, 0.55, 0.75)))


def colour(strategy: str):
    """The strategy's colour in every plot: by its place in the registry (one of its own for
    every registered strategy), grey for a name the registry does not know."""
    names = list(registered())
    return palette_colour(names.index(strategy)) if strategy in names else "grey"


def markers(rows: list[Row]) -> dict[int, str]:
    """A marker per row: the n-th setting of a strategy gets the n-th marker."""
    seen: dict[str, int] = {}
    out = {}
    for row in rows:
        out[id(row)] = MARKERS[seen.get(row.strategy, 0) % len(MARKERS)]
        seen[row.strategy] = seen.get(row.strategy, 0) + 1
    return out


def save(fig, path: Path) -> Path:
    """Write ``fig`` to ``path`` (its format from the suffix) atomically: a link at ``path`` is
    replaced, not written through; the folder is the caller's (``ftbench.report.output``)."""
    path = Path(path)
    try:
        if fig.get_layout_engine() is None:  # a figure made with its own layout keeps it
            fig.tight_layout()
        atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, format=path.suffix.lstrip(".") or "png"))
    finally:
        plt.close(fig)
    return path


def log_x_plot(fig, ax, path: Path, **labels: str) -> Path:
    """Finish and save a plot of a log-scale x axis with a legend inside (``labels``: ``xlabel``,
    ``ylabel``, ``title``)."""
    ax.set(xscale="log", **labels)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return save(fig, path)


def legend(ax, many: bool) -> None:
    if many:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    else:
        ax.legend(fontsize=8, loc="best")
