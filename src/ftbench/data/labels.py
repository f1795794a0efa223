"""The labels of a split, read without decoding a single image."""

from __future__ import annotations

import numpy as np
from torch.utils.data import Dataset, Subset


def labels_of(dataset: Dataset) -> np.ndarray:
    """Labels without decoding images: every dataset we build exposes them somewhere."""
    if isinstance(dataset, Subset):
        return labels_of(dataset.dataset)[np.asarray(dataset.indices, dtype=np.int64)]
    for attr in ("labels", "targets", "_labels"):
        if hasattr(dataset, attr):
            return np.asarray(getattr(dataset, attr), dtype=np.int64)
    raise TypeError(f"cannot read labels of {type(dataset).__name__}")
