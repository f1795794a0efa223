"""How a run fails: one clear line for the user, and a record that a sweep can report.

- A ``UserError`` (or a Hydra/OmegaConf error about the command line) is printed as one
  line and the process exits non-zero, with no traceback and no ``result.json``.
- A NaN or infinite loss stops training (``DivergenceGuard``) and is recorded as
  ``status: "diverged"``.
- In a multirun, a failing job writes a ``status: "failed"`` record and returns, so the
  other jobs go on; the report lists the failures next to the results.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import torch
from hydra.errors import HydraException, MissingConfigException, OverrideParseException
from lightning import Callback, LightningModule, Trainer
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ftbench.errors import UserError
from ftbench.redaction import redact
from ftbench.results import RESULT_FILE, versions, write_json

log = logging.getLogger("ftbench")

EXIT_USER_ERROR = 2
EXIT_DIVERGED = 3
EXIT_SIGTERM = 128 + 15  # the shell's convention for "terminated by signal 15"


class Diverged(RuntimeError):
    """The training loss became NaN or infinite: the run cannot produce a meaningful result."""


class DivergenceGuard(Callback):
    """Stops the run at the first non-finite training loss, naming where it happened.

    On CPU every step is checked. On an accelerator, reading the loss back each step would
    stall the device: steps fold ``isfinite`` into a device flag, read every
    ``every_n_steps`` steps and at epoch end, so no divergence slips through.
    """

    def __init__(self, every_n_steps: int = 20, read_every_step: bool | None = None) -> None:
        self.every_n_steps = every_n_steps
        self.read_every_step = read_every_step  # None: on CPU only
        self._every_step = True
        self._finite: torch.Tensor | None = None

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        on_cpu = pl_module.device.type == "cpu"
        self._every_step = on_cpu if self.read_every_step is None else self.read_every_step
        self._finite = None

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        loss = outputs["loss"].detach()
        if self._every_step:
            value = float(loss)
            self._check(trainer, pl_module, math.isfinite(value), f"is {value}")
            return
        finite = torch.isfinite(loss)
        self._finite = finite if self._finite is None else self._finite & finite
        if (batch_idx + 1) % self.every_n_steps == 0:
            self._check(trainer, pl_module, bool(self._finite))

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._finite is not None:
            self._check(trainer, pl_module, bool(self._finite))

    def _check(self, trainer: Trainer, pl_module: LightningModule, finite: bool,
               what: str = "is not finite (NaN or inf)") -> None:
        if not finite:
            raise Diverged(f"training loss {what} at epoch {trainer.current_epoch}, step "
                           f"{trainer.global_step}; lower strategy.lr "
                           f"(now {pl_module.plan.lr:g}) or check the data")


def failure_record(cfg: DictConfig | None, error: BaseException, status: str = "failed") -> dict:
    """What a failed job leaves behind: who it was and why it failed, without metrics."""
    record: dict = {"status": status, "error": one_line(error)}
    if cfg is not None:
        for key, path in (("strategy", "strategy.name"), ("model", "model.name"),
                          ("dataset", "dataset.name"), ("seed", "seed")):
            record[key] = OmegaConf.select(cfg, path, default=None, throw_on_resolution_failure=False)
        try:
            config = OmegaConf.to_container(cfg, resolve=True)
        except OmegaConfBaseException:  # the failure may be an interpolation that cannot resolve
            config = OmegaConf.to_container(cfg, resolve=False)
        record["config"] = redact(config)
    record["versions"] = versions()
    return record


def write_failure(run_dir: Path, cfg: DictConfig | None, error: BaseException,
                  status: str = "failed") -> Path:
    return write_json(run_dir / RESULT_FILE, failure_record(cfg, error, status))


def one_line(error: BaseException) -> str:
    """The error as a single line that names the bad value and, where known, what is allowed."""
    if isinstance(error, MissingConfigException) and error.missing_cfg_file:
        group, _, choice = error.missing_cfg_file.rpartition("/")
        if group and error.options:
            return f"{group}={choice!r} is not valid; allowed: {', '.join(error.options)}"
    if isinstance(error, OverrideParseException):
        return f"cannot parse the override {error.override!r}: {_first_line(error.message)}"
    if isinstance(error, HydraException) and isinstance(error.__cause__, OmegaConfBaseException):
        key = getattr(error.__cause__, "full_key", None)
        if "not in struct" in str(error.__cause__) and key:
            return (f"{key} is not a setting; check its spelling (or add a new key with "
                    f"+{key}=...)")
    if isinstance(error, UserError | Diverged | HydraException | OmegaConfBaseException):
        return _first_line(error)
    return f"{type(error).__name__}: {_first_line(error)}"


def _first_line(error: BaseException | str) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def exit_for(error: BaseException, run_dir: Path | None = None) -> NoReturn:
    """End the process with one line on stderr and an exit code that tells the kind of failure.

    ``run_dir``: the run's folder, named in the command that continues an interrupted run.
    """
    if isinstance(error, SIGTERMException):
        message, code = ("interrupted by SIGTERM; continue with: python -m ftbench.train "
                         f"resume={run_dir or '<run folder>'}", EXIT_SIGTERM)
    elif isinstance(error, Diverged):
        message, code = f"diverged: {one_line(error)}", EXIT_DIVERGED
    else:
        message, code = one_line(error), EXIT_USER_ERROR
    print(f"ftbench: error: {message}", file=sys.stderr)
    sys.exit(code)


# Failures that end a single run with one line rather than a traceback.
EXPECTED_FAILURES = (UserError, Diverged, SIGTERMException, HydraException, OmegaConfBaseException)


def one_line_errors(entry: Callable[[], object]) -> Callable[[], object]:
    """Wrap a ``@hydra.main`` entry so that command-line mistakes end as one line.

    Hydra reports its own errors (an unknown config option, a key that does not exist, bad
    override syntax) over several lines, from inside ``hydra.main``. With ``HYDRA_FULL_ERROR``
    set, Hydra re-raises them instead, and we print them here as one line. Anything else
    propagates with its traceback: it is a bug, not a user mistake.
    """

    @functools.wraps(entry)
    def main() -> object:
        os.environ["HYDRA_FULL_ERROR"] = "1"
        try:
            return entry()
        except EXPECTED_FAILURES as err:
            exit_for(err)

    return main


def run_guarded(job: Callable[[], dict], cfg: DictConfig, run_dir: Path, multirun: bool) -> dict | None:
    """Run ``job``; a failure ends a single run, and is recorded and survived in a multirun.

    A divergence is recorded in both modes: the run did start, and its record says why it
    has no metrics. A single run exits from here, inside the Hydra job, because Hydra would
    add a line of its own to an exception that leaves the job.
    """
    try:
        return job()
    except SIGTERMException as err:  # a SystemExit: it stops a multirun too
        if not multirun:
            exit_for(err, run_dir)
        raise
    except Diverged as err:
        write_failure(run_dir, cfg, err, status="diverged")
        if not multirun:
            exit_for(err)
        log.error("diverged: %s", one_line(err))
    except Exception as err:
        if not multirun:
            if isinstance(err, EXPECTED_FAILURES):
                exit_for(err)
            raise
        if not isinstance(err, UserError):
            log.exception("job failed")  # a bug: keep its traceback in the job's log
        log.error("failed: %s", one_line(err))
        write_failure(run_dir, cfg, err)
    return None
