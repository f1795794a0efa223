"""The comparison in W&B: one summary run in the multirun's group, holding the report.

Each job logs its own curves and cost; what none of them holds is the comparison itself. The
summary run logs it where the group's dashboard shows it: the per-run table
(``comparison/runs``: strategy, seed, accuracy, shifted accuracy when measured, FLOPs, time,
memory, trainable parameters), the report's rows with their intervals
(``comparison/strategies``) and every plot of the report as an image (``plots/<name>``).
Offline it is an offline run like the jobs', uploaded with them by ``wandb sync``.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from ftbench.report.collect import Run
from ftbench.report.rows import Row

WANDB_LOGGER = "ftbench.tracking.loggers.wandb_logger"
SUMMARY_JOB_TYPE = "summary"

# (column, dotted path in result.json); None where a run lacks the figure
RUN_COLUMNS = [
    ("test_acc", "metrics.test_acc"), ("shift_acc", "metrics.shift.mean"), ("val_acc", "metrics.val_acc"),
    ("train_flops", "cost.train_flops"), ("train_seconds", "cost.train_seconds"),
    ("peak_memory_mb", "cost.peak_memory_mb"), ("trainable_params", "cost.trainable_params"),
    ("total_params", "cost.total_params"), ("images_per_second", "cost.images_per_second"),
]


def wandb_settings(runs: list[Run]) -> dict | None:
    """The ``logger`` settings of the first run that logged to W&B; None if none did."""
    for run in runs:
        logger = run.get("config.logger")
        if isinstance(logger, dict) and logger.get("_target_") == WANDB_LOGGER:
            return logger
    return None


def run_table_rows(runs: list[Run], rows: list[Row]) -> tuple[list[str], list[list]]:
    """One row per job: who it was, its row of the report, and its figures."""
    label = {id(run): row.label for row in rows for run in (*row.runs, *row.failed)}
    columns = ["job", "status", "strategy", "row", "seed", *(name for name, _ in RUN_COLUMNS)]
    data = [[run.dir, run.status, run.strategy, label.get(id(run), run.strategy), run.get("seed"),
             *(run.number(path) for _, path in RUN_COLUMNS)] for run in runs]
    return columns, data


def log_summary_run(root: Path, runs: list[Run], rows: list[Row], records: list[dict],
                    plots: dict[str, Path], settings: dict, group: str) -> Path:
    """Start the group's summary run, log the tables and plots, finish it; return its folder.

    ``records``: the report's rows as ``report.csv`` holds them; ``plots``: title -> PNG.
    """
    import wandb

    from ftbench.tracking.loggers import resolve_mode, start_wandb_run

    run = start_wandb_run(
        resolve_mode(settings.get("mode") or "auto"), float(settings.get("init_timeout") or 30),
        sync_hint=False, project=settings.get("project") or "ftbench", entity=settings.get("entity"),
        group=settings.get("group") or group, job_type=SUMMARY_JOB_TYPE, name="summary",
        tags=["summary"], dir=str(root),
        config={"summary_of": str(root), "jobs": len(runs), "rows": [row.label for row in rows]})
    columns, data = run_table_rows(runs, rows)
    logged = {"comparison/runs": wandb.Table(columns=columns, data=data)}
    if records:
        names = list(records[0])
        logged["comparison/strategies"] = wandb.Table(
            columns=names, data=[[record[name] for name in names] for record in records])
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


def log_suite_summary_run(root: Path, name: str, tables: dict[str, list[dict]], plots: dict[str, Path],
                          settings: dict, group: str) -> Path:
    """The report across a suite's tasks as one summary run: its tables (``suite/<name>``: one
    row per task and strategy, one per strategy) and its plots; return the run's folder."""
    import wandb

    from ftbench.tracking.loggers import resolve_mode, start_wandb_run

    run = start_wandb_run(
        resolve_mode(settings.get("mode") or "auto"), float(settings.get("init_timeout") or 30),
        sync_hint=False, project=settings.get("project") or "ftbench", entity=settings.get("entity"),
        group=settings.get("group") or group, job_type=SUMMARY_JOB_TYPE, name=f"suite-{name}",
        tags=["summary", "suite"], dir=str(root), config={"summary_of": str(root), "suite": name})
    logged = {}
    for table, records in tables.items():
        if records:
            columns = list(records[0])
            logged[f"suite/{table}"] = wandb.Table(
                columns=columns, data=[[record[c] for c in columns] for record in records])
    for title, path in plots.items():
        logged[f"plots/{path.stem}"] = wandb.Image(str(path), caption=title)
    run.log(logged)
    folder = Path(run.dir).parent
    run.finish()
    return folder
