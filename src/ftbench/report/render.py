"""The report's files: ``report.md`` (table, notes, failed runs, plots) and ``report.csv``."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from ftbench.report.collect import Run, collect
from ftbench.report.rows import Row, group_rows

REPORT_MD, REPORT_CSV, PLOTS_DIR = "report.md", "report.csv", "plots"

COLUMNS = ["strategy", "setting", "runs", "failed", "test_acc_mean", "test_acc_ci95",
           "train_seconds", "train_flops", "peak_memory_mb", "trainable_params",
           "images_per_second", "acc_gain_per_tflop"]


def row_record(row: Row) -> dict:
    return {
        "strategy": row.strategy,
        "setting": row.setting_text,
        "runs": len(row.runs),
        "failed": len(row.failed),
        "test_acc_mean": row.mean("metrics.test_acc"),
        "test_acc_ci95": row.ci95("metrics.test_acc"),
        "train_seconds": row.mean("cost.train_seconds"),
        "train_flops": row.mean("cost.train_flops"),
        "peak_memory_mb": row.mean("cost.peak_memory_mb"),
        "trainable_params": row.mean("cost.trainable_params"),
        "images_per_second": row.mean("cost.images_per_second"),
        "acc_gain_per_tflop": row.gain_per_tflop(),
    }


def si(value: float | None, unit: str = "") -> str:
    if value is None:
        return "n/a"
    for factor, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}".strip()


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def markdown_table(rows: list[Row]) -> str:
    lines = ["| strategy | runs | failed | test acc (95% CI) | train time | train FLOPs | peak memory "
             "| trainable params | images/s | acc gain / TFLOP |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        r = row_record(row)
        acc = _fmt(r["test_acc_mean"], ".4f")
        if r["test_acc_ci95"] is not None:
            acc += f" ± {r['test_acc_ci95']:.4f}"
        lines.append(
            f"| {row.label} | {r['runs']} | {r['failed']} | {acc} | {_fmt(r['train_seconds'], '.1f')} s "
            f"| {si(r['train_flops'], 'FLOP')} | {_fmt(r['peak_memory_mb'], '.0f')} MB "
            f"| {si(r['trainable_params'])} | {_fmt(r['images_per_second'], '.0f')} "
            f"| {_fmt(r['acc_gain_per_tflop'], '.3g')} |")
    return "\n".join(lines)


def failed_table(runs: list[Run]) -> str:
    failed = [r for r in runs if not r.completed]
    if not failed:
        return "None."
    lines = ["| status | strategy | seed | error | job folder |", "|---|---|---|---|---|"]
    for run in failed:
        error = str(run.data.get("error") or "").replace("|", "/").splitlines()
        lines.append(f"| {run.status} | {run.data.get('strategy')} | {run.data.get('seed')} "
                     f"| {error[0] if error else ''} | {run.dir} |")
    return "\n".join(lines)


def write_csv(path: Path, rows: list[Row]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in row_record(row).items()})


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
counted on the first real step of every phase of trainable groups. Peak memory: CUDA peak
allocated on GPU, process peak RSS on CPU. Acc gain / TFLOP: test accuracy above chance per
TFLOP of training. Drift: ||w - w0|| / ||w0|| per layer group at the end of training."""


def write_report(root: Path, runs: list[Run] | None = None) -> dict[str, Path]:
    """Write ``report.md``, ``report.csv`` and the plots into ``root``; return their paths.

    ``runs`` are the jobs ``collect(root)`` read, if the caller has them already.
    """
    from ftbench.report import plots  # matplotlib is imported only when a report is drawn

    runs = collect(root) if runs is None else runs
    rows = group_rows(runs)
    plot_paths = plots.draw_all(rows, root / PLOTS_DIR)
    paths = {"report.md": root / REPORT_MD, "report.csv": root / REPORT_CSV, **plot_paths}
    write_csv(paths["report.csv"], rows)
    images = "\n\n".join(f"### {title}\n\n![{title}]({path.relative_to(root)})"
                         for title, path in plot_paths.items())
    paths["report.md"].write_text(
        f"# Fine-tuning strategies compared\n\n{context(runs)}\n\n{markdown_table(rows)}\n\n"
        f"{NOTES}\n\n## Failed runs\n\n{failed_table(runs)}\n\n## Plots\n\n{images}\n")
    return paths


def summary_text(runs: list[Run], paths: dict[str, Path]) -> str:
    out = io.StringIO()
    out.write(markdown_table(group_rows(runs)) + "\n\n")
    if any(not r.completed for r in runs):
        out.write(f"Runs without a result:\n\n{failed_table(runs)}\n\n")
    for name, path in paths.items():
        out.write(f"{name}: {path}\n")
    return out.getvalue()
