"""The report across the tasks of a suite: ``report.md``, ``report.csv`` (one row per task and
strategy), ``strategies.csv`` (one per strategy) and ``plots/``, in the suite's folder.
"""

from __future__ import annotations

from pathlib import Path

from ftbench.report.across import CrossTask, StrategySummary, analyse
from ftbench.report.fmt import num, records_csv, si, table
from ftbench.report.outcomes import EQUIVALENT, LOSS, UNDECIDED, WIN, Classifier, by_verdict
from ftbench.report.output import PLOTS_DIR, REPORT_CSV, REPORT_MD
from ftbench.report.suite_results import SuiteResults, TaskResults, read_suite_results
from ftbench.report.tables import interval_columns
from ftbench.run.atomic import write_text

STRATEGIES_CSV = "strategies.csv"
CD_DIAGRAM, ACCURACY_COST = "cd_diagram.png", "accuracy_vs_relative_cost.png"
PROTOCOLS = {"compare": "each strategy at its defaults", "tuned": "each strategy tuned with the same "
             "search budget on the task's validation split, then retrained on the seeds"}
MARKS: dict[str | None, str] = {WIN: "W", EQUIVALENT: "≈", UNDECIDED: "?", LOSS: "L"}


def write_suite_report(root: Path, margin: float | None = None, classify: Classifier | None = None,
                       choice: dict | None = None) -> tuple[CrossTask, dict[str, Path]]:
    """Write the report across the tasks of the suite in ``root``; return what it found and its files.

    ``margin``: the practical-equivalence margin (default: the suite's, ``report.margin``);
    ``choice``: the confidence and resamples (default: the suite's) of every task's intervals and
    verdict; ``classify``: each strategy's outcome on a task (``ftbench.report.outcomes``; default:
    each task's verdict at those settings).
    """
    from ftbench.report.cd_plot import plot_cd_diagram
    from ftbench.report.suite_plots import accuracy_against_relative_cost

    results = read_suite_results(root, {**(choice or {}), "margin": margin})
    cross = analyse(results, margin, classify or by_verdict)
    plot_dir = root / PLOTS_DIR
    drawn: dict[str, Path | None] = {}
    if cross.ranking is not None:
        drawn["Critical-difference diagram"] = plot_cd_diagram(cross.ranking, plot_dir / CD_DIAGRAM)
    drawn["Accuracy against relative cost"] = accuracy_against_relative_cost(cross, plot_dir / ACCURACY_COST)
    plots = {title: path for title, path in drawn.items() if path is not None}
    paths = {"report.md": root / REPORT_MD, "report.csv": root / REPORT_CSV,
             "strategies.csv": root / STRATEGIES_CSV, **plots}
    write_text(paths["report.csv"], records_csv(cell_records(cross)))
    write_text(paths["strategies.csv"], records_csv(strategy_records(cross)))
    write_text(paths["report.md"], markdown(cross, root, plots))
    return cross, paths


# -- the parts ----------------------------------------------------------------------------------
def context(cross: CrossTask) -> str:
    record, tasks = cross.results.record, cross.results.tasks
    jobs, failed = sum(t.jobs for t in tasks), sum(len(t.failed) for t in tasks)
    protocol = PROTOCOLS.get(record.protocol, record.protocol)
    return (f"Suite: {record.name}. Protocol: {record.protocol} ({protocol}). "
            f"Model: {record.model or 'n/a'}. Seeds: {', '.join(map(str, record.seeds)) or 'n/a'}. "
            f"Tasks: {len(tasks)}, of which "
            f"{len(cross.tasks)} with results. Jobs: {jobs}, of which {failed} failed.")


def silent_note(cross: CrossTask) -> str:
    """How many tasks decided nothing because they could not speak, and why."""
    if not cross.silent:
        return ""
    by_reason: dict[str, list[str]] = {}
    for task, because in cross.silent.items():
        by_reason.setdefault(because, []).append(task)
    reasons = "; ".join(f"{len(names)} with {because} ({', '.join(names)})"
                        for because, names in by_reason.items())
    return (f"{len(cross.silent)} of {len(cross.tasks)} tasks count as undecided for every strategy: "
            f"{reasons}.")


