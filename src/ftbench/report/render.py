"""The report's files: ``report.md`` (table, notes, failed runs, plots) and ``report.csv``."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from ftbench.report import tuned
from ftbench.report.collect import Run, collect
from ftbench.report.comparison import compare
from ftbench.report.fmt import num, si
from ftbench.report.rows import SHIFT, SHIFT_MEAN, Row, group_rows, shift_keys
from ftbench.run_io import write_text

REPORT_MD, REPORT_CSV, PLOTS_DIR = "report.md", "report.csv", "plots"

COLUMNS = ["strategy", "setting", "runs", "failed", "test_acc_mean", "test_acc_ci95",
           "shift_acc_mean", "shift_acc_ci95", "shift_drop", "train_seconds", "train_flops",
           "train_memory_mb", "peak_memory_mb", "trainable_params", "images_per_second",
           "acc_gain_per_tflop"]


def row_record(row: Row) -> dict:
    return {
        "strategy": row.strategy,
        "setting": " ".join(f"{k}={v}" for k, v in row.setting.items()),
        "runs": len(row.runs),
        "failed": len(row.failed),
        "test_acc_mean": row.mean("metrics.test_acc"),
        "test_acc_ci95": row.ci95("metrics.test_acc"),
        "shift_acc_mean": row.mean(SHIFT_MEAN),
        "shift_acc_ci95": row.ci95(SHIFT_MEAN),
        "shift_drop": row.shift_drop(),
        "train_seconds": row.mean("cost.train_seconds"),
        "train_flops": row.mean("cost.train_flops"),
        "train_memory_mb": row.mean("cost.train_memory_mb"),
        "peak_memory_mb": row.mean("cost.peak_memory_mb"),
        "trainable_params": row.mean("cost.trainable_params"),
        "images_per_second": row.mean("cost.images_per_second"),
        "acc_gain_per_tflop": row.gain_per_tflop(),
    }


def _with_ci(mean: float | None, ci95: float | None) -> str:
    return num(mean, ".4f") + ("" if ci95 is None else f" ± {ci95:.4f}")


def markdown_table(rows: list[Row]) -> str:
    lines = ["| strategy | runs | failed | test acc (95% CI) | shifted acc (95% CI) | drop | train time "
             "| train FLOPs | train memory | trainable params | images/s | acc gain / TFLOP |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        r = row_record(row)
        acc = _with_ci(r["test_acc_mean"], r["test_acc_ci95"])
        shifted = _with_ci(r["shift_acc_mean"], r["shift_acc_ci95"])
        lines.append(
            f"| {row.label} | {r['runs']} | {r['failed']} | {acc} | {shifted} "
            f"| {num(r['shift_drop'], '.4f')} | {num(r['train_seconds'], '.1f')} s "
            f"| {si(r['train_flops'], 'FLOP')} | {num(r['train_memory_mb'], '.1f')} MB "
            f"| {si(r['trainable_params'])} | {num(r['images_per_second'], '.0f')} "
            f"| {num(r['acc_gain_per_tflop'], '.3g')} |")
    return "\n".join(lines)


def shift_table(rows: list[Row]) -> str:
    """Test accuracy on each shifted set (mean over seeds), beside the in-distribution one."""
    keys = shift_keys(rows)
    if not keys:
        return "No run was tested under shift (eval.shifts=[] and no dataset.ood_root)."
    lines = ["| strategy | in-distribution | " + " | ".join(keys) + " | mean |",
             "|---" * (len(keys) + 3) + "|"]
    for row in rows:
        cells = [num(row.mean(path), ".4f") for path in
                 ("metrics.test_acc", *(f"{SHIFT}.{k}" for k in keys), SHIFT_MEAN)]
        lines.append(f"| {row.label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def failed_table(failed: list[Run]) -> str:
    if not failed:
        return "None."
    lines = ["| status | strategy | seed | error | job folder |", "|---|---|---|---|---|"]
    for run in failed:
        error = str(run.data.get("error") or "").replace("|", "/").splitlines()
        lines.append(f"| {run.status} | {run.data.get('strategy')} | {run.data.get('seed')} "
                     f"| {error[0] if error else ''} | {run.dir} |")
    return "\n".join(lines)


def write_csv(path: Path, rows: list[Row]) -> None:
    """The table's columns, then the mean accuracy on each shifted set (``shift_<name>``)."""
    keys = shift_keys(rows)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS + [f"shift_{k}" for k in keys])
        writer.writeheader()
        for row in rows:
            record = {**row_record(row), **{f"shift_{k}": row.mean(f"{SHIFT}.{k}") for k in keys}}
            writer.writerow({k: ("" if v is None else v) for k, v in record.items()})


def context(runs: list[Run]) -> str:
    def values(key: str) -> str:
        found = sorted({str(r.data[key]) for r in runs if r.data.get(key) is not None})
        return ", ".join(found) or "n/a"

    return (f"Model: {values('model')}. Dataset: {values('dataset')}. Seeds: {values('seed')}. "
            f"Jobs: {len(runs)}, of which {sum(not r.completed for r in runs)} failed.")


NOTES = """\
Test accuracy: mean over seeds ± half-width of the Student-t 95% interval (n/a below two
seeds). Train time: training wall-clock, validation excluded. FLOPs: multiply-adds of
convolutions, matrix products and attention (2 FLOPs each), forward and backward as run,
counted on the first real step of every phase of trainable groups. Train memory: what training
held beyond the weights (activations saved for backward, gradients, optimizer state, cached
features), the largest over phases: on CPU an account of those tensors on the first step of
every phase, on GPU the CUDA allocator's peak above the start (report.csv also has the
process's peak_memory_mb). Acc gain / TFLOP: test accuracy above chance per
TFLOP of training. Drift: ||w - w0|| / ||w0|| per layer group at the end of training.
Shifted acc: test accuracy on the corrupted test sets of eval.shifts, averaged over the
corruptions (dataset.ood_root is not in it), mean over seeds ± 95% interval; drop: test accuracy
minus that, over the same runs."""


