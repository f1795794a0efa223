"""The report's tables, as markdown and CSV: one row per strategy (and setting)."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping
from pathlib import Path

from ftbench.report.collect import LEFT_OUT, Run
from ftbench.report.escape import csv_cell, md
from ftbench.report.fmt import num, si, table
from ftbench.report.intervals import BOOTSTRAP, SEEDS_ONLY, Bounds
from ftbench.report.judgement import DEFAULTS
from ftbench.report.readings import Reading, shift_at, shift_mean, test_acc, train_flops, train_seconds
from ftbench.report.rows import FEW_SEEDS, Row, shift_keys
from ftbench.report.sections import marginal
from ftbench.run.atomic import write_text
from ftbench.run.schema import Record

COLUMNS = ["strategy", "setting", "runs", "failed", "test_acc_mean", "test_acc_low", "test_acc_high",
           "test_acc_interval", "test_acc_n", "few_seeds", "shift_acc_mean", "shift_acc_low",
           "shift_acc_high", "shift_acc_interval", "shift_drop", "train_seconds", "train_flops",
           "train_memory_mb", "peak_memory_mb", "trainable_params", "total_params", "images_per_second",
           "acc_gain_per_tflop", "extra_tflops_per_point", "extra_seconds_per_point", "verdict", "caveat",
           "to_best", "to_best_low", "to_best_high", "within_of_best"]
VERDICT_COLUMNS = {"verdict": "word", "caveat": "caveat", "to_best": "to_best", "to_best_low": "to_best_low",
                   "to_best_high": "to_best_high", "within_of_best": "within"}


def row_record(row: Row, extra: dict | None = None) -> dict:
    """One row as ``report.csv`` holds it; ``extra``: its entry of ``sections.marginal``."""
    extra = extra or {}
    return {
        "strategy": row.strategy,
        "setting": row.setting_text,
        "runs": len(row.runs),
        "failed": len(row.failed),
        **interval_columns("test_acc", row.interval(test_acc)),
        "test_acc_n": row.n(),
        "few_seeds": row.few_seeds(),
        **interval_columns("shift_acc", row.interval(shift_mean)),
        "shift_drop": row.shift_drop(),
        "train_seconds": row.mean(train_seconds),
        "train_flops": row.mean(train_flops),
        "train_memory_mb": row.mean(lambda r: r.cost.train_memory_mb),
        "peak_memory_mb": row.mean(lambda r: r.cost.peak_memory_mb),
        "trainable_params": row.mean(lambda r: r.cost.trainable_params),
        "total_params": row.mean(lambda r: r.cost.total_params),
        "images_per_second": row.mean(lambda r: r.cost.images_per_second),
        "acc_gain_per_tflop": row.gain_per_tflop(),
        "extra_tflops_per_point": extra.get("extra_tflops_per_point"),
        "extra_seconds_per_point": extra.get("extra_seconds_per_point"),
    }


def interval_columns(name: str, bounds: Bounds | None) -> dict:
    """``<name>_mean``, ``_low``, ``_high`` and ``_interval`` (what the interval resamples)."""
    if bounds is None:
        return {f"{name}_mean": None, f"{name}_low": None, f"{name}_high": None, f"{name}_interval": None}
    return {f"{name}_mean": bounds.mean, f"{name}_low": bounds.low, f"{name}_high": bounds.high,
            f"{name}_interval": bounds.method}


def records(rows: list[Row], drawn=None) -> list[dict]:
    """Every row as ``report.csv`` holds it, marginal costs included, and its verdict (``drawn``:
    a ``verdict.Verdict``; its word, caveat, bounds and ``within_of_best``, the smallest margin at
    which it is shown equivalent to the best, in accuracy units like the margin)."""
    view = marginal(rows)
    judged = {j.strategy: j for j in drawn.strategies} if drawn is not None else {}
    out = []
    for row in rows:
        j = judged.get(row.label)
        out.append(row_record(row, view.get(id(row))) | {
            column: getattr(j, name) if j is not None else None for column, name in VERDICT_COLUMNS.items()})
    return out


def accuracy_cell(row: Row, read: Reading = test_acc) -> str:
    """``0.9850 [0.9712, 0.9941] (n=3)``; † marks an interval from fewer than 3 seeds, ‡ one
    over seeds only (``intervals.Bounds.text``)."""
    bounds = row.interval(read)
    if bounds is None:
        return "n/a"
    return bounds.text() + (" †" if row.few_seeds(read) else "")


def markdown_table(rows: list[Row]) -> str:
    def cells(row: Row, r: dict) -> list:
        return [md(row.label), r["runs"], r["failed"], accuracy_cell(row), accuracy_cell(row, shift_mean),
                num(r["shift_drop"], ".4f"), f"{num(r['train_seconds'], '.1f')} s",
                si(r["train_flops"], "FLOP"), f"{num(r['train_memory_mb'], '.1f')} MB",
                f"{si(r['trainable_params'])} / {si(r['total_params'])}", num(r["images_per_second"], ".0f"),
                num(r["acc_gain_per_tflop"], ".3g")]

    return table(["strategy", "runs", "failed", "test acc (interval, n seeds)", "shifted acc (interval)",
                  "drop", "train time", "train FLOPs", "train memory", "trainable / total params", "images/s",
                  "acc gain / TFLOP"], (cells(row, row_record(row)) for row in rows))


def shift_table(rows: list[Row]) -> str:
    """Test accuracy on each shifted set (mean over seeds), beside the in-distribution one."""
    keys = shift_keys(rows)
    if not keys:
        return "No run was tested under shift (eval.shifts=[] and no dataset.ood_root)."
    reads = (test_acc, *map(shift_at, keys), shift_mean)
    return table(["strategy", "in-distribution", *map(md, keys), "mean"],
                 ([md(row.label), *(num(row.mean(read), ".4f") for read in reads)] for row in rows))


def failed_table(failed: list[Run]) -> str:
    if not failed:
        return "None."
    return table(["status", "strategy", "seed", "error", "job folder"], (
        [md(run.status), md(run.result.strategy), md(run.result.seed),
         md(str(run.error).splitlines()[0]) if run.error else "", md(run.dir)] for run in failed))


def csv_text(rows: list[Row], drawn=None, settings: Mapping | None = None) -> str:
    """The table's columns, then the mean accuracy on each shifted set (``shift_<name>``), then
    the ``settings`` the intervals were computed at (margin, confidence, resamples); text that a
    spreadsheet would run as a formula is escaped (``escape.csv_cell``)."""
    keys = shift_keys(rows)
    stamp = {k: settings[k] for k in DEFAULTS} if settings else {}
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow([csv_cell(name) for name in COLUMNS + [f"shift_{k}" for k in keys] + list(stamp)])
    for row, record in zip(rows, records(rows, drawn), strict=True):
        record |= {f"shift_{k}": row.mean(shift_at(k)) for k in keys} | stamp
        writer.writerow([csv_cell("" if v is None else v) for v in record.values()])
    return out.getvalue()


def write_csv(path: Path, rows: list[Row], drawn=None, settings: Mapping | None = None) -> Path:
    """``report.csv``, written atomically (a link at ``path`` is replaced, not followed)."""
    return write_text(path, csv_text(rows, drawn, settings))


def context(runs: list[Run]) -> str:
    def values(read: Callable[[Record], object]) -> str:
        found = sorted({str(v) for r in runs if (v := read(r.result)) is not None})
        return ", ".join(md(value) for value in found) or "n/a"

    return (f"Model: {values(lambda r: r.model)}. Dataset: {values(lambda r: r.dataset)}. "
            f"Seeds: {values(lambda r: r.seed)}. "
            f"Jobs: {len(runs)}, of which {sum(unfinished(r) for r in runs)} failed.")


NOTES = """\
Test accuracy: mean over seeds [interval], with the number of seeds n it rests on. Train time:
training wall-clock, validation excluded. FLOPs: multiply-adds of convolutions, matrix products
and attention (2 FLOPs each), forward and backward as run, counted on the first real step of
every phase of trainable groups. Train memory: what training held beyond the weights
(activations saved for backward, gradients, optimizer state, cached features), the largest over
phases: on CPU an account of those tensors on the first step of every phase, on GPU the CUDA
allocator's peak above the start (report.csv also has the process's peak_memory_mb). Trainable
params: the parameters that trained at any point of the run (for gradual, the groups it
reached), of the model's total. Acc gain / TFLOP: test accuracy above chance per TFLOP of
training. Drift: ||w - w0|| / ||w0|| per layer group at the end of training. Shifted acc: test
accuracy on the corrupted test sets of eval.shifts, averaged over the corruptions
(dataset.ood_root is not in it), mean over seeds [interval], the same images resampled for every
corruption; drop: test accuracy minus that, over the same runs."""


def notes(rows: list[Row]) -> str:
    """How to read the main table, with what its intervals resample (only the kinds it shows)."""
    methods = {b.method for row in rows for read in (test_acc, shift_mean)
               if (b := row.interval(read)) is not None}
    said = []
    if BOOTSTRAP in methods:
        said.append(f"Accuracy intervals resample {BOOTSTRAP}: the verdict's bootstrap, the same draw as "
                    "the verdict's table, so a strategy has one interval everywhere.")
    if SEEDS_ONLY in methods:
        said.append(f"‡ marks an interval over {SEEDS_ONLY}, for runs that kept no predictions (Student's "
                    "t over seeds): it leaves out the test set's noise and is too narrow.")
    return NOTES + ("\n\n" + " ".join(said) if said else "")


def legend(rows: list[Row]) -> str:
    """The † legend, only where a row rests on fewer than ``FEW_SEEDS`` seeds."""
    if not any(row.few_seeds() for row in rows):
        return ""
    return (f"† fewer than {FEW_SEEDS} seeds: the interval rests on so few runs that it says little; a "
            "strategy with fewer than 2 gets no word in the verdict.")


def unfinished(run: Run) -> bool:
    """Did not end as planned: a pruned search trial did (the pruner stopped it)."""
    return not run.completed and run.status != "pruned"


def failed_run(run: Run) -> bool:
    """Failed or diverged: what marks a strategy unstable. A run the report left out (another
    test set, a repeated seed, damaged predictions) is listed with the failed ones, but says
    nothing of the strategy's stability."""
    return unfinished(run) and run.status != LEFT_OUT