def recommendation(cross: CrossTask) -> str:
    n = len(cross.tasks)
    if not n:
        return "**No recommendation**: no task has a result yet."
    silent = silent_note(cross)
    tail = (" Every task weighs the same." + (f" {silent}" if silent else ""))
    leader = cross.leader()
    if leader is None:
        tail += f" Tasks: {len(cross.results.tasks)}{_no_result(cross)}."
        return (f"**No recommendation across tasks**: no task's verdict showed any strategy practically "
                f"equivalent to its best at a margin of {cross.margin:g} test accuracy; the evidence "
                f"decides nothing yet.{tail}")
    summary, n = cross.summaries[leader], len(cross.results.tasks)  # a task without a result counts
    matched = f"{summary.matches} of {n} ({summary.matches / n:.0%}{_no_result(cross)})"
    blocking = cross.unbeaten_cheaper(leader)
    if blocking:
        cheaper = ", ".join(f"`{s}` ({cross.summaries[s].matches} of {n})" for s in blocking)
        return (f"**No recommendation across tasks**: `{leader}` was shown practically equivalent to the "
                f"task's best (at a margin of {cross.margin:g} test accuracy) on the most tasks, {matched}, "
                f"but the cheaper {cheaper} {'was' if len(blocking) == 1 else 'were'} never shown worse on "
                "any task: the rest is undecided, and more seeds or test images would tell them apart."
                f"{tail}")
    cost = "" if summary.relative_cost is None else (
        f", at {summary.relative_cost:.3g}× the training FLOPs of `{cross.reference}` (geometric mean "
        f"over tasks{', search included' if cross.results.record.protocol == 'tuned' else ''})")
    return (f"**Recommendation across tasks:** `{leader}` is the cheapest strategy that is the task's best "
            f"or practically equivalent to it (by each task's verdict at a margin of {cross.margin:g} "
            f"test accuracy, counting only what the verdict decided) on the largest share of tasks: "
            f"{matched}{cost}; every cheaper strategy was shown worse on some task.{tail}")


def _no_result(cross: CrossTask) -> str:
    missing = [t.name for t in cross.results.tasks if not t.means()]
    return f"; no result on {', '.join(missing)}" if missing else ""


def dependence_note(results: SuiteResults) -> str:
    shared = results.shared_sources()
    if not shared:
        return ""
    groups = "; ".join(f"{', '.join(names)} (source: {source})" for source, names in shared.items())
    return (f"**Tasks that share a source are not independent:** {groups}. Friedman's test and "
            "Nemenyi's critical difference assume independent tasks; here they describe how the "
            "ranking holds over these variants of one dataset, and their p-values and CD overstate "
            "the evidence. Shares of tasks count each variant as a task.")


def cell_text(task: TaskResults, strategy: str, outcome: str | None) -> str:
    cell = task.cells.get(strategy)
    bounds = cell.interval if cell is not None else None
    if bounds is None:
        return "n/a"
    return f"**{bounds.text()}**" if outcome == WIN else bounds.text()


def accuracy_table(cross: CrossTask) -> str:
    def cells(task: TaskResults) -> list[str]:
        outcomes = cross.outcomes.get(task.name, {})
        return [f"[{task.name}]({task.name}/{REPORT_MD})", task.source, ", ".join(map(str, task.train_sizes))
                or "n/a", *(cell_text(task, s, outcomes.get(s)) for s in cross.strategies)]

    return table(["task", "source", "train images", *cross.strategies], map(cells, cross.results.tasks))