def paired_section(rows: list[Row]) -> tuple[str, str]:
    """The recommendation and the paired table over the rows' shared seeds."""
    by_row = {row.label: {run.data.get("seed"): run.number("metrics.test_acc") for run in row.runs}
              for row in rows if row.runs}
    costs = {row.label: row.mean("cost.train_flops") for row in rows}
    return compare(by_row, costs, "training FLOPs")


def _images(root: Path, plot_paths: dict[str, Path]) -> str:
    return "\n\n".join(f"### {title}\n\n![{title}]({path.relative_to(root)})"
                        for title, path in plot_paths.items())


def write_report(root: Path, runs: list[Run] | None = None) -> dict[str, Path]:
    """Write ``report.md``, ``report.csv`` and the plots into ``root``; return their paths.

    ``runs`` are the jobs ``collect(root)`` read, if the caller has them already. A tuned
    comparison's folder gets the tuned report (``ftbench.report.tuned``).
    """
    from ftbench.report import plots  # matplotlib is imported only when a report is drawn

    runs = collect(root) if runs is None else runs
    if tuned.is_tuned_sweep(runs):
        return write_tuned_report(root, runs)
    rows = group_rows(runs)
    plot_paths = plots.draw_all(rows, root / PLOTS_DIR)
    paths = {"report.md": root / REPORT_MD, "report.csv": root / REPORT_CSV, **plot_paths}
    write_csv(paths["report.csv"], rows)
    advice, paired = paired_section(rows)
    failed = [r for r in runs if not r.completed]
    write_text(paths["report.md"],
               f"# Fine-tuning strategies compared\n\n{context(runs)}\n\n{advice}\n\n"
               f"{markdown_table(rows)}\n\n{NOTES}\n\n## Accuracy under shift\n\n{shift_table(rows)}\n\n"
               f"## Which differences are real\n\n{PAIRED_NOTES}\n\n{paired}\n\n"
               f"## Failed runs\n\n{failed_table(failed)}\n\n## Plots\n\n{_images(root, plot_paths)}\n")
    return paths


PAIRED_NOTES = """\
Each pair of strategies over the seeds both ran (a seed fixes the data order and the new head's
initialisation, so pairing removes its share of the spread): the mean difference of test
accuracy, Student's paired t-test (two-sided), and its p-value corrected for all the pairs at
once (Holm). "significant": corrected p < 0.05."""


def write_tuned_report(root: Path, runs: list[Run]) -> dict[str, Path]:
    from ftbench.report import plots, tuned_plots

    items = tuned.tunings(runs)
    rows = group_rows([r for t in items for r in t.tuned_runs])
    plot_dir = root / PLOTS_DIR
    plot_paths = {title: path for title, path in {
        "Accuracy against total cost, search included": tuned_plots.accuracy_against_total_cost(
            items, plot_dir / "accuracy_vs_total_flops.png"),
        "Sensitivity to the learning rate": tuned_plots.sensitivity(items, plot_dir / "sensitivity_lr.png"),
    }.items() if path is not None}
    plot_paths.update(plots.draw_all(rows, plot_dir))
    paths = {"report.md": root / REPORT_MD, "report.csv": root / REPORT_CSV, **plot_paths}
    write_csv(paths["report.csv"], rows)
    by_strategy = {t.strategy: t.tuned for t in items if t.tuned}
    advice, paired = compare(by_strategy, {t.strategy: t.total_flops() for t in items},
                             "total training FLOPs, search included")
    failed = [r for r in runs if (tuned.phase(r) == tuned.SEARCH and r.status not in ("completed", "pruned"))
              or (tuned.phase(r) != tuned.SEARCH and not r.completed)]
    write_text(paths["report.md"],
               f"# Fine-tuning strategies compared, each tuned\n\n{context(runs)}\n\n{advice}\n\n"
               f"{tuned.protocol(runs, items)}\n\n## Default against tuned\n\n"
               f"{tuned.default_against_tuned(items)}\n\n## Which differences are real (tuned)\n\n"
               f"{PAIRED_NOTES}\n\n{paired}\n\n## Sensitivity\n\nValidation accuracy over each "
               f"strategy's trials: a wide spread means the strategy needs its search.\n\n"
               f"{tuned.sensitivity(items)}\n\n## Search spaces\n\n{tuned.spaces(items)}\n\n"
               f"## The tuned runs\n\n{markdown_table(rows)}\n\n{NOTES}\n\n## Accuracy under shift "
               f"(tuned)\n\n{shift_table(rows)}\n\n## Failed runs\n\n"
               f"{failed_table(failed)}\n\n## Plots\n\n{_images(root, plot_paths)}\n")
    return paths


def summary_text(runs: list[Run], paths: dict[str, Path]) -> str:
    out = io.StringIO()
    if tuned.is_tuned_sweep(runs):
        items = tuned.tunings(runs)
        out.write(tuned.default_against_tuned(items) + "\n\n")
    else:
        out.write(markdown_table(group_rows(runs)) + "\n\n")
        failed = [r for r in runs if not r.completed]
        if failed:
            out.write(f"Runs without a result:\n\n{failed_table(failed)}\n\n")
    for name, path in paths.items():
        out.write(f"{name}: {path}\n")
    return out.getvalue()
