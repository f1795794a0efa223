"""The classical paired table: every pair of strategies over the seeds both ran.

The same seeds give the same data order and initial head, so a paired t-test removes the seed's
share of the spread; Holm corrects over all pairs. It stands beside the verdict
(``ftbench.report.judgement``), which decides: a p-value above alpha says nothing about
equality, and a t-test over seeds leaves out the test set's noise.

The table grows with the square of the strategies compared: above ``MAX_PAIRED`` of them it is
left out with a note.
"""

from __future__ import annotations

from collections.abc import Mapping

from ftbench.report.escape import md
from ftbench.report.fmt import num
from ftbench.report.stats import Paired, all_pairs

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


def compare(by_strategy: Mapping[str, Mapping]) -> str:
    """The paired table for ``by_strategy`` (name -> {seed: test accuracy}), or why it is left out."""
    compared = sum(1 for seeds in by_strategy.values() if seeds)
    if compared > MAX_PAIRED:
        return (f"{compared} strategies compared: a table of every pair would hold "
                f"{compared * (compared - 1) // 2} pairs, so it is left out above {MAX_PAIRED} "
                "strategies; the verdict above compares each strategy with the best.")
    return paired_table(all_pairs(by_strategy))
