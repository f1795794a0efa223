"""The Hydra callback that writes the report into a multirun's sweep folder."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from ftbench.report.render import Written
from ftbench.report.rows import group_rows
from ftbench.report.suite_results import is_suite
from ftbench.report.tables import records
from ftbench.report.writing import report_folder
from ftbench.run.failures import UserError, one_line

log = logging.getLogger("ftbench")
RECOMMENDATION_STARTS = ("**Recommendation", "**No recommendation")


def _log_summary_run(root: Path, paths: dict[str, Path], of: str, whose: str,
                 log_run: Callable[[dict[str, Path]], Path]) -> None:
    """Log the W&B summary run (``log_run``, given the report's plots), then say how to upload the
    runs if W&B is offline. The report on disk stands without it: a failure is logged (a bug with
    its traceback), not raised."""
    from ftbench.tracking.loggers import sync_command

    plots = {title: path for title, path in paths.items() if path.suffix == ".png"}
    try:
        log.info("W&B summary run%s: %s", of, log_run(plots))
    except Exception as err:
        log.error("W&B summary run%s not logged: %s", of, err, exc_info=not isinstance(err, UserError))
    command = sync_command(root)
    if command:
        print(f"ftbench: W&B is offline; upload this {whose} runs later with: {command}", file=sys.stderr)


def split_answer(summary: str) -> tuple[str, str | None]:
    """A printed summary without its recommendation paragraph, and that paragraph as plain text
    (no bold), or None: a sweep prints the rest first and its answer last, once."""
    paragraphs = summary.split("\n\n")
    for i, paragraph in enumerate(paragraphs):
        if paragraph.strip().startswith(RECOMMENDATION_STARTS):
            rest = "\n\n".join(paragraphs[:i] + paragraphs[i + 1:])
            return rest if rest.endswith("\n") else rest + "\n", " ".join(paragraph.replace("**", "").split())
    return summary, None


def write_report_quietly(root: Path, choice: dict | None = None) -> tuple[list, Written] | None:
    """Write the report of the sweep in ``root`` and return its runs (as screened) and files; a
    report that cannot be written must not take the runs down with it: None, and one line
    saying why (a setting it refuses, a folder it cannot write, or what went wrong). ``choice``:
    margin, confidence and resamples given (a suite's command), else as the runs were configured."""
    try:
        runs, paths, _ = report_folder(root, choice)
    except (UserError, OSError) as err:
        log.error("report not written into %s: %s", root, one_line(err))
        return None
    except Exception as err:  # a bug: one line here, and the traceback in the job's debug log
        log.error("report not written into %s: %s: %s", root, type(err).__name__, one_line(err))
        log.debug("the report's error", exc_info=True)
        return None
    log.info("report: %s", paths["report.md"])
    return runs, paths


def write_suite_report_quietly(root: Path) -> tuple | None:
    """Write the report across the tasks of the suite in ``root``; return what it found and its
    files, or None (the reason logged): the tasks' results stand without it."""
    from ftbench.report.suite_report import write_suite_report

    try:
        cross, paths = write_suite_report(root)
    except Exception as err:
        log.error("report across tasks not written into %s: %s", root, err,
                  exc_info=not isinstance(err, UserError))
        return None
    log.info("report across tasks: %s", paths["report.md"])
    return cross, paths


class WriteReport(Callback):
    """Write ``report.md``, ``report.csv`` and the plots when a multirun ends, and print the table.

    Hydra's basic sweeper raises once a batch holding a failed job has run and then skips
    ``on_multirun_end``; so after a failure the report is also rebuilt as each later job ends,
    and the last job leaves a report that lists every job. (A job records its own failure in
    its ``result.json``; one that left none is listed as crashed.)

    When the jobs logged to W&B, the end of the multirun also logs the comparison to W&B as
    one summary run of the group (``report/wandb_summary.py``) and prints the one ``wandb
    sync`` command that uploads every offline run of the sweep.
    """

    def __init__(self) -> None:
        self._seen_failure = False

    def _write(self, config: DictConfig, final: bool = False) -> None:
        root = Path(config.hydra.sweep.dir)
        if is_suite(root):
            self._write_suite(root, final)
            return
        written = write_report_quietly(root)
        if written and final:
            runs, paths = written
            rest, answer = split_answer(paths.summary)
            print(rest, end="", flush=True)
            self._to_wandb(root, runs, paths, str(config.hydra.sweep.dir))
            if answer:  # the last line a sweep prints: its answer
                print(f"\n{answer}", flush=True)

    @staticmethod
    def _to_wandb(root: Path, runs, paths: dict[str, Path], sweep_dir: str) -> None:
        from ftbench.report import wandb_summary
        from ftbench.tracking.loggers import sweep_group

        settings = wandb_summary.wandb_settings(runs)
        if settings is not None:
            rows = group_rows(runs)
            _log_summary_run(root, paths, "", "multirun's", lambda plots: wandb_summary.log_summary_run(
                root, runs, rows, records(rows), plots, settings, sweep_group(sweep_dir)))

    @staticmethod
    def _write_suite(root: Path, final: bool) -> None:
        """A suite's folder (``experiment=benchmark``): the report across its tasks."""
        written = write_suite_report_quietly(root)
        if not (written and final):
            return
        from ftbench.report import wandb_summary
        from ftbench.report.suite_report import cell_records, strategy_records, suite_summary_text
        from ftbench.tracking.loggers import sweep_group

        cross, paths = written
        rest, answer = split_answer(suite_summary_text(cross, paths))
        print(rest, end="", flush=True)
        runs = [run for task in cross.results.tasks for cell in task.cells.values() for run in cell.runs]
        settings = wandb_summary.wandb_settings(runs + [r for t in cross.results.tasks for r in t.failed])
        if settings is not None:
            def log_run(plots: dict[str, Path]) -> Path:
                tables = {"tasks": cell_records(cross), "strategies": strategy_records(cross)}
                return wandb_summary.log_suite_summary_run(root, cross.results.record.name, tables, plots,
                                                           settings, sweep_group(str(root)))

            _log_summary_run(root, paths, " of the suite", "suite's", log_run)
        if answer:  # the last line a suite prints: its answer
            print(f"\n{answer}", flush=True)

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs) -> None:
        if job_return.status == JobStatus.FAILED:
            self._seen_failure = True
        if self._seen_failure and config.hydra.mode == RunMode.MULTIRUN:
            self._write(config)

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        self._write(config, final=True)
