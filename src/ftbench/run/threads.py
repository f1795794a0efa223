"""How many threads torch computes with in a run: the run's share of the machine's cores.

Torch starts with a thread per core. Runs that share a machine (the jobs of a parallel
launcher, copies of the command started by hand) would each start that many, and threads
that outnumber the cores wait on each other at every parallel region: each run then takes
many times as long, not twice. ``trainer.threads=auto`` (the default) gives each run
``cores // workers`` threads (at least one), where

- ``cores`` are the CPUs this process may run on (``os.sched_getaffinity``: a SLURM or
  container allocation, not the whole machine), and
- ``workers`` are the runs on this machine at once: the parallel launcher's jobs
  (``hydra.launcher.n_jobs`` of joblib, bounded by ``tune.batch`` in the tuned comparison,
  which launches that many trials at once; ``tune.batch`` with submitit's local launcher),
  times the copies of the command the environment variable ``FTBENCH_WORKERS`` says were
  started on this machine (default 1).

``auto`` never exceeds ``OMP_NUM_THREADS`` where the environment sets it (Lightning's DDP sets
it for its processes, joblib for its workers). A number (``trainer.threads=4``) is used as it
is. The count is applied before any data is read, again once Lightning has set up its
processes, and recorded in ``result.json`` (``runtime``) and in every checkpoint: float sums
depend on it, so the same seed repeats a run bit for bit only at the same count.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
from lightning import Callback, LightningModule, Trainer
from omegaconf import DictConfig

from ftbench.run.failures import UserError
from ftbench.run.schema import Runtime

log = logging.getLogger("ftbench")

WORKERS_ENV = "FTBENCH_WORKERS"  # copies of the command started on this machine
AUTO = "auto"


@dataclass(frozen=True)
class ThreadShare:
    """The thread count a run uses and where it came from."""

    threads: int
    setting: int | str  # trainer.threads: auto or a number
    cores: int
    workers: int
    omp: int | None = None  # OMP_NUM_THREADS, where the environment sets it

    def describe(self) -> str:
        """For the run's start line: ``2 torch threads (2 cores / 1 worker on this machine)``."""
        plural = "s" if self.threads != 1 else ""
        if self.setting != AUTO:
            return f"{self.threads} torch thread{plural} (trainer.threads={self.setting})"
        workers = f"{self.workers} worker{'s' if self.workers != 1 else ''}"
        why = f"{self.cores} cores / {workers} on this machine"
        if self.omp is not None and self.threads < max(1, self.cores // self.workers):
            why = f"OMP_NUM_THREADS={self.omp}; {why}"
        return f"{self.threads} torch thread{plural} ({why})"

    def record(self) -> Runtime:
        """What ``result.json`` keeps under ``runtime`` (no host name)."""
        return Runtime(torch_threads=torch.get_num_threads(), threads=self.setting, cores=self.cores,
                       workers=self.workers)


def available_cores() -> int:
    """The CPUs this process may run on (its affinity mask, where the system has one)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # macOS, Windows
        return os.cpu_count() or 1


def check_threads(setting: object) -> int | str:
    """``trainer.threads``: ``auto`` or an integer >= 1, else one line."""
    if setting == AUTO:
        return AUTO
    if isinstance(setting, bool) or not isinstance(setting, int) or setting < 1:
        raise UserError(f"trainer.threads={setting!r} is not valid; allowed: auto (the cores of this "
                        "machine / the workers on it), or an integer >= 1")
    return int(setting)


def copies_started(environ: dict | None = None) -> int:
    """``FTBENCH_WORKERS``: how many copies of the command run on this machine (unset: 1)."""
    value = (os.environ if environ is None else environ).get(WORKERS_ENV, "").strip()
    if not value:
        return 1
    if not value.isdigit() or int(value) < 1:
        raise UserError(f"{WORKERS_ENV}={value!r} is not valid; allowed: an integer >= 1 (the copies "
                        "of the command started on this machine), or unset")
    return int(value)


def launcher_jobs(launcher: DictConfig | dict | None, tune_batch: int | None, cores: int) -> int:
    """Jobs a multirun's launcher runs at once on this machine.

    joblib runs ``n_jobs`` at once (-1: one per core, -2: all but one, as joblib counts); its
    batches are ``tune.batch`` trials in the tuned comparison, so at most that many. submitit's
    local launcher runs a whole batch at once. Other launchers run one job at a time here (the
    basic launcher) or each job on a machine of its own (SLURM).
    """
    target = str((launcher or {}).get("_target_") or "")
    if "joblib" in target.lower():
        n_jobs = (launcher or {}).get("n_jobs")
        if not isinstance(n_jobs, int) or isinstance(n_jobs, bool) or n_jobs == 0:
            jobs = 1
        else:
            jobs = n_jobs if n_jobs > 0 else max(1, cores + 1 + n_jobs)
        return min(jobs, tune_batch) if tune_batch else jobs
    if "submitit" in target.lower() and "local" in target.lower():
        return tune_batch or 1
    return 1


def omp_limit(environ: dict | None = None) -> int | None:
    """``OMP_NUM_THREADS`` where the environment sets a whole number >= 1, else None."""
    value = (os.environ if environ is None else environ).get("OMP_NUM_THREADS", "").strip()
    return int(value) if value.isdigit() and int(value) >= 1 else None


def resolve_threads(setting: object, cores: int, workers: int, omp: int | None = None) -> int:
    """The thread count for ``trainer.threads=setting``: a number as given; ``auto``:
    ``cores // workers``, at least 1, and at most ``omp`` (``OMP_NUM_THREADS``) if given."""
    setting = check_threads(setting)
    if setting != AUTO:
        return int(setting)
    share = max(1, cores // max(1, workers))
    return min(share, omp) if omp else share


def thread_share(setting: object = AUTO, jobs: int = 1) -> ThreadShare:
    """The thread count for ``trainer.threads=setting`` on this machine, now, where the run's
    launcher runs ``jobs`` at once (``launcher_jobs``) in each copy of the command started."""
    setting = check_threads(setting)
    cores = available_cores()
    workers = copies_started() * jobs
    omp = omp_limit()
    return ThreadShare(resolve_threads(setting, cores, workers, omp), setting, cores, workers, omp)


def apply_threads(setting: object = AUTO, jobs: int = 1) -> ThreadShare:
    """Set torch's intra-op thread count (``thread_share``); returns the share."""
    share = thread_share(setting, jobs)
    torch.set_num_threads(share.threads)
    return share


class KeepThreads(Callback):
    """Keeps the run's thread count, and the counts of its earlier attempts in its checkpoints.

    Sets the count again once Lightning has set up its processes (its DDP launcher sets its
    own count, and ``OMP_NUM_THREADS``, where the environment has none). A resume at another
    count than the run trained with so far is said, and recorded in ``runtime.resumed_from_threads``:
    it will not end bit for bit as the uninterrupted run would.
    """

    def __init__(self, setting: object = AUTO, jobs: int = 1) -> None:
        self.setting, self.jobs = setting, jobs
        self.share: ThreadShare | None = None
        self.earlier: list[int] = []  # the counts of the attempts before a resume

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self.share = apply_threads(self.setting, self.jobs)

    def state_dict(self) -> dict:
        return {"torch_threads": sorted({*self.earlier, torch.get_num_threads()})}

    def load_state_dict(self, state_dict: dict) -> None:
        counts = state_dict.get("torch_threads") or []
        self.earlier = sorted({int(c) for c in counts if isinstance(c, int) and not isinstance(c, bool)})
        now = torch.get_num_threads()
        if any(count != now for count in self.earlier):
            log.warning("resume: the run trained at %s torch thread(s) so far and continues at %d: it "
                        "will not end bit for bit as it would have uninterrupted (trainer.threads=%s "
                        "continues at the earlier count)", "/".join(map(str, self.earlier)), now,
                        self.earlier[-1])

    def record(self) -> Runtime:
        """``runtime`` for ``result.json``: the count now, and the earlier counts where they differ."""
        record = self.share.record() if self.share else Runtime(torch_threads=torch.get_num_threads())
        if any(count != record.torch_threads for count in self.earlier):
            record = record.merged(Runtime(resumed_from_threads=self.earlier))
        return record
