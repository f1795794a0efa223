"""The report's reading aids: the marginal cost of accuracy, what the rows were split by, how the
probes met augmentation, and per-class accuracy."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict

from ftbench.report.collect import Run
from ftbench.report.escape import md
from ftbench.report.fmt import table
from ftbench.report.readings import test_acc, train_flops, train_seconds
from ftbench.report.rows import Row, confounded_note

STUDY_AXES = ("train_fraction", "lr_decay")  # the settings the report plots accuracy against


# -- the marginal view ---------------------------------------------------------------------------
def marginal(rows: list[Row]) -> dict[int, dict]:
    """Per row (by ``id``): what it costs beyond the cheapest row of its context (same model,
    dataset and other shared settings) per extra point of test accuracy.

    ``acc gain / TFLOP`` is a total ratio and always favours the cheapest strategy; a researcher
    choosing between strategies asks what each further point costs.
    """
    by_context: dict[tuple, list[tuple[Row, float, float, float]]] = defaultdict(list)
    for row in rows:
        if (acc := row.mean(test_acc)) is not None and (flops := row.mean(train_flops)) is not None:
            by_context[row.context].append((row, acc, flops, row.mean(train_seconds) or 0.0))
    out = {}
    for members in by_context.values():
        base, base_acc, base_flops, base_seconds = min(members, key=lambda m: m[2])
        for row, acc, total_flops, total_seconds in members:
            points = (acc - base_acc) * 100
            flops, seconds = total_flops - base_flops, total_seconds - base_seconds
            gains = row is not base and points > 0
            out[id(row)] = {"base": base.label, "is_base": row is base, "points": points,
                            "extra_flops": flops, "extra_seconds": seconds,
                            "extra_tflops_per_point": flops / 1e12 / points if gains else None,
                            "extra_seconds_per_point": seconds / points if gains else None}
    return out


def marginal_table(rows: list[Row], si, fmt) -> str:
    """``si``/``fmt``: the report's number formats."""
    view = marginal(rows)
    if len(view) < 2:
        return ""

    def cells(row: Row, m: dict) -> list | str:
        if m["is_base"]:
            return f"| {md(row.label)} | (the cheapest) | | | | | |"
        per_point = (["no gain", "no gain"] if m["extra_tflops_per_point"] is None else [
            si(m["extra_tflops_per_point"] * 1e12, "FLOP"), f"{fmt(m['extra_seconds_per_point'], '.2f')} s"])
        return [md(row.label), md(m["base"]), f"{m['points']:+.2f}" + (" †" if row.few_seeds() else ""),
                si(m["extra_flops"], "FLOP"), f"{m['extra_seconds']:+.1f} s", *per_point]

    lines = table(["strategy", "over", "Δ test acc (points)", "extra train FLOPs", "extra train time",
                   "extra FLOPs per point", "extra seconds per point"],
                  [cells(row, view[id(row)]) for row in rows if id(row) in view])
    return ("## Marginal cost of accuracy\n\nWhat each row costs beyond the cheapest row of its "
            "setting, per extra point (0.01) of test accuracy: the price of going further, where "
            "acc gain / TFLOP (a total ratio) always favours the cheapest.\n\n" + lines)


# -- what the rows are and how they ran ---------------------------------------------------------
def rows_text(rows: list[Row]) -> str:
    """Which settings split the rows, and notes on study axes that vary with other settings."""
    keys = list(dict.fromkeys(k for row in rows for k in row.setting))
    lines = []
    if keys:
        lines.append("Runs are seeds of one row only if every setting but the seed is equal; these "
                     f"differ between rows: {', '.join(md(k) for k in keys)}.")
    lines += [note for axis in STUDY_AXES if (note := confounded_note(rows, axis))]
    lines.append(threads_note([run for row in rows for run in row.runs]))
    return "\n\n".join(line for line in lines if line)


