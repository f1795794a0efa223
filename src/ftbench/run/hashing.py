"""Content hashes of tensors, read in place: no copy of what can be gigabytes of weights."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import torch


def _bytes(tensor: torch.Tensor) -> memoryview:
    """The tensor's bytes in place (a view of its CPU copy's buffer, never a second copy)."""
    return tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().data


def update_hash(h, tensor: torch.Tensor) -> None:
    """Feed ``tensor``'s dtype, shape and bytes into the hashlib object ``h``."""
    h.update(str((tensor.dtype, tuple(tensor.shape))).encode())
    h.update(_bytes(tensor))


def tensors_digest(named: Iterable[tuple[str, torch.Tensor]]) -> str:
    """One SHA-256 hex digest of named tensors, names included."""
    h = hashlib.sha256()
    for name, tensor in named:
        h.update(name.encode())
        update_hash(h, tensor)
    return h.hexdigest()


class StreamDigest:
    """SHA-256 of a set of (images, labels), fed in batches of any size: the same set gives the
    same digest whatever its batching, in memory or streamed through a loader."""

    def __init__(self) -> None:
        self._images, self._labels = hashlib.sha256(), hashlib.sha256()
        self._item: tuple | None = None  # dtype and shape of one item
        self._count = 0

    def update(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self._item = (images.dtype, tuple(images.shape[1:]))
        self._count += len(images)
        for h, tensor in ((self._images, images), (self._labels, labels.long())):
            h.update(_bytes(tensor))

    def hexdigest(self) -> str:
        h = hashlib.sha256(str((self._item, self._count)).encode())
        h.update(self._images.digest())
        h.update(self._labels.digest())
        return h.hexdigest()