def strategy_table(cross: CrossTask) -> str:
    n = len(cross.results.tasks)  # a task without a result is "no result" for every strategy

    def cells(s: StrategySummary) -> list:
        gap = sum(s.gaps) / len(s.gaps) if s.gaps else None
        return [s.strategy, num(s.average_rank, ".2f"), s.counts[WIN], s.counts[EQUIVALENT],
                s.counts[UNDECIDED], s.counts[LOSS], n - s.tasks,
                f"{s.matches} of {n} ({s.matches / n:.0%})" if n else "n/a", num(gap, "+.4f"),
                num(s.relative_cost, ".3g")]

    order = sorted(cross.summaries.values(), key=lambda s: (s.average_rank is None, s.average_rank or 0.0))
    return table(["strategy", "average rank", "win", "practically equivalent", "undecided", "loss",
                  "no result", "equivalent or better (share)", "accuracy − best (mean over tasks)",
                  f"FLOPs relative to {cross.reference}"], map(cells, order))


def outcome_table(cross: CrossTask) -> str:
    names = cross.strategies
    return table(["task", *names], ([task.name, *(MARKS.get(cross.outcomes[task.name].get(s), "–")
                                                  for s in names)] for task in cross.tasks))


def ranking_text(cross: CrossTask) -> str:
    r = cross.ranking
    if r is None:
        return "No task has results: nothing to rank."
    parts = []
    if r.tested:
        parts.append(f"Friedman's χ² = {r.friedman_chi2:.3f}; {r.p_method} p = {r.p_value:.3g}, over "
                     f"{len(r.tasks)} tasks and {len(r.strategies)} strategies (Iman–Davenport F = "
                     f"{r.iman_davenport_f:.3f}). Nemenyi's critical difference at alpha = "
                     f"{r.alpha:g}: CD = {r.cd:.3f} (q = {r.q_alpha:.3f}).")
        if r.differs:
            groups = "; ".join("{" + ", ".join(g) + "}" for g in r.groups)
            parts.append(f"Groups the test does not tell apart (average ranks within the CD): {groups}.")
    if r.note:
        parts.append(r.note)
    return " ".join(parts)


def cost_table(cross: CrossTask) -> str:
    names = cross.strategies
    tuned = cross.results.record.protocol == "tuned"
    def cells(task: TaskResults) -> list[str]:
        return [task.name, *(si(c.total_flops, "FLOP") if (c := task.cells.get(s)) is not None else "n/a"
                             for s in names)]

    lines = table(["task", *names], map(cells, cross.tasks))
    what = "one final run plus the whole search" if tuned else "one run (mean over seeds)"
    return f"Training FLOPs per task: {what}.\n\n" + lines


def failures(results: SuiteResults) -> str:
    lines = [f"- {t.name}: {len(t.failed)} of {t.jobs} jobs failed (see [{t.name}/{REPORT_MD}]"
             f"({t.name}/{REPORT_MD}))" for t in results.tasks if t.failed]
    lines += [f"- {t.name}: no result yet" for t in results.tasks if not t.means()]
    return "\n".join(lines) or "None."


HOW_TO_READ = """\
Each cell: test accuracy, mean over seeds [interval], with the number of seeds n; the interval
resamples seeds and test examples, as the task's verdict does (‡: over seeds only, where runs kept
no predictions); **bold**: the task's best. Ranks: on each task the
strategies are ranked by mean test accuracy (1 = best, ties share the average rank) and the ranks
are averaged over tasks; every task weighs the same, in the ranks, the shares of tasks and
the geometric mean of relative cost. **Reading the critical-difference diagram:** strategies sit on an axis
of average rank, best on the left; the bar above it is one critical difference (CD) long, and
strategies joined by a thick line are not told apart by Nemenyi's test at the stated alpha. Two
strategies not joined differ by at least the CD. The test is run only when Friedman's test
(Iman–Davenport) finds that the strategies differ at all, and only with enough tasks."""


