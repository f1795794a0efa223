"""Show your work (Dodge et al. 2019): each strategy's expected best validation accuracy after
n = 1 … N search trials, against what those trials cost (n times a completed trial's mean FLOPs).

The expected maximum of n of the N completed trials drawn **without** replacement,
E[max of n] = Σ_i v_(i) · C(i−1, n−1) / C(N, n) with v sorted, is the unbiased estimate, equal to
the observed best at n = N; Dodge et al. draw with replacement (``replacement=True``), which
falls short of it. Both treat the trials as exchangeable, which TPE's are not quite: the curve
reads as "a search of n trials like these" (docs/tuned.md).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ftbench.report.fmt import records_csv, si
from ftbench.report.output import PLOTS_DIR, own_folder
from ftbench.report.tuned import Tuning
from ftbench.run.atomic import write_text

CSV_NAME, PLOT_NAME = "expected_best_validation.csv", "expected_best_validation.png"


def expected_best(values: Sequence[float], n: int, replacement: bool = False) -> float:
    """Expected maximum of ``n`` of ``values`` drawn at random, without replacement (default)
    or with it (Dodge et al. 2019)."""
    ordered, total = sorted(values), len(values)
    if not 1 <= n <= (math.inf if replacement else total) or not total:
        raise ValueError(f"the best of n={n} draws from {total} values")
    if replacement:
        return sum(v * ((i / total) ** n - ((i - 1) / total) ** n) for i, v in enumerate(ordered, 1))
    return sum(v * math.comb(i - 1, n - 1) for i, v in enumerate(ordered, 1)) / math.comb(total, n)


@dataclass
class Curve:
    """One strategy's expected best validation accuracy after 1 … N completed trials."""

    strategy: str
    expected: list[float] = field(default_factory=list)  # index n - 1
    flops_per_trial: float | None = None

    @property
    def final_best(self) -> float | None:
        return self.expected[-1] if self.expected else None

    def search_flops(self, n: int) -> float | None:
        return None if self.flops_per_trial is None else n * self.flops_per_trial

    def trials_within(self, margin: float) -> int | None:
        """The fewest trials whose expected best lies within ``margin`` of the final best."""
        best = self.final_best
        return None if best is None else next(
            n for n, value in enumerate(self.expected, 1) if value >= best - margin - 1e-12)


def curve(t: Tuning) -> Curve:
    values = t.val_accuracies()
    flops = [f for r in t.trials
             if r.status == "completed" and (f := r.result.cost.train_flops) is not None]
    return Curve(t.strategy, [expected_best(values, n) for n in range(1, len(values) + 1)],
                 statistics.fmean(flops) if flops else None)


def records(curves: list[Curve]) -> list[dict]:
    return [{"strategy": c.strategy, "trials": n, "expected_best_val_acc": value,
             "search_flops": c.search_flops(n)} for c in curves for n, value in enumerate(c.expected, 1)]


def line(c: Curve, planned: int | None, margin: float) -> str:
    if not c.expected:
        return f"- `{c.strategy}`: no completed trial."
    n = c.trials_within(margin)
    assert n is not None and c.final_best is not None  # a curve with trials has both
    cost = c.search_flops(n)
    return (f"- `{c.strategy}`: {n} of {len(c.expected)} completed trials"
            + (f" (of {planned} run)" if planned and planned != len(c.expected) else "")
            + f" to come within {margin:g} of its final best validation accuracy ({c.final_best:.4f})"
            + (f", about {si(cost, 'FLOP')} of search" if cost is not None else "") + ".")


def plot(curves: list[Curve], path: Path) -> Path | None:
    from ftbench.report.escape import plot_text
    from ftbench.report.style import colour, log_x_plot, plt

    shown = [c for c in curves if c.expected and c.flops_per_trial]
    if not shown:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for c in shown:
        xs = [n * (c.flops_per_trial or 0.0) for n in range(1, len(c.expected) + 1)]
        ax.plot(xs, c.expected, "o-", color=colour(c.strategy), markersize=4,
                label=plot_text(f"{c.strategy} ({len(c.expected)} trials)"))
    return log_x_plot(fig, ax, path, xlabel="search FLOPs of n trials (n × a completed trial's; log scale)",
                      ylabel="expected best validation accuracy",
                      title="Expected best validation accuracy after n trials (Dodge et al. 2019)")


@dataclass
class Section:
    markdown: str
    paths: dict[str, Path]


def section(root: Path, items: list[Tuning], margin: float) -> Section:
    """The tuned report's "Tuning cost" section; writes its CSV and plot into ``root``."""
    curves = [curve(t) for t in items]
    paths = {CSV_NAME: root / CSV_NAME}
    write_text(paths[CSV_NAME], records_csv(
        records(curves), ["strategy", "trials", "expected_best_val_acc", "search_flops"]))
    folder = own_folder(root / PLOTS_DIR)
    drawn = plot(curves, folder / PLOT_NAME) if folder is not None else None
    title = "Expected best validation accuracy against search cost"
    if drawn is not None:
        paths[title] = drawn
    planned = {t.strategy: len(t.trials) for t in items}
    text = "\n".join([
        "## Tuning cost: expected best validation accuracy after n trials",
        "",
        "How many trials each strategy's search needed (Dodge et al. 2019): the expected best "
        "validation accuracy of n trials drawn at random, without replacement, from its completed "
        "trials (the unbiased estimate; it equals the observed best at n = all), against n times a "
        f"completed trial's training FLOPs. Per strategy, the trials it needed to come within the "
        f"margin ({margin:g}) of its final best — a strategy cheap to train may still be dear to "
        f"tune. Every value: [`{CSV_NAME}`]({CSV_NAME}).",
        "",
        *[line(c, planned[c.strategy], margin) for c in curves],
        *([] if drawn is None else ["", f"![{title}]({drawn.relative_to(root)})"])])
    return Section(text, paths)
