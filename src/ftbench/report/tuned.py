"""The report of a tuned comparison (``experiment=tuned``): default against tuned, what the search
cost and how sensitive each strategy is.

The sweep folder holds ``search/<strategy>/trial<n>``, ``default/<strategy>/seed<k>`` and
``tuned/<strategy>/seed<k>`` (``config.tune.phase`` says which). A strategy whose best trial was
its defaults has no tuned runs of its own: its default runs are its tuned runs. Tuned − default
comes from the verdict's draw, joint over the strategies (``bootstrap.joint_differences``).
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ftbench.report import intervals
from ftbench.report.collect import Run
from ftbench.report.edges import edge_hint
from ftbench.report.escape import md
from ftbench.report.fmt import si, table
from ftbench.report.readings import Reading, train_flops, train_seconds
from ftbench.report.rows import strategy_order
from ftbench.run.trials import best_trial
from ftbench.stats.bootstrap import Interval, joint_differences

SEARCH, DEFAULT, TUNED = "search", "default", "tuned"


def phase(run: Run) -> str | None:
    return run.result.config_at("tune", "phase")


def _config_object(run: Run | None, *keys: str) -> dict:
    """The run's config object at ``keys`` (``strategy.search``, ``tune``); empty if it has none."""
    found = run.result.config_at(*keys) if run else None
    return found if isinstance(found, dict) else {}


def is_tuned_sweep(runs: list[Run]) -> bool:
    return any(phase(r) == SEARCH for r in runs)


def _trial_number(run: Run) -> int:
    found = re.fullmatch(r"trial([0-9]{1,9})", str(run.result.config_at("tune", "job") or ""))
    return int(found.group(1)) if found else 10**9


@dataclass
class Tuning:
    """One strategy's search, and its final runs on the shared seeds."""

    strategy: str
    trials: list[Run] = field(default_factory=list)
    default: dict = field(default_factory=dict)  # seed -> test accuracy
    tuned: dict = field(default_factory=dict)
    default_runs: list[Run] = field(default_factory=list)
    tuned_runs: list[Run] = field(default_factory=list)
    # phase (default | tuned) -> mean test accuracy and its interval (``with_intervals``)
    bounds: dict[str, intervals.Bounds] = field(default_factory=dict)
    gain: Interval | None = None  # tuned - default, joint over the strategies (``with_intervals``)

    def interval(self, which: str) -> intervals.Bounds | None:
        """The ``default`` or ``tuned`` runs' mean test accuracy with its interval: over seeds and
        test examples once ``with_intervals`` found their predictions, else over seeds."""
        return self.bounds.get(which) or intervals.over_seeds(list(getattr(self, which).values()))

    @property
    def knobs(self) -> list[str]:
        return list(_config_object(next(iter(self.trials + self.default_runs), None), "strategy", "search"))

    def params(self, run: Run) -> dict:
        return {k: run.result.config_at("strategy", k) for k in self.knobs}

    @property
    def best(self) -> Run | None:
        """The trial the protocol retrained (``ftbench.run.trials.best_trial``)."""
        return best_trial(self.trials, status=lambda r: r.status,
                          val_acc=lambda r: r.result.metrics.val_acc, number=_trial_number)

    @property
    def tuned_is_default(self) -> bool:
        return bool(self.best and self.default_runs and
                    self.params(self.best) == self.params(self.default_runs[0]))

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.trials)

    def search_cost(self, read: Reading) -> float:
        return sum(read(r.result) or 0.0 for r in self.trials)

    def final_flops(self) -> float | None:
        values = [v for r in self.tuned_runs or self.default_runs if (v := train_flops(r.result)) is not None]
        return statistics.fmean(values) if values else None

    def total_flops(self) -> float | None:
        final = self.final_flops()
        return None if final is None else self.search_cost(train_flops) + final

    def val_accuracies(self) -> list[float]:
        """Each completed trial's last validation accuracy: a pruned trial stopped early, and its
        early-epoch accuracy is no measure of its configuration."""
        return [v for r in self.trials if r.status == "completed" and (v := last_val_acc(r)) is not None]


def last_val_acc(run: Run) -> float | None:
    """The validation accuracy of the run's last epoch (a pruned trial's: where it stopped)."""
    return run.result.history[-1].val_acc if run.result.history else None


def without_retried(runs: list[Run]) -> list[Run]:
    """The runs but the folders of search trials that another trial ran again: their worker
    died, so the study failed them as stale and counts their retries instead; they are
    neither trials nor failures of the comparison."""
    retried = {(run.strategy, n) for run in runs if phase(run) == SEARCH
               for n in (run.result.config_at("tune", "retry_of") or []) if isinstance(n, int)}
    return [r for r in runs if phase(r) != SEARCH or (r.strategy, _trial_number(r)) not in retried]


