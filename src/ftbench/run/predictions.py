"""Per-example test predictions: what the report's bootstrap resamples.

A tested run keeps, for its test split and each shifted test set, every example's index in
that set, its label, the predicted class and the probability given to the true class, in
``predictions.npz`` beside ``result.json`` (which names it). The test split of a dataset is
fixed by ``dataset.split_seed`` and served in order, so an index names the same image for
every strategy and seed of one task: strategies can be paired example by example.

numpy only: the report reads these files without torch.
"""

from __future__ import annotations

import io
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ftbench.run.atomic import atomic_write

FIELDS = ("index", "label", "pred", "p_true")
MAX_BYTES = 256 * 2**20  # a million examples take ~20 MB


@dataclass(frozen=True)
class Predictions:
    index: np.ndarray   # int64, the example's position in its set
    label: np.ndarray   # int64
    pred: np.ndarray    # int64, the predicted class
    p_true: np.ndarray  # float32, the softmax probability of the true class

    @property
    def correct(self) -> np.ndarray:
        return self.pred == self.label

    def __len__(self) -> int:
        return len(self.index)

    @staticmethod
    def collector() -> Collector:
        return Collector()


class Collector:
    """Gathers batches of logits and labels (torch tensors, in the set's order)."""

    def __init__(self) -> None:
        # (index, label, pred, p_true) of each batch
        self.parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self.seen = 0

    def add(self, logits, labels, index=None) -> None:
        """``index``: the examples' positions in the set; by default the next ones in order."""
        probs = logits.detach().float().softmax(dim=1)
        labels = labels.detach()
        p_true = probs.gather(1, labels.long().unsqueeze(1)).squeeze(1)
        if index is None:
            index = np.arange(self.seen, self.seen + len(labels))
        else:
            index = index.detach().cpu().numpy()
        self.seen += len(labels)
        self.parts.append((index, labels.cpu().numpy(), probs.argmax(dim=1).cpu().numpy(),
                           p_true.cpu().numpy()))

    def done(self) -> Predictions:
        if not self.parts:
            return Predictions(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64),
                               np.zeros(0, np.float32))
        index, label, pred, p_true = (np.concatenate(column) for column in zip(*self.parts, strict=True))
        order = np.argsort(index, kind="stable")
        return Predictions(index[order].astype(np.int64), label[order].astype(np.int64),
                           pred[order].astype(np.int64), p_true[order].astype(np.float32))


def write_predictions(path: str | Path, sets: dict[str, Predictions]) -> Path:
    """Every set's predictions in one compressed ``.npz`` (keys ``<set>/<field>``), atomically."""
    arrays = {f"{name}/{field}": getattr(p, field) for name, p in sets.items() for field in FIELDS}

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)

    return atomic_write(path, write)


def read_predictions(path: str | Path) -> dict[str, Predictions]:
    """The sets of a predictions file; ``ValueError`` for one that is not (no pickles loaded)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_BYTES:
            raise ValueError(f"{Path(path).name}: not a regular file under {MAX_BYTES} bytes")
        with os.fdopen(fd, "rb", closefd=False) as f:
            raw = f.read()
    finally:
        os.close(fd)
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as data:
            names = sorted({key.rpartition("/")[0] for key in data.files})
            sets = {name: Predictions(*(np.asarray(data[f"{name}/{field}"]) for field in FIELDS))
                    for name in names}
    except (OSError, KeyError, ValueError) as err:
        raise ValueError(f"{Path(path).name}: not a predictions file ({err})") from None
    for name, p in sets.items():
        if len({len(getattr(p, field)) for field in FIELDS}) != 1:
            raise ValueError(f"{Path(path).name}: the fields of {name!r} differ in length")
    return sets
