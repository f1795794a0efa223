"""The report's files: ``report.md`` (tables, notes, failed runs, plots) and ``report.csv``.

A plain sweep gets one row per strategy and setting, a tuned comparison its own report
(``tuned``); each report draws its verdict's bootstrap once, and every table and plot reads it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

from ftbench.report import expected_max, judgement, tuned
from ftbench.report.collect import Run, collect
from ftbench.report.fmt import num, si
from ftbench.report.output import PLOTS_DIR, REPORT_CSV, REPORT_MD, own_folder
from ftbench.report.readings import train_flops
from ftbench.report.rows import Row, group_rows, with_intervals
from ftbench.report.sections import marginal_table, per_class_table, probe_text, rows_text, threads_note
from ftbench.report.tables import (
    context,
    failed_run,
    failed_table,
    legend,
    markdown_table,
    notes,
    shift_table,
    unfinished,
    write_csv,
)
from ftbench.run.atomic import write_text
from ftbench.stats import verdict


class Written(dict[str, Path]):
    """A report's files by name (a plot's by its title), and ``summary``: what the report prints
    (its main table, its files, last the recommendation), from the same draw as ``report.md``."""

    def __init__(self, paths: dict[str, Path], summary: str):
        super().__init__(paths)
        self.summary = summary


def compare_verdict(root: Path, runs: list[Run], choice: dict | None = None
                    ) -> tuple[list[Row], verdict.Verdict | None, dict, dict]:
    """A plain sweep's rows (their test intervals from the verdict's bootstrap), its verdict (None
    without predictions), the rows' costs (training FLOPs) and failed runs, by row label."""
    rows, result, costs, left = _compare_judged(root, runs, choice)
    return with_intervals(root, rows, left["choice"], result), result, costs, left


def tuned_verdict(root: Path, runs: list[Run], choice: dict | None = None
                  ) -> tuple[list[tuned.Tuning], verdict.Verdict | None, dict, dict]:
    """A tuned sweep's strategies (their intervals and tuned − default from the verdict's
    bootstrap), its verdict over the tuned runs, their costs (search included), failed runs and
    settings."""
    items, result, costs, left = _tuned_judged(root, runs, choice)
    return tuned.with_intervals(root, items, left["choice"], result), result, costs, left


def folder_verdict(root: Path, runs: list[Run], choice: dict | None = None
                   ) -> tuple[verdict.Verdict | None, dict, dict[str, int]]:
    """The verdict the report of the sweep in ``root`` draws from ``runs`` (as ``screening``
    left them): the same candidates, order and bootstrap, so that a suite's table and
    ``ftbench.results`` say what ``report.md`` says; with its costs and failed runs."""
    judge = _tuned_judged if tuned.is_tuned_sweep(runs) else _compare_judged
    _, result, costs, left = judge(root, runs, choice)
    return result, costs, left["failed"]


def _compare_judged(root: Path, runs: list[Run], choice: dict | None
                    ) -> tuple[list[Row], verdict.Verdict | None, dict, dict]:
    choice = judgement.settings(runs, choice)
    rows = group_rows(runs)
    failed = {row.label: lost for row in rows if (lost := sum(failed_run(r) for r in row.failed))}
    costs = {row.label: row.mean(train_flops) for row in rows}
    result, missing = judgement.judge(root, {row.label: row.runs for row in rows if row.runs}, costs, choice,
                                      failed)
    return rows, result, costs, {"failed": failed, "missing": missing, "choice": choice}


def _tuned_judged(root: Path, runs: list[Run], choice: dict | None
                  ) -> tuple[list[tuned.Tuning], verdict.Verdict | None, dict, dict]:
    runs = tuned.without_retried(runs)
    choice = judgement.settings(runs, choice)
    items = tuned.tunings(runs)
    costs = {t.strategy: t.total_flops() for t in items}
    failed = Counter(r.strategy for r in runs if tuned.phase(r) == tuned.TUNED and failed_run(r))
    result, missing = judgement.judge(root, tuned.final_runs(items), costs, choice, failed,
                                      judged=[t.strategy for t in items if t.tuned_runs])
    return items, result, costs, {"failed": dict(failed), "missing": missing, "choice": choice}


def _images(root: Path, plot_paths: dict[str, Path], note: str | None) -> str:
    images = [f"### {title}\n\n![{title}]({path.relative_to(root)})" for title, path in plot_paths.items()]
    return "\n\n".join(([note] if note else []) + images) or "None drawn."


def _plots(root: Path, count: int,
           draw: Callable[[Path], dict[str, Path]]) -> tuple[dict[str, Path], str | None]:
    """The plots ``draw`` makes in the report's own ``plots/`` folder, by title, and a note when
    none are drawn: too many rows (``count``) to tell apart, or no folder of the report's own."""
    from ftbench.report import plots

    note = plots.too_many(count)
    if note:
        return {}, note
    folder = own_folder(root / PLOTS_DIR)
    if folder is None:
        return {}, f"{PLOTS_DIR} in this folder is not a folder: no plot was drawn."
    return draw(folder), None