def outcome_notes(cross: CrossTask) -> str:
    return (f"Against each task's best, from the task's verdict at a margin of {cross.margin:g}: "
            "**W** the best, **≈** practically equivalent (the lower bound of its difference to the "
            "best lies above −margin; **W** is the most accurate of those), **?** undecided (its "
            "interval crosses −margin: the observed leader too, when nothing is decided), **L** a loss "
            "(worse by more than the margin), – no result. Only decided outcomes count towards the "
            "shares of tasks. A task whose runs kept no predictions, or whose best accuracy lies "
            "within its test set's resolution of 100%, counts as undecided for every strategy."
            + (f" {silent_note(cross)}" if cross.silent else ""))


def markdown(cross: CrossTask, root: Path, plots: dict[str, Path]) -> str:
    images = "\n\n".join(f"### {title}\n\n![{title}]({path.relative_to(root)})"
                         for title, path in plots.items())
    cd = "" if CD_DIAGRAM in {p.name for p in plots.values()} else (
        "\n\nNo critical-difference diagram: " + (cross.ranking.note if cross.ranking else "no results."))
    parts = [f"# Fine-tuning strategies across tasks\n\n{context(cross)}", recommendation(cross),
             dependence_note(cross.results),
             f"## Test accuracy by task\n\n{accuracy_table(cross)}",
             f"## Across tasks\n\n{strategy_table(cross)}\n\n{ranking_text(cross)}{cd}",
             f"## Outcomes against each task's best\n\n{outcome_notes(cross)}\n\n{outcome_table(cross)}",
             f"## Cost across tasks\n\nRelative cost: a strategy's training FLOPs on a task divided by "
             f"`{cross.reference}`'s on the same task, geometric mean over tasks.\n\n{cost_table(cross)}",
             f"## How to read this report\n\n{HOW_TO_READ}",
             f"## Failed runs and missing results\n\n{failures(cross.results)}",
             f"## Plots\n\n{images}" if images else ""]
    return "\n\n".join(p for p in parts if p) + "\n"


# -- csv ----------------------------------------------------------------------------------------
def cell_records(cross: CrossTask) -> list[dict]:
    rows = []
    for task in cross.results.tasks:
        ranks = cross.ranking.ranks.get(task.name, {}) if cross.ranking else {}
        base = task.cells.get(cross.reference) if cross.reference else None
        for strategy in cross.strategies:
            cell = task.cells.get(strategy)
            if cell is None:
                continue
            relative = (cell.total_flops / base.total_flops
                        if cell.total_flops and base is not None and base.total_flops else None)
            rows.append({"task": task.name, "source": task.source, "dataset": task.dataset,
                         "protocol": task.protocol, "strategy": strategy, "seeds": cell.n,
                         **interval_columns("test_acc", cell.interval), "test_acc_mean": cell.mean,
                         "outcome": cross.outcomes.get(task.name, {}).get(strategy),
                         "rank": ranks.get(strategy), "train_flops": cell.train_flops,
                         "search_flops": cell.search_flops, "total_flops": cell.total_flops,
                         "relative_cost": relative})
    return rows


def strategy_records(cross: CrossTask) -> list[dict]:
    best = cross.recommended()
    return [{"strategy": s.strategy, "tasks": s.tasks, "average_rank": s.average_rank,
             "win": s.counts[WIN], "equivalent": s.counts[EQUIVALENT],
             "undecided": s.counts[UNDECIDED], "loss": s.counts[LOSS],
             "share_equivalent_or_better": cross.share(s.strategy) if cross.tasks else None,
             "relative_cost": s.relative_cost, "cost_reference": cross.reference,
             "accuracy_gap_mean": sum(s.gaps) / len(s.gaps) if s.gaps else None,
             "recommended": s.strategy == best} for s in cross.summaries.values()]


def suite_summary_text(cross: CrossTask, paths: dict[str, Path]) -> str:
    """What the end of a suite prints: the tables across tasks, the files, last the advice."""
    lines = [accuracy_table(cross), "", strategy_table(cross), "", ranking_text(cross)]
    note = dependence_note(cross.results)
    if note:
        lines += ["", note]
    lines += [""] + [f"{name}: {path}" for name, path in paths.items()]
    return "\n".join(lines + ["", recommendation(cross).replace("**", "")]) + "\n"
