"""A multirun repeated into its sweep folder continues it: what a job folder already finished stands.

A job whose folder holds a finished result (completed or diverged) of the same config is not run
again: its result is reused as it is (``finished_result``), so running a sweep's command twice
(``make run``) reruns only what did not finish. A killed job (a checkpoint and no result, or a
failed record) runs again whole. A finished result is never replaced: not by a job of another
config (refused), nor by a job's failure (``holds_finished``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ftbench.run.failures import UserError
from ftbench.run.result import RESULT_FILE, identity, job_record

FINISHED = ("completed", "diverged")  # a diverged run diverges again: running it twice tells nothing
_NOT_THE_RUN = ("resume", "progress")  # how a run was started or shown, not what it computed


def _absolute(folder: str | Path) -> Path:
    return Path(os.path.abspath(folder))


def holds_finished(folder: str | Path) -> bool:
    """Whether ``folder`` holds a completed or diverged result, which nothing may replace."""
    return job_record(_absolute(folder)).status in FINISHED


def finished_result(folder: str | Path, cfg) -> dict | None:
    """The finished result in a multirun job's ``folder`` if it was made with ``cfg``: the job
    is done and is not run again. None where there is none (or a failed record, or a killed
    run's checkpoint: the job runs again whole); ``UserError`` where a finished result of
    another config is there, which running the job would overwrite."""
    folder = _absolute(folder)
    record = job_record(folder)
    if record.status not in FINISHED:
        return None
    if _same_run(record.config, identity(cfg)["config"]):
        return record.to_data()  # what fit() returns: the result as result.json holds it
    raise UserError(f"hydra.sweep.dir: the job folder {str(folder)!r} holds a {record.status} "
                    f"run of another config ({RESULT_FILE}), which this job would overwrite; "
                    "allowed: the command that made it (its finished jobs are reused), or a new "
                    "hydra.sweep.dir")


def _same_run(saved, now) -> bool:
    if not isinstance(saved, dict):
        return False
    saved, now = ({k: v for k, v in c.items() if k not in _NOT_THE_RUN} for c in (saved, now))
    return json.dumps(saved, sort_keys=True, default=str) == json.dumps(now, sort_keys=True, default=str)
