"""The report's files: ``report.md`` (tables, notes, failed runs, plots) and ``report.csv``.

A plain sweep (``experiment=compare``, the studies) gets one row per strategy and setting and
the pairs of strategies compared over their shared seeds; a tuned comparison's folder
(``experiment=tuned``) gets its own report (``ftbench.report.tuned``).

Every file is written atomically and never through a link, ``plots/`` is the report's own folder
(``ftbench.report.output``), and text read from the runs is escaped for each format
(``ftbench.report.escape``).
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from ftbench.report import expected_max, judgement, tuned
from ftbench.report.collect import Run, collect
from ftbench.report.comparison import compare
from ftbench.report.fmt import num, si
from ftbench.report.output import own_folder
from ftbench.report.rows import FEW_SEEDS, Row, group_rows, with_intervals
from ftbench.report.sections import (
    marginal_table,
    per_class_table,
    probe_text,
    rows_text,
    seeds_text,
    threads_note,
)
from ftbench.report.tables import (
    NOTES,
    PAIRED_NOTES,
    context,
    failed_table,
    markdown_table,
    shift_table,
    unfinished,
    write_csv,
)
from ftbench.run.atomic import write_text

REPORT_MD, REPORT_CSV, PLOTS_DIR = "report.md", "report.csv", "plots"


def paired_section(rows: list[Row]) -> str:
    """The paired table over the rows' shared seeds (a classical test beside the verdict)."""
    by_row = {row.label: {run.data.get("seed"): acc for run in row.runs
                          if (acc := run.number("metrics.test_acc")) is not None}
              for row in rows}
    return compare({label: seeds for label, seeds in by_row.items() if seeds})


def verdict_parts(root: Path, runs: list[Run], by_strategy: dict[str, list[Run]],
                  costs: dict[str, float | None], cost_name: str, failed: dict[str, int],
                  choice: dict | None) -> tuple[str, str]:
    """(the recommendation sentence, the verdict section), from the runs' saved predictions."""
    result, missing = judgement.judge(root, by_strategy, costs, judgement.settings(runs, choice))
    return (judgement.recommendation(result, costs, cost_name),
            judgement.section(result, missing, failed))


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


def _write(path: Path, parts: list[str]) -> None:
    write_text(path, "\n\n".join(part for part in parts if part) + "\n")


def write_report(root: Path, runs: list[Run] | None = None, choice: dict | None = None) -> dict[str, Path]:
    """Write ``report.md``, ``report.csv`` and the plots into ``root``; return their paths.

    ``runs`` are the jobs ``collect(root)`` read, if the caller has them already; ``choice``
    sets the verdict's ``margin``, ``confidence`` and ``resamples`` (``judgement.settings``).
    """
    from ftbench.report import plots  # matplotlib is imported only when a report is drawn

    runs = collect(root) if runs is None else runs
    if tuned.is_tuned_sweep(runs):
        return write_tuned_report(root, runs, choice)
    choice = judgement.settings(runs, choice)
    rows = with_intervals(root, group_rows(runs), choice)
    plot_paths, plot_note = _plots(root, len(rows), lambda folder: plots.draw_all(rows, folder))
    paths = {"report.md": root / REPORT_MD, "report.csv": root / REPORT_CSV, **plot_paths}
    write_csv(paths["report.csv"], rows)
    failed = Counter(row.label for row in rows for run in row.runs if unfinished(run))
    completed = {row.label: [r for r in row.runs if r.completed] for row in rows}
    costs = {row.label: row.mean("cost.train_flops") for row in rows}
    advice, judged = verdict_parts(root, runs, completed, costs, "training FLOPs", failed, choice)
    paired = paired_section(rows)
    labels = {id(run): row.label for row in rows for run in row.runs}
    _write(paths["report.md"], [
        f"# Fine-tuning strategies compared\n\n{context(runs)}", advice, rows_text(rows),
        markdown_table(rows), judged, seeds_text(rows), probe_text(runs, labels), NOTES,
        f"## Accuracy under shift\n\n{shift_table(rows)}",
        f"## Which differences are real\n\n{PAIRED_NOTES}\n\n{paired}",
        marginal_table(rows, si, num), per_class_table(rows),
        f"## Failed runs\n\n{failed_table([r for r in runs if unfinished(r)])}",
        f"## Plots\n\n{_images(root, plot_paths, plot_note)}"])
    return paths


