"""The Hydra callback that writes the report into a multirun's sweep folder."""

from __future__ import annotations

import logging
from pathlib import Path

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from ftbench.report.render import write_report

log = logging.getLogger("ftbench")


def write_report_quietly(root: Path) -> None:
    """Write the report of the sweep in ``root``; a broken report must not take the runs down."""
    try:
        paths = write_report(root)
    except Exception as err:
        log.error("report not written into %s: %s", root, err)
        return
    log.info("report: %s", paths["report.md"])


class WriteReport(Callback):
    """Write ``report.md``, ``report.csv`` and the plots when a multirun ends.

    Hydra's basic sweeper raises once a batch holding a failed job has run and then skips
    ``on_multirun_end``; so after a failure the report is also rebuilt as each later job ends,
    and the last job leaves a report that lists every job. (A job records its own failure in
    its ``result.json``; one that left none is listed as crashed.)
    """

    def __init__(self) -> None:
        self._seen_failure = False

    def _write(self, config: DictConfig) -> None:
        write_report_quietly(Path(config.hydra.sweep.dir))

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs) -> None:
        if job_return.status == JobStatus.FAILED:
            self._seen_failure = True
        if self._seen_failure and config.hydra.mode == RunMode.MULTIRUN:
            self._write(config)

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        self._write(config)