def threads_note(runs: list[Run]) -> str:
    """A warning when the tested runs ran at different torch thread counts (``runtime`` in
    ``result.json``): float sums, and so the trained weights, depend on the count."""
    tested = [run for run in runs if run.completed and run.result.judged_by == "test_acc"]
    counts = Counter(threads for run in tested if (threads := run.result.runtime.torch_threads) is not None)
    resumed = sum(1 for run in tested if run.result.runtime.resumed_from_threads)
    why = ("The same seed repeats a run bit for bit only at the same thread count (the sums run in "
           "another order), so a difference of a few test images may come from the thread count "
           "alone; set trainer.threads to one number to compare like with like.")
    parts = []
    if len(counts) > 1:
        listed = ", ".join(f"{threads} ({n} run{'s' if n != 1 else ''})"
                           for threads, n in sorted(counts.items()))
        parts.append(f"These runs trained at different torch thread counts: {listed}.")
    if resumed:
        parts.append(f"{resumed} run{' was' if resumed == 1 else 's were'} resumed at another torch "
                     f"thread count than {'it' if resumed == 1 else 'they'} started with.")
    return f"⚠ {' '.join(parts)} {why}" if parts else ""


def _head_only_first(run: Run) -> bool:
    history = run.result.history
    return bool(history) and history[0].trainable_groups == ["head"]


def probe_text(runs: list[Run], label: dict[int, str]) -> str:
    """How head-only epochs met augmentation: on cached features, or uncached (and dearer)."""
    augmented = [r for r in runs if r.completed and r.result.data.augmented is True and _head_only_first(r)]
    cached = {id(r) for r in augmented if (c := r.result.cost.feature_cache) is not None and c.used is True}
    uncached = sorted({label.get(id(r), r.strategy) for r in augmented if id(r) not in cached})
    lines = []
    if cached:
        lines.append("Head-only epochs (linear_probe, the probe epochs of lp_ft, gradual's first "
                     "epochs) trained on cached features of the deterministic (evaluation) transform; "
                     "augmentation (dataset.augment=true) applied in the epochs where backbone groups "
                     "trained.")
    if uncached:
        lines.append(f"⚠ {', '.join(md(name) for name in uncached)}: head-only epochs ran uncached "
                     "with augmentation (data.cache_features=false): their cost counts a backbone "
                     "forward per image per epoch, far more than a cached probe pays.")
    return "\n\n".join(lines)


# -- per class ----------------------------------------------------------------------------------
MAX_CLASS_LINES = 50
MAX_CLASS_COLUMNS = 30  # rows shown side by side; a wider table is read by no one


def _class_means(row: Row) -> dict[str, float]:
    """Mean test accuracy over the row's seeds, per class (a class no seed measured: left out)."""
    values: dict[str, list[float]] = defaultdict(list)
    for run in row.runs:
        for name, value in (run.result.metrics.per_class_test_acc or {}).items():
            if value is not None:
                values[name].append(value)
    return {name: statistics.fmean(v) for name, v in values.items()}


def per_class_table(rows: list[Row]) -> str:
    """Test accuracy per class (mean over seeds), one column per row, worst class first."""
    shown = [r for r in rows if any(run.result.metrics.per_class_test_acc for run in r.runs)]
    if not shown:
        return ""
    left_out = len(shown) - MAX_CLASS_COLUMNS
    shown = shown[:MAX_CLASS_COLUMNS]
    means = [_class_means(r) for r in shown]
    names = list(dict.fromkeys(n for r in shown for run in r.runs
                               for n in run.result.metrics.per_class_test_acc or {}))
    worst = {name: min((m[name] for m in means if name in m), default=2.0) for name in names}
    ordered = sorted(names, key=worst.__getitem__)
    def cells(name: str) -> list[str]:
        return [md(name), *("n/a" if (m := row.get(name)) is None else f"{m:.3f}" for row in means)]

    lines = table(["class", *(md(r.label) for r in shown)], map(cells, ordered[:MAX_CLASS_LINES]))
    notes = []
    if len(ordered) > MAX_CLASS_LINES:
        notes.append(f"{len(ordered) - MAX_CLASS_LINES} better classes not shown; every class is in each "
                     "run's result.json, metrics.per_class_test_acc.")
    if left_out > 0:
        notes.append(f"The first {MAX_CLASS_COLUMNS} rows only: {left_out} more are in their runs' "
                     "result.json files.")
    more = "".join(f"\n\n({note})" for note in notes)
    return ("## Per-class test accuracy\n\nMean over seeds, the worst class first (n/a: no test "
            "image of that class).\n\n" + lines + more)