def write_tuned_report(root: Path, runs: list[Run], choice: dict | None = None) -> dict[str, Path]:
    from ftbench.report import plots, tuned_plots

    runs = tuned.without_retried(runs)
    choice = judgement.settings(runs, choice)
    items = tuned.with_intervals(root, tuned.tunings(runs), choice)
    rows = with_intervals(root, group_rows([r for t in items for r in t.tuned_runs]), choice)

    def draw(folder: Path) -> dict[str, Path]:
        return {**plots.draw_each({
            "Accuracy against total cost, search included": lambda: tuned_plots.accuracy_against_total_cost(
                items, folder / "accuracy_vs_total_flops.png"),
            "Sensitivity to the learning rate": lambda: tuned_plots.sensitivity(
                items, folder / "sensitivity_lr.png"),
        }), **plots.draw_all(rows, folder)}

    plot_paths, plot_note = _plots(root, max(len(items), len(rows)), draw)
    paths = {"report.md": root / REPORT_MD, "report.csv": root / REPORT_CSV, **plot_paths}
    write_csv(paths["report.csv"], rows)
    tuning_cost = expected_max.section(root, items, choice["margin"])  # writes its CSV and plot
    paths.update(tuning_cost.paths)
    by_strategy = {t.strategy: t.tuned for t in items if t.tuned}
    paired = compare(by_strategy)
    costs = {t.strategy: t.total_flops() for t in items}
    failed = Counter(r.strategy for r in runs if tuned.phase(r) == tuned.TUNED and unfinished(r))
    advice, judged = verdict_parts(root, runs, {t.strategy: t.tuned_runs for t in items if t.tuned_runs},
                                   costs, "total training FLOPs, search included", failed, choice)
    failed = [r for r in runs if unfinished(r)]
    _write(paths["report.md"], [
        f"# Fine-tuning strategies compared, each tuned\n\n{context(runs)}", advice,
        tuned.protocol(runs, items), threads_note(runs), judged,
        f"## Default against tuned\n\n{tuned.default_against_tuned(items)}",
        f"## Which differences are real (tuned)\n\n{PAIRED_NOTES}\n\n{paired}",
        "## Sensitivity\n\nValidation accuracy over each strategy's completed trials (pruned ones left "
        f"out): a wide spread means the strategy needs its search.\n\n{tuned.sensitivity(items)}",
        tuning_cost.markdown,
        f"## Search spaces\n\n{tuned.spaces(items)}",
        f"## The tuned runs\n\n{markdown_table(rows)}", NOTES,
        f"## Accuracy under shift (tuned)\n\n{shift_table(rows)}",
        f"## Failed runs\n\n{failed_table(failed)}", f"## Plots\n\n{_images(root, plot_paths, plot_note)}"])
    return paths


def summary_text(root: Path, runs: list[Run], paths: dict[str, Path], choice: dict | None = None) -> str:
    """What a report prints: its main table (intervals as in ``report.md``), then its files."""
    out = io.StringIO()
    choice = judgement.settings(runs, choice)
    if tuned.is_tuned_sweep(runs):
        items = tuned.with_intervals(root, tuned.tunings(runs), choice)
        out.write(tuned.default_against_tuned(items) + "\n\n")
    else:
        rows = with_intervals(root, group_rows(runs), choice)
        out.write(markdown_table(rows) + "\n\n")
        if any(row.few_seeds() for row in rows):
            out.write(f"† fewer than {FEW_SEEDS} seeds: too few for an interval to say much "
                      "(report.md says how many a ranking needs).\n\n")
        failed = [r for r in runs if unfinished(r)]
        if failed:
            out.write(f"Runs without a result:\n\n{failed_table(failed)}\n\n")
    for name, path in paths.items():
        out.write(f"{name}: {path}\n")
    return out.getvalue()
