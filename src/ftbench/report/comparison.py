"""Which differences between strategies are real, and which strategy to pick.

Strategies are compared in pairs over the seeds both ran (the same seeds give the same data
order and initial head, so a paired test removes the seed's share of the spread), with
Holm's correction over all pairs for the table. The recommendation is the cheapest strategy
whose accuracy is not significantly below the most accurate one's, each strategy tested
against that one, Holm-corrected over those comparisons only.

The table of every pair grows with the square of the strategies compared: above
``MAX_PAIRED`` of them it is left out with a note, and the recommendation (one test per
strategy) stands alone.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping

from ftbench.report.escape import md
from ftbench.report.fmt import num, si
from ftbench.report.stats import ALPHA, Paired, against, all_pairs

MAX_PAIRED = 30  # 435 pairs: beyond, a table of every pair is neither computed nor read


def paired_table(pairs: list[Paired]) -> str:
    if not pairs:
        return "Fewer than two strategies: nothing to compare."
    lines = ["| A | B | seeds | mean difference (A − B) | t | p | p (Holm) | significant |",
             "|---|---|---|---|---|---|---|---|"]
    for p in pairs:
        verdict = "n/a (fewer than 2 shared seeds)" if p.p is None else (
            f"**yes**, {'A' if p.mean_difference > 0 else 'B'} better" if p.significant else "no")
        lines.append(f"| {md(p.a)} | {md(p.b)} | {len(p.seeds)} | {num(p.mean_difference, '+.4f')} "
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
    untested = {s for s, pair in tested.items() if pair.p is None}
    candidates = [s for s in means if (s == best or (s not in untested and not tested[s].significant))
                  and costs.get(s) is not None]
    cheapest = min(candidates, key=lambda s: costs[s]) if candidates else best
    n = min((len(v) for v in by_strategy.values() if v), default=0)
    caveat = (f" ({len(untested)} strategies could not be tested against it: fewer than 2 shared "
              "seeds; run more seeds)" if untested else "")
    pick, best_name = md(cheapest), md(best)
    if cheapest == best:
        return (f"**Recommendation: {best_name}** — the most accurate (mean test accuracy {means[best]:.4f}, "
                f"n={n}), and no cheaper strategy comes within the noise of it ({cost_name}: "
                f"{si(costs.get(best), 'FLOP')}){caveat}.")
    return (f"**Recommendation: {pick}** — the cheapest strategy ({cost_name}: "
            f"{si(costs[cheapest], 'FLOP')}, against {si(costs.get(best), 'FLOP')} for {best_name}) whose "
            f"test accuracy ({means[cheapest]:.4f}) is not significantly below the best ({best_name}, "
            f"{means[best]:.4f}; paired t-tests against it over n={n} seeds, Holm-corrected over "
            f"those {len(tested)}, α={ALPHA}){caveat}.")


def compare(by_strategy: Mapping[str, Mapping], costs: Mapping[str, float | None],
            cost_name: str) -> tuple[str, str]:
    """(the recommendation sentence, the paired table) for ``by_strategy``: name -> {seed: acc}."""
    advice = recommendation(by_strategy, costs, cost_name)
    compared = sum(1 for seeds in by_strategy.values() if seeds)
    if compared > MAX_PAIRED:
        return advice, (f"{compared} strategies compared: a table of every pair would hold "
                        f"{compared * (compared - 1) // 2} pairs, so it is left out above {MAX_PAIRED} "
                        "strategies. The recommendation above tests each strategy against the most "
                        "accurate one; compare fewer strategies (or settings) for the full table.")
    return advice, paired_table(all_pairs(by_strategy))
