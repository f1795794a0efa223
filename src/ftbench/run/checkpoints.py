"""Checkpoints that survive crashes and restore a run exactly, read without running code.

- ``SafeCheckpointIO`` writes every checkpoint to a temporary file in the run folder and
  renames it into place (a SIGKILL never leaves a truncated ``last.ckpt``), with a digest of
  its content inside, and reads with ``torch.load(weights_only=True)`` (a checkpoint that
  carries code is refused) and checks the digest (a damaged checkpoint is refused).
- ``Resumable`` stores every random generator in the checkpoint, so that a resumed run draws
  the same shuffles, augmentations and dropout masks as an uninterrupted one, and saves
  ``last.ckpt`` when the process gets SIGTERM or SIGINT.
- ``StartingWeights`` leaves the layer groups that have not trained yet out of checkpoints
  and puts them back, checked, on resume.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
import random
import re
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning import Callback, Trainer
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException
from torch import nn

from ftbench.run.atomic import atomic_write
from ftbench.run.failures import UserError, resume_command
from ftbench.run.hashing import tensors_digest, update_hash

log = logging.getLogger("ftbench")

LAST_CHECKPOINT = "last.ckpt"
# checkpoint entry: group name -> {"keys": state-dict keys left out, "digest": of their tensors}
LEFT_OUT = "ftbench_left_out_groups"
# checkpoint entry: a digest of everything else in it, written with it and checked on reading
CONTENT_DIGEST = "ftbench_content_digest"
# checkpoint entry: a digest of the run's config (see resume.config_digest)
CONFIG_DIGEST = "ftbench_config_digest"


def content_digest(obj: Any) -> str:
    """A SHA-256 digest of a checkpoint's content: every tensor's bytes, every plain value,
    and the structure that holds them (what ``torch.save`` writes and ``torch.load`` reads)."""
    h = hashlib.sha256()
    _feed(h, obj)
    return h.hexdigest()


def _feed(h, obj: Any) -> None:
    if isinstance(obj, torch.Tensor):
        h.update(b"T")
        update_hash(h, obj)
    elif isinstance(obj, dict):
        h.update(f"D{len(obj)}".encode())
        for key, value in obj.items():
            _feed(h, key)
            _feed(h, value)
    elif isinstance(obj, list | tuple):
        h.update(f"{type(obj).__name__}{len(obj)}".encode())
        for value in obj:
            _feed(h, value)
    else:
        text = f"{type(obj).__name__}:{obj!r}"
        h.update(f"{len(text)}:{text}".encode())


def is_pytorch_file(path: Path) -> bool:
    """A whole zip archive (``torch.save``'s format since 1.6), or a pickle (its legacy format)."""
    with path.open("rb") as file:
        first = file.read(1)
    return zipfile.is_zipfile(path) or first == b"\x80"


def load_checkpoint(path: str | Path, setting: str = "resume", what: str = "checkpoint",
                    require_digest: bool = False) -> Any:
    """Read a PyTorch file with ``weights_only=True``: tensors and plain containers, no code;
    a checkpoint written with a content digest (``SafeCheckpointIO``) is checked against it.

    ``setting`` and ``what`` name, in the error, the option that gave the path and its kind.
    ``require_digest``: refuse a file without one (every checkpoint a run writes has one; a
    weight file from elsewhere has none).
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{setting}={str(path)!r}: no such {what} file")
    unreadable = UserError(f"{setting}={str(path)!r}: not a readable {what} (truncated, corrupt, "
                           "or not a PyTorch file)")
    if not is_pytorch_file(path):  # torch's legacy reader fails on other bytes in any way at all
        raise unreadable
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        # the weights-only unpickler names what it refuses; anything else is not a pickle at all
        if not re.search(r"Unsupported global|GLOBAL|allowed global",
                         str(err)):
            raise unreadable from err
        raise UserError(f"{setting}={str(path)!r}: refused, the {what} holds objects other than "
                        "tensors and plain values (code that loading would run)") from err
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        # what torch.load raises on a truncated or foreign file (zip reader, unpickler, storage
        # sizes); a TypeError or KeyError would be a bug of ours, and keeps its traceback
        raise unreadable from err
    recorded = loaded.pop(CONTENT_DIGEST, None) if isinstance(loaded, dict) else None
    if recorded is None and require_digest:
        raise UserError(f"{setting}={str(path)!r}: the {what} has no content digest, so it cannot "
                        "be checked for damage; allowed: the last.ckpt a run wrote")
    if recorded is not None and content_digest(loaded) != recorded:
        raise UserError(f"{setting}={str(path)!r}: the {what} is damaged (its content does not "
                        "match the digest written with it); allowed: an undamaged copy, or "
                        "start the run again")
    return loaded


class SafeCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint I/O, with an atomic write in place and a code-free read.

    Lightning's own atomic save stages the file in the system temp folder and moves it,
    which is a copy (not atomic) when that folder is on another file system.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        checkpoint = {**checkpoint, CONTENT_DIGEST: content_digest(checkpoint)}
        atomic_write(path, lambda tmp: torch.save(checkpoint, tmp))

    def load_checkpoint(self, path, map_location=None, weights_only: bool | None = None) -> dict:
        return load_checkpoint(path)


def random_state() -> dict[str, Any]:
    """Every generator the training loop draws from, as tensors and plain values (so that the
    checkpoint stays loadable with ``weights_only=True``)."""
    legacy = np.random.get_state(legacy=True)
    if not isinstance(legacy, tuple):  # a dict only for a bit generator other than the global MT19937
        raise TypeError(f"numpy's global random state is not MT19937's: {type(legacy).__name__}")
    kind, keys, pos, has_gauss, cached = legacy
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


def set_random_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class Resumable(Callback):
    """Makes a run resumable exactly: random generators and the digest of the run's config in
    every checkpoint, and a checkpoint when the process is stopped by SIGTERM or SIGINT (Ctrl+C).

    The generators are captured when a checkpoint is written and put back when it is
    restored, before the train loader draws its first shuffle. Lightning turns SIGTERM into
    ``SIGTERMException`` after the current batch and SIGINT into ``KeyboardInterrupt``; other
    exceptions (a bug, a divergence) save nothing: their state is not worth resuming, and
    ``last.ckpt`` keeps the last good epoch. (Lightning's ``OnExceptionCheckpoint`` would save
    on any exception, and its presence makes a fresh ``fit`` resume from any ``last.ckpt``.)
    """

    def __init__(self, dirpath: str | Path, config_digest: str | None = None) -> None:
        self.path = Path(dirpath) / LAST_CHECKPOINT
        self.config_digest = config_digest

    def state_dict(self) -> dict[str, Any]:
        return random_state()

    def on_save_checkpoint(self, trainer: Trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        if self.config_digest is not None:  # a resume refuses a config edited since
            checkpoint[CONFIG_DIGEST] = self.config_digest

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        set_random_state(state_dict)

    def on_exception(self, trainer: Trainer, pl_module, exception: BaseException) -> None:
        fitting = trainer.state.fn == TrainerFn.FITTING
        if isinstance(exception, KeyboardInterrupt | SIGTERMException) and fitting:
            trainer.save_checkpoint(self.path, weights_only=False)  # said, so Lightning says nothing
            log.warning("interrupted: checkpoint saved; continue with: %s",
                        resume_command(self.path.parent))


class StartingWeights:
    """Leaves the layer groups that have not trained yet out of checkpoints.

    Such groups still hold the weights the run started from, which a resume rebuilds from
    the run's config anyway: writing them at every epoch is frozen work repeated (14 MB per
    epoch for an EfficientNet-Lite0 linear probe, 94 MB for a ResNet-50). Each left-out
    group's digest is kept in the checkpoint, so a resume whose starting weights differ (a
    changed weight file) is refused (``changed_left_out_groups``) instead of mixing two
    models. This is Lightning's partial-checkpoint pattern, with strict loading kept: the
    groups are put back before the state dict is loaded.
    """

    def __init__(self, model: nn.Module, group_names: list[str],
                 group_modules: list[list[nn.Module]], prefix: str = "model.") -> None:
        names = {id(m): n for n, m in model.named_modules()}
        self.names = group_names
        self.keys = [[f"{prefix}{names[id(m)]}.{k}" for m in modules for k in m.state_dict()]
                     for modules in group_modules]
        self._digests: dict[int, str] = {}  # valid while the group is untouched, so computed once

    def _digest(self, state: dict[str, torch.Tensor], group: int) -> str:
        return tensors_digest((k, state[k]) for k in self.keys[group])

    def leave_out(self, checkpoint: dict[str, Any], untouched: Sequence[bool]) -> None:
        """Drop the groups flagged ``untouched`` from ``checkpoint["state_dict"]``, recorded."""
        state, record = checkpoint["state_dict"], {}
        for group, left_out in enumerate(untouched):
            if not left_out:
                continue
            if group not in self._digests:
                self._digests[group] = self._digest(state, group)
            record[self.names[group]] = {"keys": self.keys[group], "digest": self._digests[group]}
            for key in self.keys[group]:
                del state[key]
        checkpoint[LEFT_OUT] = record

    def put_back(self, checkpoint: dict[str, Any], start: dict[str, torch.Tensor]) -> None:
        """Fill the left-out groups in from ``start``, the freshly built model's state (which
        ``resume.check_checkpoint_fits`` has compared with their digests)."""
        for key in left_out_keys(checkpoint):
            checkpoint["state_dict"][key] = start[key]


def left_out_keys(checkpoint: dict[str, Any]) -> set[str]:
    """The state-dict keys a checkpoint left out as starting weights (see ``StartingWeights``)."""
    return {k for entry in checkpoint.get(LEFT_OUT, {}).values() for k in entry["keys"]}


def changed_left_out_groups(checkpoint: dict[str, Any], start: dict[str, torch.Tensor]) -> list[str]:
    """The left-out groups whose tensors in ``start`` are not those the checkpoint recorded."""
    return [name for name, entry in checkpoint.get(LEFT_OUT, {}).items()
            if not all(k in start for k in entry["keys"])
            or tensors_digest((k, start[k]) for k in entry["keys"]) != entry["digest"]]