def write_report(root: Path, runs: list[Run] | None = None, choice: dict | None = None) -> Written:
    """Write ``report.md``, ``report.csv`` and the plots into ``root``; return their paths.

    ``runs`` are the jobs ``collect(root)`` read, if the caller has them already; ``choice``
    sets the verdict's ``margin``, ``confidence`` and ``resamples`` (``judgement.settings``).
    """
    from ftbench.report import margin_plot, plots  # matplotlib is imported only when a report is drawn

    runs = collect(root) if runs is None else runs
    if tuned.is_tuned_sweep(runs):
        return _write_tuned_report(root, runs, choice)
    rows, result, costs, left = compare_verdict(root, runs, choice)

    def draw(folder: Path) -> dict[str, Path]:
        return {**plots.draw_all(rows, folder), **margin_plot.draw(result, costs, folder)}

    labels = {id(run): row.label for row in rows for run in row.runs}
    failed = [r for r in runs if unfinished(r)]
    return _write(root, runs, rows, result, costs, left["choice"], "training FLOPs", len(rows), draw, [
        "# Fine-tuning strategies compared", rows_text(rows), markdown_table(rows), legend(rows),
        judgement.section(result, left["missing"], costs), probe_text(runs, labels), notes(rows),
        f"## Accuracy under shift\n\n{shift_table(rows)}", marginal_table(rows, si, num),
        per_class_table(rows)], [markdown_table(rows), legend(rows),
                                 f"Runs without a result:\n\n{failed_table(failed)}" if failed else ""])


def _write_tuned_report(root: Path, runs: list[Run], choice: dict | None = None) -> Written:
    from ftbench.report import margin_plot, plots, tuned_plots

    items, result, costs, left = tuned_verdict(root, runs, choice)
    runs = tuned.without_retried(runs)
    rows = with_intervals(root, group_rows([r for t in items for r in t.tuned_runs]), left["choice"], result)

    def draw(folder: Path) -> dict[str, Path]:
        return {**plots.draw_each({
            "Accuracy against total cost, search included": lambda: tuned_plots.accuracy_against_total_cost(
                items, folder / "accuracy_vs_total_flops.png"),
            "Sensitivity to the learning rate": lambda: tuned_plots.sensitivity(
                items, folder / "sensitivity_lr.png"),
        }), **plots.draw_all(rows, folder), **margin_plot.draw(result, costs, folder)}

    tuning_cost = expected_max.section(root, items, left["choice"]["margin"])  # writes its CSV and plot
    return _write(root, runs, rows, result, costs, left["choice"], "total training FLOPs, search included",
                  max(len(items), len(rows)), draw, [
        "# Fine-tuning strategies compared, each tuned", tuned.protocol(runs, items), threads_note(runs),
        judgement.section(result, left["missing"], costs),
        f"## Default against tuned\n\n{tuned.default_against_tuned(items)}\n\n{tuned.gain_note(items)}",
        "## Sensitivity\n\nValidation accuracy over each strategy's completed trials (pruned ones left "
        f"out): a wide spread means the strategy needs its search.\n\n{tuned.sensitivity(items)}",
        tuning_cost.markdown, f"## Search spaces\n\n{tuned.spaces(items)}",
        f"## The tuned runs\n\n{markdown_table(rows)}", legend(rows), notes(rows),
        f"## Accuracy under shift (tuned)\n\n{shift_table(rows)}"], [tuned.default_against_tuned(items)],
        tuning_cost.paths)


def _write(root: Path, runs: list[Run], rows: list[Row], result: verdict.Verdict | None, costs: dict,
           settings: dict, cost_name: str, count: int, draw: Callable[[Path], dict[str, Path]],
           parts: list[str], printed: list[str], written: dict[str, Path] | None = None) -> Written:
    """Draw the plots (``count``: how many rows or strategies), write ``report.csv`` (stamped with
    the ``settings`` of its intervals) and ``report.md`` (``parts``: the title, then the sections
    between the recommendation and the failed runs) and return the files (with those ``written``
    already) and what the report prints (``printed``, then the files, last the recommendation by
    ``costs``, named ``cost_name``)."""
    plot_paths, plot_note = _plots(root, count, draw)
    paths = {"report.md": root / REPORT_MD, "report.csv": root / REPORT_CSV, **plot_paths, **(written or {})}
    write_csv(paths["report.csv"], rows, result, settings)
    advice = judgement.recommendation(result, costs, cost_name)
    md = [f"{parts[0]}\n\n{context(runs)}", advice, *parts[1:],
          f"## Failed runs\n\n{failed_table([r for r in runs if unfinished(r)])}",
          f"## Plots\n\n{_images(root, plot_paths, plot_note)}"]
    write_text(paths["report.md"], "\n\n".join(part for part in md if part) + "\n")
    files = "".join(f"{name}: {path}\n" for name, path in paths.items())
    return Written(paths, "".join(f"{part}\n\n" for part in printed if part) + files + f"\n{advice}\n")
