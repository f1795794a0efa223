"""Checkpoints that survive crashes and restore a run exactly, read without running code.

- ``SafeCheckpointIO`` writes every checkpoint to a temporary file in the run folder and
  renames it into place (a SIGKILL never leaves a truncated ``last.ckpt``), and reads with
  ``torch.load(weights_only=True)`` (a checkpoint that carries code is refused).
- ``RandomState`` stores the torch, numpy and Python random generators in the checkpoint,
  so that a resumed run draws the same shuffles, augmentations and dropout masks as an
  uninterrupted one.
- ``InterruptCheckpoint`` saves ``last.ckpt`` when the process gets SIGTERM or SIGINT.
"""

from __future__ import annotations

import logging
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning import Callback, Trainer
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException

from ftbench.errors import UserError
from ftbench.results import atomic_write

log = logging.getLogger("ftbench")

LAST_CHECKPOINT = "last.ckpt"


def load_checkpoint(path: str | Path, setting: str = "resume", what: str = "checkpoint") -> Any:
    """Read a PyTorch file with ``weights_only=True``: tensors and plain containers, no code.

    ``setting`` and ``what`` name, in the error, the option that gave the path and its kind.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{setting}={str(path)!r}: no such {what} file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise UserError(f"{setting}={str(path)!r}: refused, the {what} holds objects other than "
                        "tensors and plain values (a pickle that could run code)") from err
    except (RuntimeError, EOFError, OSError) as err:
        raise UserError(f"{setting}={str(path)!r}: not a readable {what} (truncated or "
                        "corrupt)") from err


class SafeCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint I/O, with an atomic write in place and a code-free read.

    Lightning's own atomic save stages the file in the system temp folder and moves it,
    which is a copy (not atomic) when that folder is on another file system.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        atomic_write(path, lambda tmp: torch.save(checkpoint, tmp))

    def load_checkpoint(self, path, map_location=None, weights_only: bool | None = None) -> dict:
        return load_checkpoint(path)


class RandomState(Callback):
    """Saves and restores every random generator the training loop draws from.

    The state is captured when a checkpoint is written (at the end of an epoch) and put back
    when the checkpoint is restored, before the train loader draws its first shuffle.
    Stored as tensors and plain numbers, so the checkpoint stays loadable with
    ``weights_only=True``.
    """

    def state_dict(self) -> dict[str, Any]:
        kind, keys, pos, has_gauss, cached = np.random.get_state()
        version, internal, gauss_next = random.getstate()
        state = {
            "torch": torch.get_rng_state(),
            "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": pos,
                      "has_gauss": has_gauss, "cached_gaussian": cached},
            "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
        }
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        torch.set_rng_state(state_dict["torch"])
        n = state_dict["numpy"]
        np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"],
                             n["has_gauss"], n["cached_gaussian"]))
        p = state_dict["python"]
        random.setstate((p["version"], tuple(p["internal"]), p["gauss_next"]))
        if "cuda" in state_dict and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state_dict["cuda"])


class InterruptCheckpoint(Callback):
    """Writes ``last.ckpt`` when the run is stopped by SIGTERM or SIGINT (Ctrl+C).

    Lightning turns SIGTERM into ``SIGTERMException`` after the current batch and SIGINT
    into ``KeyboardInterrupt``. Other exceptions (a bug, a divergence) save nothing: their
    state is not worth resuming, and ``last.ckpt`` keeps the last good epoch. (Lightning's
    ``OnExceptionCheckpoint`` would save on any exception, and its presence makes a fresh
    ``fit`` resume silently from any ``last.ckpt`` it finds.)
    """

    def __init__(self, dirpath: str | Path) -> None:
        self.path = Path(dirpath) / LAST_CHECKPOINT

    def on_exception(self, trainer: Trainer, pl_module, exception: BaseException) -> None:
        fitting = trainer.state.fn == TrainerFn.FITTING
        if isinstance(exception, KeyboardInterrupt | SIGTERMException) and fitting:
            trainer.save_checkpoint(self.path)
            log.warning("interrupted: checkpoint saved; continue with: python -m ftbench.train "
                        "resume=%s", self.path.parent)