def tunings(runs: list[Run]) -> list[Tuning]:
    by_strategy: dict[str, Tuning] = {}
    for run in without_retried(runs):
        t = by_strategy.setdefault(run.strategy, Tuning(run.strategy))
        which, acc = phase(run), run.result.metrics.test_acc
        if which == SEARCH:
            t.trials.append(run)
        elif which in (DEFAULT, TUNED) and run.completed and acc is not None:
            getattr(t, which)[run.result.seed] = acc
            getattr(t, f"{which}_runs").append(run)
    for t in by_strategy.values():
        t.trials.sort(key=_trial_number)
        if not t.tuned and t.tuned_is_default:
            t.tuned, t.tuned_runs = dict(t.default), list(t.default_runs)
    return [by_strategy[s] for s in sorted(by_strategy, key=strategy_order)]


def default_key(strategy: str) -> str:
    """The name a strategy's default runs go by in the report's one bootstrap."""
    return f"{strategy} (default)"


def _own_default(t: Tuning) -> bool:
    """Whether the strategy's default runs are runs of their own (not its tuned runs again)."""
    return bool(t.default_runs) and {r.dir for r in t.default_runs} != {r.dir for r in t.tuned_runs}


def final_runs(items: list[Tuning]) -> dict[str, list[Run]]:
    """Every strategy's tuned runs, and its default runs where they differ, for the bootstrap."""
    runs = {t.strategy: t.tuned_runs for t in items if t.tuned_runs}
    runs |= {default_key(t.strategy): t.default_runs for t in items if _own_default(t)}
    return runs


def with_intervals(root: Path, items: list[Tuning], choice: Mapping, drawn=None) -> list[Tuning]:
    """Give each strategy's default and tuned runs their interval, and tuned − default its interval
    joint over the strategies, from the verdict's bootstrap (``drawn``: a ``verdict.Verdict``
    drawn over ``final_runs``); runs it does not cover get their own bootstrap or Student's t."""
    for t in items:
        for which, key in ((DEFAULT, default_key(t.strategy) if _own_default(t) else t.strategy),
                           (TUNED, t.strategy)):
            found = intervals.of_runs(root, getattr(t, f"{which}_runs"), choice, drawn=drawn, name=key)
            if found is not None:
                t.bounds[which] = found
    if drawn is not None:
        compared = [t for t in items if _own_default(t)
                    and {t.strategy, default_key(t.strategy)} <= set(drawn.replicates.strategies)]
        gains = joint_differences(drawn.replicates, [(t.strategy, default_key(t.strategy)) for t in compared])
        for t, gain in zip(compared, gains, strict=True):
            t.gain = gain
    return items


def gain_note(items: list[Tuning]) -> str:
    """How to read tuned − default (the ‡ legend only where a row has one)."""
    seeds_only = any(t.gain is None and not t.tuned_is_default and set(t.tuned) & set(t.default)
                     for t in items)
    return ("tuned − default: from the verdict's bootstrap (seeds and test examples, the same examples for "
            "both), with an interval that holds for every strategy at once; its word is read off that "
            "interval." + (" ‡: runs without predictions, the mean difference over shared seeds only."
                           if seeds_only else ""))


def gain_word(gain: Interval) -> str:
    """What the joint interval of tuned − default says."""
    return "tuning helped" if gain.low > 0 else "tuning hurt" if gain.high < 0 else "no difference shown"


def _interval(bounds: intervals.Bounds | None) -> str:
    return "n/a" if bounds is None else bounds.text() + ("" if bounds.n >= 3 else " ⚠")


def edge_hints(t: Tuning) -> list[str]:
    """The best trial's values at or near a numeric bound of the space its trials were given
    (a bound given relative to the model or budget is a limit of the strategy: not flagged)."""
    best = t.best
    if best is None:
        return []
    hints = []
    for knob, spec in _config_object(best, "strategy", "search").items():
        bounds = (spec.get("low"), spec.get("high")) if isinstance(spec, dict) else ()
        if not bounds or not all(isinstance(b, int | float) for b in bounds):
            continue
        value = best.result.config_at("strategy", knob)
        hint = edge_hint(knob, spec["low"], spec["high"], bool(spec.get("log")), value)
        if hint:
            hints.append(hint)
    return hints


