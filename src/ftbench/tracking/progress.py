"""Progress of long work, one line at a time: jobs of a multirun, epochs of a job.

- ``SweepProgress`` (a Hydra callback): a line when each job of a multirun starts and ends,
  with the running count, the elapsed time and the time left at the pace of the jobs done.
- ``EpochLines`` (a Lightning progress bar): one line per epoch (epoch k/N, train loss, val
  accuracy, seconds) instead of a bar redrawn in place, which a log file or a multirun of
  many jobs cannot show. ``progress=auto`` picks it in a multirun and whenever the output is
  not a terminal, Lightning's own bar otherwise.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, cast

from hydra.core.utils import JobReturn
from hydra.errors import OverrideParseException
from hydra.experimental.callback import Callback as HydraCallback
from hydra.types import RunMode
from lightning import LightningModule, Trainer
from lightning.pytorch.callbacks import ProgressBar
from omegaconf import DictConfig

from ftbench.run.overrides import override_key, parse_overrides
from ftbench.run.result import RESULT_FILE, UnreadableResult, read_result
from ftbench.tracking.units import duration

if TYPE_CHECKING:
    from ftbench.finetune.observed import TrainingView

log = logging.getLogger("ftbench")

BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


def sweep_plan(config: DictConfig) -> tuple[int | None, list[str]]:
    """How many jobs a multirun launches and which keys it sweeps, as its sweeper will see them.

    Hydra's basic sweeper launches the product of its ``params`` and the command line's sweep
    overrides (a key on the command line replaces the same key of ``params``); other sweepers
    (Optuna, …) say how many trials they run in ``n_trials``, or nothing.
    """
    sweeper = config.hydra.sweeper
    params = [f"{key}={value}" for key, value in (sweeper.get("params") or {}).items()]
    try:
        overrides = parse_overrides([*params, *config.hydra.overrides.task])
    except OverrideParseException:  # an override only the sweeper's own parser understands
        return sweeper.get("n_trials"), []
    sizes: dict[str, int] = {}
    for override in overrides:
        key = override.get_key_element()
        sizes[key] = len(list(override.sweep_string_iterator())) if override.is_discrete_sweep() else 1
    swept = [key for key, size in sizes.items() if size > 1]
    if sweeper.get("_target_") != BASIC_SWEEPER:
        return sweeper.get("n_trials"), swept
    return math.prod(sizes.values()), swept


class SweepProgress(HydraCallback):
    """One line per job start and end of a multirun: count, elapsed, and time left.

    The time left is the elapsed time per finished job times the jobs still to run: with a
    parallel launcher that is the pace of the whole pool. Jobs are counted by the
    ``result.json`` files written since the multirun started (every job writes one, a failed
    one too), so the count holds when jobs run in other processes; before any job has
    finished, the time left is unknown (each job estimates its own time before it trains).
    """

    def __init__(self) -> None:
        self.start = time.time()
        self.total: int | None = None
        self.swept: list[str] = []
        self.ended = 0  # jobs this process saw end

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        self.start = time.time()
        self.total, self.swept = sweep_plan(config)
        jobs = f"{self.total} jobs" if self.total else "jobs"
        over = f" over {' x '.join(self.swept)}" if self.swept else ""
        log.info("multirun: %s%s into %s", jobs, over, config.hydra.sweep.dir)

    def _done(self, config: DictConfig) -> int:
        root = Path(str(config.hydra.sweep.dir))
        written = sum(1 for p in root.rglob(RESULT_FILE) if p.stat().st_mtime >= self.start)
        return max(written, self.ended)

    def _status(self, config: DictConfig) -> str:
        done = self._done(config)
        elapsed = time.time() - self.start
        status = f"{done}{f' of {self.total}' if self.total else ''} done, elapsed {duration(elapsed)}"
        if self.total and done >= self.total:
            return status
        if not done:
            return f"{status}, time left unknown until a job has finished"
        if not self.total:
            return f"{status}, {duration(elapsed / done)} per job"
        return f"{status}, about {duration(elapsed / done * (self.total - done))} left"

    def _job(self, config: DictConfig) -> str:
        number = f"job {config.hydra.job.num + 1}{f'/{self.total}' if self.total else ''}"
        chosen = [o for o in config.hydra.overrides.task if override_key(o) in self.swept]
        return f"{number} ({' '.join(chosen)})" if chosen else number

    def on_job_start(self, config: DictConfig, **kwargs) -> None:
        if config.hydra.mode != RunMode.MULTIRUN:  # a single run has its epoch lines
            return
        self._job_start = time.time()
        log.info("%s starts: %s", self._job(config), self._status(config))

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs) -> None:
        if config.hydra.mode != RunMode.MULTIRUN:
            return
        self.ended += 1
        outcome = job_outcome(Path(str(config.hydra.runtime.output_dir)), job_return)
        took = duration(time.time() - getattr(self, "_job_start", self.start))
        log.info("%s %s in %s: %s", self._job(config), outcome, took, self._status(config))


def job_outcome(job_dir: Path, job_return: JobReturn) -> str:
    """What the job's own record says (completed, failed, diverged), else Hydra's status."""
    try:
        return read_result(job_dir).status
    except (OSError, UnreadableResult):
        return job_return.status.name.lower() if job_return.status else "ended"


def progress_form(form: str, multirun: bool) -> str:
    """``auto``: lines in a multirun or when the output is not a terminal, else the bar."""
    if form != "auto":
        return form
    return "lines" if multirun or not sys.stderr.isatty() else "bar"


def progress_bar(cfg: DictConfig, multirun: bool = False) -> list[ProgressBar]:
    """The progress bar a run's config asks for, as the callbacks to add: ``EpochLines`` for
    lines, none for Lightning's own bar (or none at all: ``trainer.enable_progress_bar=false``).
    ``multirun``: whether the run is a job of one."""
    form = progress_form(cfg.get("progress", "auto"), multirun)
    return [EpochLines()] if cfg.trainer.enable_progress_bar and form == "lines" else []


class EpochLines(ProgressBar):
    """Lightning's progress machinery, writing one line per finished epoch.

    ``epoch 3/6: train_loss 0.4123, val_acc 0.9120, 12.3 s`` (seconds of the whole epoch,
    validation included). The values come from the module's ``epoch_value``, which holds
    this epoch's figures whichever epoch-end hook runs first (Lightning calls callbacks'
    ``on_train_epoch_end`` before the module's, which logs ``train_loss_epoch``).
    """

    def __init__(self) -> None:
        super().__init__()
        self._enabled = True
        self._epoch_start = time.perf_counter()

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._epoch_start = time.perf_counter()

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        view = watched(pl_module)
        if not self._enabled:
            return
        parts = [f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}:"]
        for name in ("train_loss", "val_acc"):
            value = view.epoch_value(name)
            parts.append(f"{name} {value:.4f}," if value is not None else f"{name} n/a,")
        parts.append(f"{time.perf_counter() - self._epoch_start:.1f} s")
        log.info(" ".join(parts))


def watched(pl_module: LightningModule) -> TrainingView:
    """The module as ``TrainingView``: what this observer may read of training."""
    return cast("TrainingView", pl_module)
