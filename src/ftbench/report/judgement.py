"""The report's verdict: each strategy's runs -> their saved predictions -> ``verdict.judge`` -> text.

Every tested run keeps its per-example predictions (``ftbench.run.predictions``); the verdict
resamples seeds and test examples from them (``ftbench.report.verdict``). Runs without a
predictions file cannot join it: the section says which, and the rest of the report stands.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from ftbench.report import verdict
from ftbench.report.collect import Run
from ftbench.report.fmt import num, si
from ftbench.run.predictions import read_predictions

DEFAULTS = {"margin": 0.01, "confidence": 0.95, "resamples": 2000}


def settings(runs: Sequence[Run], overrides: Mapping[str, float | None] | None = None) -> dict:
    """``report.margin``, ``confidence`` and ``resamples``: given on the report's command line,
    else as the runs were configured (the first run that says), else the defaults."""
    chosen = dict(DEFAULTS)
    for key in DEFAULTS:
        given = (overrides or {}).get(key)
        saved = next((v for r in runs if isinstance(v := r.get(f"config.report.{key}"), int | float)
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
            name = run.get("predictions")
            if not isinstance(name, str) or "/" in name or name.startswith("."):
                missing.append(f"{run.dir}: no predictions file")
                continue
            try:
                sets = read_predictions(root / run.dir / name)
            except (OSError, ValueError) as err:
                missing.append(f"{run.dir}: {err}")
                continue
            if split in sets:
                p = sets[split]
                runs.setdefault(strategy, {})[run.get("seed")] = {"index": p.index, "label": p.label,
                                                                  "pred": p.pred}
    if not runs:
        return None, missing
    return verdict.align(runs), missing


def judge(root: Path, by_strategy: Mapping[str, Sequence[Run]], costs: Mapping[str, float | None],
          choice: Mapping) -> tuple[verdict.Verdict | None, list[str]]:
    found, missing = evidence(root, by_strategy)
    if found is None:
        return None, missing
    return verdict.judge(found, costs, margin=choice["margin"], confidence=choice["confidence"],
                         resamples=choice["resamples"]), missing


def recommendation(result: verdict.Verdict | None, costs: Mapping[str, float | None], cost_name: str) -> str:
    """One sentence: the cheapest strategy practically equivalent to the best, at the margin."""
    if result is None:
        return "No tested run kept its predictions: no verdict (see the table for each strategy's runs)."
    rec, margin = result.recommendation, result.margin
    best = result[rec.best]
    undecided = "; ".join(d.text() for d in rec.undecided)
    if rec.pick is None:
        return (f"**No recommendation**: no strategy is practically equivalent to the best ({rec.best}, "
                f"{best.accuracy.estimate:.4f}) at a margin of {margin:.4f}"
                + (f"; undecided: {undecided}" if undecided else "") + ".")
    pick = result[rec.pick]
    sentence = (f"**Recommendation: {rec.pick}** — the cheapest strategy ({cost_name}: "
                f"{si(costs.get(rec.pick), 'FLOP')}) whose test accuracy ({pick.accuracy.estimate:.4f}) is "
                f"practically equivalent to the best's ({rec.best}, {best.accuracy.estimate:.4f}): its "
                f"difference to the best is above −{margin:.4f} (the margin, `report.margin`) at "
                f"{result.confidence:.0%} confidence, with both seeds and test examples resampled")
    if rec.pick == rec.best:
        sentence = (f"**Recommendation: {rec.best}** — the most accurate ({best.accuracy.estimate:.4f}), "
                    f"and no cheaper strategy is practically equivalent to it at a margin of {margin:.4f}")
    return sentence + (f". Cheaper but undecided: {undecided}." if undecided else ".")


def table(result: verdict.Verdict, failed: Mapping[str, int] | None = None) -> str:
    """The verdict per strategy; a strategy with failed or diverged runs is marked unstable: its
    interval rests on the runs that survived, which flatters it."""
    failed = failed or {}
    lines = [f"Margin {result.margin:.4f} (`report.margin`), {result.confidence:.0%} confidence, "
             f"{result.resamples:,} bootstrap resamples over seeds and {result.examples:,} test examples; "
             f"the test set resolves about ±{result.resolution:.4f} at this accuracy.", "",
             "| strategy | seeds | test acc (interval) | difference to the best (bounds) | verdict | "
             "best in share of resamples |", "|---|---|---|---|---|---|"]
    for j in result.strategies:
        acc = j.accuracy
        lines.append(f"| {j.strategy} | {j.seeds} | {acc.estimate:.4f} [{acc.low:.4f}, {acc.high:.4f}] | "
                     f"{j.to_best:+.4f} [{num(j.to_best_low, '+.4f')}, {num(j.to_best_high, '+.4f')}] | "
                     f"**{j.word}**{_unstable(failed.get(j.strategy, 0), j.seeds)} | {j.best_share:.0%} |")
    if result.notes:
        lines += ["", *(f"⚠ {note}" for note in result.notes)]
    return "\n".join(lines)


def _unstable(failed: int, completed: int) -> str:
    return f", unstable: {failed} of {failed + completed} runs failed or diverged" if failed else ""


def section(result: verdict.Verdict | None, missing: list[str],
            failed: Mapping[str, int] | None = None) -> str:
    """The report's "Verdict" section: the table, its notes and the runs it could not use."""
    parts = ["## Verdict: which strategies are as good as the best", VERDICT_NOTES]
    parts.append(table(result, failed) if result is not None else "No run kept its predictions: no verdict.")
    if missing:
        parts.append("Runs left out of the verdict (no usable predictions): " + "; ".join(missing))
    return "\n\n".join(parts)


VERDICT_NOTES = (
    "Each interval counts both sources of noise: the training seed and the test set. A bootstrap "
    "resamples the seeds of every strategy, then the test examples (the same examples for every "
    "strategy, so strategies stay paired image by image), and picks the best inside every "
    "resample, so choosing it after the fact is paid for. A strategy is **equivalent** to the best "
    "when the lower bound of its difference lies above −margin, **worse** when the upper bound lies "
    "below −margin, **undecided** otherwise: \"not significant\" never means \"equal\".")
