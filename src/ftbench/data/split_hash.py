"""A digest of which images are in each split, recorded in every result.

Runs compared with each other (strategies, seeds, the tasks of a suite) must have trained,
validated and tested on the same images; a digest in ``result.json`` lets that be checked
without the data. Each split contributes the indices it took from its source dataset, their
labels and, where the source is a folder of files, their paths relative to its root: the same
config on another machine with the same folder gives the same digest.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np
from torch.utils.data import Dataset, Subset

from ftbench.data.labels import labels_of
from ftbench.data.sized import size_of

SPLITS = ("train", "val", "test")


def base_indices(dataset: Dataset) -> tuple[Dataset, np.ndarray]:
    """The dataset under any nesting of ``Subset`` and the indices into it, in order."""
    indices = np.arange(size_of(dataset), dtype=np.int64)
    while isinstance(dataset, Subset):
        indices = np.asarray(dataset.indices, dtype=np.int64)[indices]
        dataset = dataset.dataset
    return dataset, indices


def split_digest(dataset: Dataset) -> str:
    """SHA-256 of one split: its source's kind and size, the indices taken from it, their
    labels, and their relative file paths where the source lists files."""
    base, indices = base_indices(dataset)
    h = hashlib.sha256(f"{type(base).__name__}:{size_of(base)}:{len(indices)}".encode())
    h.update(indices.tobytes())
    h.update(labels_of(dataset).astype(np.int64).tobytes())
    samples = getattr(base, "samples", None)
    if samples is not None:
        root = str(getattr(base, "root", ""))
        for i in indices:
            h.update(os.path.relpath(samples[i][0], root).encode() + b"\0")
    return h.hexdigest()


def split_hashes(splits) -> dict:
    """``split_hash`` (one digest of the train, val and test splits together) and
    ``split_hashes`` (each split's own: tasks that differ only in training size share a test
    digest) of ``splits`` (a ``sources.Splits``)."""
    each = {name: split_digest(getattr(splits, name)) for name in SPLITS}
    joint = hashlib.sha256("".join(f"{name}={each[name]};" for name in SPLITS).encode()).hexdigest()
    return {"split_hash": joint, "split_hashes": each}
