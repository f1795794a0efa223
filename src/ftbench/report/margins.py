"""The answer at every margin: for each margin, the cheapest strategy the data show equivalent to
the best, and what it costs relative to the best; one verdict answers every margin, through each
strategy's ``within`` (``verdict.Judged``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ftbench.report import fmt
from ftbench.report.escape import md
from ftbench.stats.verdict import Judged, Verdict

TABLE_MARGINS = (0.005, 0.01, 0.02, 0.05)  # half a point, one, two and five


@dataclass(frozen=True)
class AtMargin:
    """At ``margin``: the cheapest strategy shown equivalent to the best (None: none is) and its
    cost relative to the best's (None where either has no cost)."""

    margin: float
    strategy: str | None
    relative_cost: float | None


def candidates(verdict: Verdict, costs: Mapping[str, float | None]) -> list[Judged]:
    """The strategies that may be recommended (measured, stable, priced), cheapest first."""
    return sorted((j for j in verdict.strategies if j.caveat is None and j.within is not None
                   and costs.get(j.strategy) is not None),
                  key=lambda j: (costs[j.strategy], -j.accuracy.estimate, j.strategy))


def shown_within(judged: Judged, margin: float) -> bool:
    """Whether the data show ``judged`` equivalent to the best at ``margin``."""
    return judged.within is not None and (judged.within < margin or judged.within == 0 < margin)


def relative_cost(verdict: Verdict, costs: Mapping[str, float | None], strategy: str) -> float | None:
    best = costs.get(verdict.recommendation.best)
    cost = costs.get(strategy)
    return None if cost is None or not best else cost / best


def at(verdict: Verdict, costs: Mapping[str, float | None], margin: float) -> AtMargin:
    pick = next((j.strategy for j in candidates(verdict, costs) if shown_within(j, margin)), None)
    return AtMargin(margin, pick, None if pick is None else relative_cost(verdict, costs, pick))


def table(verdict: Verdict, costs: Mapping[str, float | None]) -> list[AtMargin]:
    """The answer at half a point, one, two and five points, and at the user's margin."""
    return [at(verdict, costs, m) for m in sorted({*TABLE_MARGINS, verdict.margin})]


def cheapest_vouched(verdict: Verdict, costs: Mapping[str, float | None]) -> Judged | None:
    """The cheapest strategy that may be recommended, cheaper than the pick (any, without one):
    the data vouch for it within its ``within`` of the best."""
    pick = verdict.recommendation.pick
    limit = costs.get(pick) if pick is not None else None
    found = [j for j in candidates(verdict, costs) if limit is None or (costs[j.strategy] or 0.0) < limit]
    return found[0] if found else None


def closest(verdict: Verdict) -> Judged | None:
    """The strategy the data place nearest the best (smallest ``within``), among those that may
    be recommended."""
    found = [j for j in verdict.strategies if j.caveat is None and j.within is not None]
    return min(found, key=lambda j: (j.within, j.strategy)) if found else None


def markdown(verdict: Verdict, costs: Mapping[str, float | None]) -> str:
    def cells(row: AtMargin) -> list[str]:
        cost = "n/a" if row.relative_cost is None else f"{row.relative_cost:.3g}×"
        return [f"{100 * row.margin:g}" + (" (`report.margin`)" if row.margin == verdict.margin else ""),
                md(row.strategy) if row.strategy else "none", cost if row.strategy else ""]

    return fmt.table(["margin (points)", "cheapest strategy shown equivalent to the best",
                      "its cost relative to the best's"], map(cells, table(verdict, costs)))
