"""Files a run writes, each atomically: a reader sees a complete file or none.

Every file is written to a temporary name in its own folder and renamed into place, so a
run killed at any moment (SIGKILL, a full disk) leaves no truncated ``result.json``,
``model.safetensors``, checkpoint or feature store.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch only where tensors are written: the result's reader stays torch-free
    import torch
    from torch import nn


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp creates files readable by their owner only; a run's files get the usual modes
FILE_MODE = 0o666 & ~_umask()


def atomic_write(path: str | Path, write: Callable[[str], object]) -> Path:
    """Call ``write(tmp_path)`` (its return value is ignored) then rename onto ``path``; no
    partial file is ever visible.

    The temporary file is ``.<name>.<random>.tmp`` beside ``path``; one that a killed
    process left is removed when a run next takes the folder (``ftbench.run.folder.lock``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.fchmod(fd, FILE_MODE)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def json_safe(value):
    """NaN/inf are not JSON: write them as null rather than emitting invalid files."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def write_json(path: str | Path, data: dict) -> Path:
    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            json.dump(json_safe(data), f, indent=2, allow_nan=False)
            f.write("\n")

    return atomic_write(path, write)


def write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def read_json(path: str | Path):
    with open(path) as f:
        return json.load(f)


def save_weights(path: str | Path, model: nn.Module) -> Path:
    """The model's state dict as safetensors: plain tensors, its own keys."""
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    return atomic_write(path, lambda tmp: save_file(state, tmp))


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor],
                 metadata: dict[str, str] | None = None) -> Path:
    from safetensors.torch import save_file

    tensors = {k: v.contiguous() for k, v in tensors.items()}
    return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))
