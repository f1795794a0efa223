"""Content hashes of tensors, read in place: no copy of what can be gigabytes of weights."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import torch


def update_hash(h, tensor: torch.Tensor) -> None:
    """Feed ``tensor``'s dtype, shape and bytes into the hashlib object ``h``."""
    h.update(str((tensor.dtype, tuple(tensor.shape))).encode())
    h.update(memoryview(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy()))


def tensors_digest(named: Iterable[tuple[str, torch.Tensor]]) -> str:
    """One SHA-256 hex digest of named tensors, names included."""
    h = hashlib.sha256()
    for name, tensor in named:
        h.update(name.encode())
        update_hash(h, tensor)
    return h.hexdigest()
