"""The report's verdict: each strategy's runs -> their saved predictions -> ``verdict.judge`` -> text.
Runs without a predictions file cannot join it: the section says which, and the rest stands.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from ftbench.report import fmt, margins
from ftbench.report.collect import Run
from ftbench.report.escape import md
from ftbench.report.fmt import num, si
from ftbench.run.predictions import read_predictions
from ftbench.stats import verdict

DEFAULTS = {"margin": 0.01, "confidence": 0.95, "resamples": 2000}


def settings(runs: Sequence[Run], overrides: Mapping[str, float | None] | None = None) -> dict:
    """``report.margin``, ``confidence`` and ``resamples``: given on the report's command line,
    else as the runs were configured (the first run that says), else the defaults."""
    chosen = dict(DEFAULTS)
    for key in DEFAULTS:
        given = (overrides or {}).get(key)
        saved = next((v for r in runs if isinstance(v := r.result.config_at("report", key), int | float)
                      and not isinstance(v, bool)), None)
        chosen[key] = given if given is not None else saved if saved is not None else DEFAULTS[key]
    chosen["resamples"] = int(chosen["resamples"])
    return chosen


def evidence(root: Path, by_strategy: Mapping[str, Sequence[Run]],
             split: str = "test") -> tuple[verdict.Evidence | None, list[str]]:
    """The predictions of every completed run, per strategy and seed, aligned on the examples all
    of them have; and the runs left out (no or unreadable predictions file), as ``dir: reason``."""
    runs: dict[str, dict] = {}
    missing = []
    for strategy, group in by_strategy.items():
        for run in group:
            name = run.result.predictions
            if name is None or "/" in name or name.startswith("."):
                missing.append(f"{run.dir}: no predictions file")
                continue
            try:
                sets = read_predictions(root / run.dir / name)
            except (OSError, ValueError) as err:
                missing.append(f"{run.dir}: {err}")
                continue
            if split in sets:
                p = sets[split]
                runs.setdefault(strategy, {})[run.result.seed] = {"index": p.index, "label": p.label,
                                                                  "pred": p.pred}
    if not runs:
        return None, missing
    return verdict.align(runs), missing


def judge(root: Path, by_strategy: Mapping[str, Sequence[Run]], costs: Mapping[str, float | None],
          choice: Mapping, failed: Mapping[str, int] | None = None,
          judged: Sequence[str] | None = None) -> tuple[verdict.Verdict | None, list[str]]:
    """The verdict of the completed runs ``by_strategy`` (its one bootstrap serves every table and
    plot of the report), and the runs left out for want of predictions. ``failed``: each
    strategy's failed final runs; ``judged``: the strategies compared, if not all (the others
    are only given intervals)."""
    found, missing = evidence(root, by_strategy)
    if found is None:
        return None, missing
    if judged is not None:
        judged = [s for s in judged if s in found.correct]
        if not judged:
            return None, missing
    return verdict.judge(found, costs, margin=choice["margin"], confidence=choice["confidence"],
                         resamples=choice["resamples"], failed=failed, judged=judged), missing


def _points(value: float) -> str:
    return f"{100 * value:.1f} points"


def _within(j: verdict.Judged, confidence: float) -> str:
    assert j.within is not None  # only strategies the data place within some margin are named
    return f"{md(j.strategy)} is shown within {_points(j.within)} of the best ({confidence:.0%})"


def recommendation(result: verdict.Verdict | None, costs: Mapping[str, float | None], cost_name: str) -> str:
    """One sentence: the cheapest strategy practically equivalent to the best at the user's margin,
    and, where no cheaper one passes it, the cheapest the data can vouch for and at what margin."""
    if result is None:
        return "No tested run kept its predictions: no verdict (see the table for each strategy's runs)."
    rec, margin, confidence = result.recommendation, result.margin, result.confidence
    best = result[rec.best]
    tied = " and ".join(md(s) for s in rec.leaders) if len(rec.leaders) > 1 else md(rec.best)
    undecided = "; ".join(d.text() for d in rec.undecided)
    cheaper = margins.cheapest_vouched(result, costs)
    wider = "" if cheaper is None else (
        f" At a wider margin: {_within(cheaper, confidence)}, at "
        f"{_relative(result, costs, cheaper.strategy)} the cost of the best (margin table below).")
    if rec.pick is None:
        closest = margins.closest(result)
        answer = ("" if closest is None else f" {_within(closest, confidence)}."
                  + (wider if cheaper is not None and cheaper is not closest else ""))
        caveat = "" if best.caveat is None else f" (the most accurate, {md(best.strategy)}: {best.caveat})"
        return (f"**No recommendation**: the data cannot name a best at a margin of {_points(margin)}"
                f"{caveat}: "
                f"no strategy that may be recommended is shown practically equivalent to the best ({tied}, "
                f"{best.accuracy.estimate:.4f}).{answer}"
                + (f" Undecided: {undecided}." if undecided else ""))
    pick = result[rec.pick]
    if pick.accuracy.estimate >= best.accuracy.estimate - verdict.TIE:
        sentence = (f"**Recommendation: {md(rec.pick)}** — the most accurate ({pick.accuracy.estimate:.4f}"
                    + (f", tied with {tied}" if len(rec.leaders) > 1 else "") + "), and no cheaper strategy "
                    f"is shown practically equivalent to it at a margin of {_points(margin)}.{wider}")
    else:
        sentence = (f"**Recommendation: {md(rec.pick)}** — the cheapest strategy ({cost_name}: "
                    f"{si(costs.get(rec.pick), 'FLOP')}) whose test accuracy ({pick.accuracy.estimate:.4f}) "
                    "is "
                    f"practically equivalent to the best's ({tied}, {best.accuracy.estimate:.4f}): its "
                    f"difference to the best is above −{margin:.4f} (the margin, `report.margin`) at "
                    f"{confidence:.0%} confidence, with both seeds and test examples resampled.{wider}")
    return sentence + (f" Cheaper but undecided: {undecided}." if undecided else "")


def _relative(result: verdict.Verdict, costs: Mapping[str, float | None], strategy: str) -> str:
    ratio = margins.relative_cost(result, costs, strategy)
    return "n/a" if ratio is None else f"{ratio:.3g}×"


def table(result: verdict.Verdict) -> str:
    """The verdict per strategy: its interval, difference to the best with its bounds, the margin it
    is shown within, its word and why it cannot be recommended (too few seeds, failed runs)."""
    rows = [[md(j.strategy), j.seeds, j.failed,
             f"{j.accuracy.estimate:.4f} [{j.accuracy.low:.4f}, {j.accuracy.high:.4f}]",
             f"{j.to_best:+.4f} [{num(j.to_best_low, '+.4f')}, {num(j.to_best_high, '+.4f')}]",
             "n/a" if j.within is None else f"{100 * j.within:.1f}",
             f"**{j.word}**" + (f", {j.caveat}" if j.caveat else ""), f"{j.best_share:.0%}"]
            for j in result.strategies]
    shown = {j.strategy for j in result.strategies}
    rows += [[md(strategy), 0, lost, "n/a", "n/a", "n/a", f"**undecided**, {verdict.unstable_text(lost, 0)}",
              "n/a"] for strategy, lost in result.failed.items() if strategy not in shown]
    lines = [f"Margin {result.margin:.4f} (`report.margin`), {result.confidence:.0%} confidence, "
             f"{result.resamples:,} bootstrap resamples over seeds and {result.examples:,} test examples; "
             f"the test set resolves about ±{result.resolution:.4f} at this accuracy.", "",
             fmt.table(["strategy", "seeds", "failed", "test acc (interval)",
                        "difference to the best (bounds)", "within (points)", "verdict",
                        "best in share of resamples"], rows)]
    return "\n".join(lines + (["", *(f"⚠ {note}" for note in result.notes)] if result.notes else []))


def section(result: verdict.Verdict | None, missing: list[str],
            costs: Mapping[str, float | None] | None = None) -> str:
    """The report's "Verdict" section: the table, its notes, the answer at every margin and the
    runs it could not use."""
    parts = ["## Verdict: which strategies are as good as the best", VERDICT_NOTES]
    parts.append(table(result) if result is not None else "No run kept its predictions: no verdict.")
    if result is not None and costs is not None:
        parts.append(f"### The answer at every margin\n\n{MARGIN_NOTES}\n\n{margins.markdown(result, costs)}")
    if missing:
        parts.append("Runs left out of the verdict (no usable predictions): " + "; ".join(missing))
    return "\n\n".join(parts)


VERDICT_NOTES = (
    "Each interval counts both sources of noise: the training seed and the test set. A bootstrap "
    "weighs the seeds of every strategy at random (the fewer the seeds, the heavier the tails), "
    "then resamples the test examples (the same examples for every strategy, so strategies stay "
    "paired image by image), and picks the best inside every resample, so choosing it after the "
    "fact is paid for; every table and plot of this report reads the same resamples. A strategy is "
    "**equivalent** to the best when the lower bound of its difference lies above −margin, "
    "**worse** when the upper bound lies below −margin, **undecided** otherwise: \"not significant\" "
    "never means \"equal\". The lower bounds hold jointly for every strategy with a word, so the pick "
    "holds however many compete. **Within**: the smallest margin at which a strategy is shown "
    "equivalent. A strategy with fewer than 2 completed seeds gets no word; one with a failed or "
    "diverged run is *unstable* and never recommended.")

MARGIN_NOTES = ("For each margin, the cheapest strategy the data show practically equivalent to the best "
                "(its within below the margin), and its cost relative to the best's: what a looser "
                "tolerance buys. Only the user's margin (`report.margin`) decides the recommendation.")
