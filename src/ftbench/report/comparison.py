"""Which differences between strategies are real, and which strategy to pick.

Strategies are compared in pairs over the seeds both ran (the same seeds give the same data
order and initial head, so a paired test removes the seed's share of the spread), with
Holm's correction over all pairs for the table. The recommendation is the cheapest strategy
whose accuracy is not significantly below the most accurate one's, each strategy tested
against that one, Holm-corrected over those comparisons only.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping

from ftbench.report.fmt import num, si
from ftbench.report.stats import ALPHA, Paired, against, all_pairs


def paired_table(pairs: list[Paired]) -> str:
    if not pairs:
        return "Fewer than two strategies: nothing to compare."
    lines = ["| A | B | seeds | mean difference (A − B) | t | p | p (Holm) | significant |",
             "|---|---|---|---|---|---|---|---|"]
    for p in pairs:
        verdict = "n/a (fewer than 2 shared seeds)" if p.p is None else (
            f"**yes**, {'A' if p.mean_difference > 0 else 'B'} better" if p.significant else "no")
        lines.append(f"| {p.a} | {p.b} | {len(p.seeds)} | {num(p.mean_difference, '+.4f')} "
                     f"| {num(p.t, '.2f')} | {num(p.p, '.3g')} | {num(p.p_holm, '.3g')} | {verdict} |")
    return "\n".join(lines)


def recommendation(by_strategy: Mapping[str, Mapping], costs: Mapping[str, float | None],
                   cost_name: str) -> str:
    """One sentence: the cheapest strategy not significantly below the most accurate one."""
    means = {s: statistics.fmean(v.values()) for s, v in by_strategy.items() if v}
    if not means:
        return "No strategy completed: nothing to recommend."
    best = max(means, key=means.get)
    tested = against(best, {s: by_strategy[s] for s in means})
    untested = [s for s, pair in tested.items() if pair.p is None]
    candidates = [s for s in means if (s == best or (s not in untested and not tested[s].significant))
                  and costs.get(s) is not None]
    pick = min(candidates, key=lambda s: costs[s]) if candidates else best
    n = min((len(v) for v in by_strategy.values() if v), default=0)
    caveat = (f" ({len(untested)} strategies could not be tested against it: fewer than 2 shared "
              "seeds; run more seeds)" if untested else "")
    if pick == best:
        return (f"**Recommendation: {best}** — the most accurate (mean test accuracy {means[best]:.4f}, "
                f"n={n}), and no cheaper strategy comes within the noise of it ({cost_name}: "
                f"{si(costs.get(best), 'FLOP')}){caveat}.")
    return (f"**Recommendation: {pick}** — the cheapest strategy ({cost_name}: "
            f"{si(costs[pick], 'FLOP')}, against {si(costs.get(best), 'FLOP')} for {best}) whose "
            f"test accuracy ({means[pick]:.4f}) is not significantly below the best ({best}, "
            f"{means[best]:.4f}; paired t-tests against it over n={n} seeds, Holm-corrected over "
            f"those {len(tested)}, α={ALPHA}){caveat}.")


def compare(by_strategy: Mapping[str, Mapping], costs: Mapping[str, float | None],
            cost_name: str) -> tuple[str, str]:
    """(the recommendation sentence, the paired table) for ``by_strategy``: name -> {seed: acc}."""
    pairs = all_pairs(by_strategy)
    return recommendation(by_strategy, costs, cost_name), paired_table(pairs)
