"""The comparison in W&B: one summary run in the multirun's group, holding the report's tables
(``comparison/runs``, ``comparison/strategies``) and plots (``plots/<name>``), which no job's own
run holds; offline, uploaded with the jobs' runs by ``wandb sync`` (docs/wandb.md).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ftbench.report.collect import Run
from ftbench.report.rows import Row
from ftbench.run.schema import Record

WANDB_LOGGER = "ftbench.tracking.loggers.wandb_logger"

# column -> its figure in a run's record; None where a run lacks it
RUN_COLUMNS: dict[str, Callable[[Record], float | int | None]] = {
    "test_acc": lambda r: r.metrics.test_acc, "shift_acc": lambda r: r.metrics.shift_mean,
    "val_acc": lambda r: r.metrics.val_acc, "train_flops": lambda r: r.cost.train_flops,
    "train_seconds": lambda r: r.cost.train_seconds, "peak_memory_mb": lambda r: r.cost.peak_memory_mb,
    "trainable_params": lambda r: r.cost.trainable_params, "total_params": lambda r: r.cost.total_params,
    "images_per_second": lambda r: r.cost.images_per_second,
}


def wandb_settings(runs: list[Run]) -> dict | None:
    """The ``logger`` settings of the first run that logged to W&B; None if none did, or if W&B
    was disabled there."""
    for run in runs:
        logger = run.result.config_at("logger")
        if isinstance(logger, dict) and logger.get("_target_") == WANDB_LOGGER:
            return None if logger.get("mode") == "disabled" else logger
    return None


def run_records(runs: list[Run], rows: list[Row]) -> list[dict]:
    """One record per job: who it was, its row of the report, and its figures."""
    label = {id(run): row.label for row in rows for run in (*row.runs, *row.failed)}
    return [{"job": run.dir, "status": run.status, "strategy": run.strategy,
             "row": label.get(id(run), run.strategy), "seed": run.result.seed,
             **{column: figure(run.result) for column, figure in RUN_COLUMNS.items()}} for run in runs]


def log_summary_run(root: Path, runs: list[Run], rows: list[Row], records: list[dict],
                    plots: dict[str, Path], settings: dict, group: str) -> Path:
    """Log the group's summary run (``records``: the report's rows as ``report.csv`` holds them;
    ``plots``: title -> PNG); return its folder."""
    from ftbench.tracking import loggers  # Lightning behind it: imported only when W&B was used

    return loggers.log_summary_run(
        root, settings, group, "summary", ["summary"],
        {"summary_of": str(root), "jobs": len(runs), "rows": [row.label for row in rows]},
        {"comparison/runs": run_records(runs, rows), "comparison/strategies": records}, plots)


def log_suite_summary_run(root: Path, name: str, tables: dict[str, list[dict]], plots: dict[str, Path],
                          settings: dict, group: str) -> Path:
    """The report across a suite's tasks as one summary run: its tables (``suite/<name>``: one
    row per task and strategy, one per strategy) and its plots; return the run's folder."""
    from ftbench.tracking import loggers

    return loggers.log_summary_run(root, settings, group, f"suite-{name}", ["summary", "suite"],
                                   {"summary_of": str(root), "suite": name},
                                   {f"suite/{table}": records for table, records in tables.items()}, plots)
