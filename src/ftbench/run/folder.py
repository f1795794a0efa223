"""The run folder: one run at a time in it, and no start that would destroy the run it holds.

- A run locks its folder (``.ftbench.lock``, through ``filelock``) while it runs: a second run
  into the same folder, or the same ``resume=`` started twice, is refused with one line. The
  operating system drops the lock when the process ends, however it ends (SIGKILL included).
- A new run into a folder that holds a run (a checkpoint or a result) is refused, pointing at
  ``resume=`` (``check_new_run``). Single runs are checked and locked before Hydra creates the
  folder or saves anything into it (``ftbench.train.PrepareRun``), so a refused start changes
  nothing.
- A job of a multirun whose folder holds a finished result is not run again, and its result is
  never replaced (``ftbench.run.reuse``).
- A single run refused later, by what only its data or weights reveal (a missing folder, a
  corrupt image), is undone in a folder it found empty (``undo_refused``): nothing is left
  that a report would count as a crashed job.

Processes other than rank zero (DDP) share rank zero's folder and check nothing.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from filelock import FileLock, Timeout

from ftbench.run.checkpoints import LAST_CHECKPOINT
from ftbench.run.failures import UserError, resume_command
from ftbench.run.result import RESULT_FILE

log = logging.getLogger("ftbench")

LOCK_FILE = ".ftbench.lock"

_locks: dict[Path, FileLock] = {}  # folder -> the lock this process holds on it
_fresh: dict[Path, bool] = {}  # folders empty or absent when taken -> whether they existed


def is_rank_zero() -> bool:
    """Whether this process is the first of its run (Lightning's and SLURM's rank variables)."""
    for key in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        if key in os.environ:
            return os.environ[key] == "0" and os.environ.get("NODE_RANK", "0") == "0"
    return os.environ.get("NODE_RANK", "0") == "0"


def holds_run(folder: Path) -> bool:
    """A run worth keeping: it has a checkpoint to resume or a result."""
    return (folder / LAST_CHECKPOINT).is_file() or (folder / RESULT_FILE).is_file()


def _absolute(folder: str | Path) -> Path:
    return Path(os.path.abspath(folder))  # as Hydra makes a run's output_dir absolute


def lock(folder: str | Path, setting: str) -> None:
    """Take ``folder`` (created if absent) for this process, or raise ``UserError`` naming
    ``setting`` if another run holds it. Taking a folder twice is a no-op."""
    folder = _absolute(folder)
    if folder in _locks:
        return
    existed = folder.exists()
    fresh = not existed or (folder.is_dir() and not any(folder.iterdir()))
    lock_ = FileLock(folder / LOCK_FILE)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock_.acquire(timeout=0)
    except Timeout as err:
        raise UserError(f"{setting}={str(folder)!r} is in use by another run (it holds "
                        f"{LOCK_FILE}); allowed: a folder no run is using, or wait until it "
                        "ends") from err
    except OSError as err:
        raise UserError(f"{setting}={str(folder)!r}: cannot write there ({err.strerror or err}); "
                        "allowed: a folder this user can create and write") from err
    _locks[folder] = lock_
    if fresh:
        _fresh[folder] = existed
    remove_stale_temporaries(folder)


def release(folder: str | Path) -> None:
    lock_ = _locks.pop(_absolute(folder), None)
    if lock_ is not None:
        lock_.release()


def release_all() -> None:
    for folder in list(_locks):
        release(folder)
    _fresh.clear()


def remove_stale_temporaries(folder: Path) -> None:
    """Remove the temporary files of atomic writes that a killed run left (see ``run_io``):
    the folder is locked, so no other process is writing them."""
    for path in folder.glob(".*.tmp"):
        path.unlink(missing_ok=True)


def check_new_run(folder: str | Path) -> None:
    """Refuse a new run into a folder that holds a run, pointing at ``resume=``."""
    folder = _absolute(folder)
    if holds_run(folder):
        what = LAST_CHECKPOINT if (folder / LAST_CHECKPOINT).is_file() else RESULT_FILE
        raise UserError(f"hydra.run.dir={str(folder)!r} holds a run already ({what}); "
                        f"allowed: a new folder, or continue it with: {resume_command(folder)}")


def undo_refused(folder: str | Path) -> None:
    """Remove what a refused single run wrote into ``folder``, if the folder was empty when the
    run took it and it trained nothing (no checkpoint): a refused command leaves no run."""
    folder = _absolute(folder)
    if folder not in _fresh or (folder / LAST_CHECKPOINT).exists():
        return
    existed = _fresh.pop(folder)
    release(folder)
    for path in folder.iterdir():
        shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    if not existed:
        folder.rmdir()