def _params(params: dict) -> str:
    return ", ".join(md(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}") for k, v in params.items())


def default_against_tuned(items: list[Tuning]) -> str:
    def cells(t: Tuning) -> list:
        shared = sorted(set(t.tuned) & set(t.default), key=str)
        mean = (statistics.fmean(t.tuned[s] - t.default[s] for s in shared) if shared else None)
        diff = ("= default" if t.gain is None and t.tuned_is_default else
                f"{t.gain.estimate:+.4f} [{t.gain.low:+.4f}, {t.gain.high:+.4f}] **{gain_word(t.gain)}**"
                if t.gain is not None else "n/a" if mean is None else f"{mean:+.4f} ‡")
        best = t.best
        hyper = "n/a" if best is None else (
            f"{_params(t.params(best))} ({best.result.metrics.val_acc:.4f})"
            + (" = default" if t.tuned_is_default else "")
            + "".join(f"; ⚠ {hint}" for hint in edge_hints(t)))
        failed = len(t.trials) - t.count("completed") - t.count("pruned")
        return [md(t.strategy), _interval(t.interval(DEFAULT)), _interval(t.interval(TUNED)), diff, hyper,
                f"{len(t.trials)} ({t.count('pruned')}, {failed})", si(t.search_cost(train_flops), "FLOP"),
                f"{t.search_cost(lambda r: r.cost.wall_seconds) or t.search_cost(train_seconds):.0f} s",
                si(t.final_flops(), "FLOP"), si(t.total_flops(), "FLOP")]

    return table(["strategy", "default: test acc", "tuned: test acc",
                  "tuned − default [interval, joint over the strategies]", "best hyperparameters (val acc)",
                  "trials (pruned, failed)", "search FLOPs", "search time", "FLOPs of one final run",
                  "total FLOPs"], map(cells, items))


def sensitivity(items: list[Tuning]) -> str:
    def cells(t: Tuning) -> list:
        v = t.val_accuracies()
        if not v:
            return [md(t.strategy), len(t.trials), "n/a", "n/a", "n/a", "n/a"]
        return [md(t.strategy), len(v), f"{min(v):.4f}", f"{statistics.median(v):.4f}", f"{max(v):.4f}",
                f"{max(v) - min(v):.4f}"]

    return table(["strategy", "trials", "val acc: min", "median", "max", "spread (max − min)"],
                 map(cells, items))


def spaces(items: list[Tuning]) -> str:
    return table(["strategy", "knob", "searched over"], (
        [md(t.strategy), md(knob), md(_space(spec))] for t in items
        for knob, spec in _config_object(next(iter(t.trials), None), "strategy", "search").items()))


def _space(spec) -> str:
    """A knob's search space as the config gives it: ``one of [...]`` or ``low … high``."""
    if not isinstance(spec, dict):
        return str(spec)
    if "choices" in spec:
        return f"one of {spec['choices']}"
    return f"{spec.get('low')} … {spec.get('high')}" + (", log scale" if spec.get("log") is True else "")


def protocol(runs: list[Run], items: list[Tuning]) -> str:
    trial = next((r for r in runs if phase(r) == SEARCH), None)
    tune = _config_object(trial, "tune")
    seeds = sorted({s for t in items for s in t.default} | {s for t in items for s in t.tuned}, key=str)

    def told(key: str, within: Mapping | None = tune) -> str:
        value = (within or {}).get(key)
        return "?" if value is None else md(value)

    pruner = tune.get("pruner")
    kind = str(pruner.get("kind", "median")) if isinstance(pruner, dict) else "none"
    pruning = "no pruning" if kind == "none" else (
        f"{md(kind.replace('_', ' '))} pruning after {told('startup_trials', pruner)} completed trials, "
        f"once a trial's plan had trained its final set of groups for {told('warmup_epochs', pruner)} "
        "epoch(s)")
    return (f"**What was tuned.** Every strategy had the same budget: {told('trials')} search "
            f"trials over its own search space (below) on the **validation split** (the objective: the "
            f"last epoch's validation accuracy), the first trial being its shipped defaults, then TPE "
            f"(sampler seed {told('sampler_seed')}), {pruning}; every trial trained with seed "
            f"{told('search_seed')}. The best configuration and the default one were then "
            f"retrained on seeds {', '.join(md(s) for s in seeds) or 'n/a'} and tested once on the "
            f"**test split**; search trials never saw it. Total FLOPs = the whole search + one final "
            f"run." + (" ⚠: an interval from fewer than 3 seeds." if any(
                (b := t.interval(w)) is not None and b.n < 3 for t in items for w in (DEFAULT, TUNED))
            else ""))
