"""The comparison in W&B: one summary run in the multirun's group, holding the report's tables
(``comparison/runs``, ``comparison/strategies``) and plots (``plots/<name>``), which no job's own
run holds; offline, uploaded with the jobs' runs by ``wandb sync`` (docs/wandb.md).
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ftbench.report.collect import Run
from ftbench.report.rows import Row
from ftbench.run.schema import Record

WANDB_LOGGER = "ftbench.tracking.loggers.wandb_logger"
SUMMARY_JOB_TYPE = "summary"

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


def run_table_rows(runs: list[Run], rows: list[Row]) -> tuple[list[str | int], list[list]]:
    """One row per job: who it was, its row of the report, and its figures."""
    label = {id(run): row.label for row in rows for run in (*row.runs, *row.failed)}
    columns: list[str | int] = ["job", "status", "strategy", "row", "seed", *RUN_COLUMNS]
    data = [[run.dir, run.status, run.strategy, label.get(id(run), run.strategy), run.result.seed,
             *(figure(run.result) for figure in RUN_COLUMNS.values())] for run in runs]
    return columns, data


def log_summary_run(root: Path, runs: list[Run], rows: list[Row], records: list[dict],
                    plots: dict[str, Path], settings: dict, group: str) -> Path:
    """Start the group's summary run, log the tables and plots, finish it; return its folder.

    ``records``: the report's rows as ``report.csv`` holds them; ``plots``: title -> PNG.
    """
    import wandb

    columns, data = run_table_rows(runs, rows)
    return _summary_run(root, settings, group, "summary", ["summary"],
                        {"summary_of": str(root), "jobs": len(runs), "rows": [row.label for row in rows]},
                        {"comparison/runs": wandb.Table(columns=columns, data=data),
                         **_tables({"comparison/strategies": records})}, plots)


def log_suite_summary_run(root: Path, name: str, tables: dict[str, list[dict]], plots: dict[str, Path],
                          settings: dict, group: str) -> Path:
    """The report across a suite's tasks as one summary run: its tables (``suite/<name>``: one
    row per task and strategy, one per strategy) and its plots; return the run's folder."""
    return _summary_run(root, settings, group, f"suite-{name}", ["summary", "suite"],
                        {"summary_of": str(root), "suite": name},
                        _tables({f"suite/{table}": records for table, records in tables.items()}), plots)


def _tables(tables: dict[str, list[dict]]) -> dict[str, Any]:
    """Each non-empty list of records as a W&B table, its columns the first record's keys."""
    import wandb

    logged: dict[str, Any] = {}
    for key, records in tables.items():
        if records:
            columns: list[str | int] = list(records[0])
            logged[key] = wandb.Table(columns=columns,
                                      data=[[record[c] for c in columns] for record in records])
    return logged


def _summary_run(root: Path, settings: dict, group: str, name: str, tags: list[str], config: dict,
                 logged: dict[str, Any], plots: dict[str, Path]) -> Path:
    """One summary run in the group's dashboard: ``logged`` and every plot as an image; the
    run is finished and its folder returned."""
    import wandb

    from ftbench.tracking.loggers import resolve_mode, start_wandb_run

    run = start_wandb_run(
        resolve_mode(settings.get("mode") or "auto"), float(settings.get("init_timeout") or 30),
        sync_hint=False, project=settings.get("project") or "ftbench", entity=settings.get("entity"),
        group=settings.get("group") or group, job_type=SUMMARY_JOB_TYPE, name=name,
        tags=tags, dir=str(root), config=config)
    for title, path in plots.items():
        logged[f"plots/{path.stem}"] = wandb.Image(str(path), caption=title)
    run.log(logged)
    folder = Path(run.dir).parent
    run.finish()
    return folder


def sync_command(root: Path) -> str | None:
    """One ``wandb sync`` command for every offline W&B run under ``root``, or None."""
    found = sorted(p for p in root.rglob("offline-run-*") if p.is_dir())
    if not found:
        return None
    depths = {len(path.relative_to(root).parts) for path in found}
    # the jobs' runs sit at <job>/wandb/offline-run-*, the summary's at wandb/offline-run-*
    if depths <= {2, 3}:
        patterns = [f"{shlex.quote(str(root))}/{'*/' * (depth - 2)}wandb/offline-run-*"
                    for depth in sorted(depths, reverse=True)]
        return "wandb sync " + " ".join(patterns)
    return "wandb sync " + " ".join(shlex.quote(str(path)) for path in found)

