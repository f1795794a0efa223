"""How many images each split gets: a share of each class, or an exact count.

A share (``dataset.train_fraction``) rounds class by class, so its total drifts with the
class sizes. A suite of tasks compared by rank needs counts that are exactly what it asks
for (VTAB-1k: 800 training and 200 validation images on every task), so:

- ``dataset.train_size=N`` shares N among the classes in proportion to their sizes,
  rounded by largest remainder so the shares sum to exactly N, every class keeping one;
- ``dataset.train_per_class=K`` takes exactly K of each class (few-shot tasks);
- ``dataset.val_size=M`` splits exactly M off the training images of a dataset without a
  validation split, or keeps M of the validation split of one that has it.

Which images a class gives is fixed by ``dataset.split_seed`` alone: each class's images are
put in one seeded order and the first ones taken, so the run seed and the strategy never
change them, and a class's smaller share is a subset of its larger one (K=5 per class are
among the images of K=10), which keeps a data-size study nested.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from torch.utils.data import Dataset, Subset

from ftbench.data.labels import labels_of
from ftbench.data.sized import size_of
from ftbench.run.failures import UserError

__all__ = ["allocate", "resize_validation", "subsample_per_class", "take_validation", "training_subset",
           "unused_to_test"]

# Separate random streams, so the validation pick and the training pick never share an order.
_VAL_STREAM, _TRAIN_STREAM = 1, 2


def allocate(counts: Sequence[int] | np.ndarray, total: int) -> np.ndarray:
    """``total`` shared among classes of ``counts`` images, in proportion to ``counts``.

    Largest-remainder rounding: each class gets the floor of its exact share, and the images
    left go one each to the largest fractional parts (ties: the lower class index). A class
    with images that rounding left at none takes one from the class given the most, so every
    present class is kept. The caller ensures ``present classes <= total <= sum(counts)``.
    """
    sizes = np.asarray(counts, dtype=np.int64)
    quota = sizes * (total / sizes.sum())
    shares = np.floor(quota).astype(np.int64)
    order = sorted(range(len(sizes)), key=lambda c: (-(quota[c] - shares[c]), c))
    for c in order[: total - int(shares.sum())]:
        shares[c] += 1
    for empty in np.flatnonzero((shares == 0) & (sizes > 0)):
        shares[int(np.argmax(shares))] -= 1
        shares[empty] = 1
    return shares


def _ordered(labels: np.ndarray, cls: int, seed: int, stream: int) -> np.ndarray:
    """Positions of class ``cls`` in a fixed order drawn from ``(seed, stream, cls)`` only."""
    return np.random.default_rng([seed, stream, cls]).permutation(np.flatnonzero(labels == cls))


def _pick(labels: np.ndarray, shares: np.ndarray, seed: int, stream: int) -> np.ndarray:
    chosen = [_ordered(labels, c, seed, stream)[:k] for c, k in enumerate(shares) if k]
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)


def _subset(dataset: Dataset, positions: np.ndarray) -> Subset:
    """Positions of ``dataset`` as a subset of its base dataset: one level, clear indices."""
    if isinstance(dataset, Subset):
        return Subset(dataset.dataset, [int(dataset.indices[i]) for i in positions])
    return Subset(dataset, [int(i) for i in positions])


def _images(count: int, what: str = "images") -> str:
    return f"{count} {what if count != 1 else what.replace('images', 'image')}"


def _class_counts(labels: np.ndarray, classes: Sequence[str]) -> np.ndarray:
    return np.bincount(labels, minlength=len(classes))


def _proportional(setting: str, value: int, counts: np.ndarray, what: str) -> np.ndarray:
    """``allocate(counts, value)``, or a ``UserError`` when ``value`` cannot be stratified."""
    present, pool = int(np.count_nonzero(counts)), int(counts.sum())
    if value > pool or value < present:
        reason = (f"is more than the {pool} {what}" if value > pool else
                  f"cannot hold one image of each of the {present} classes")
        raise UserError(f"{setting}={value} {reason}; allowed: an integer {present}..{pool}")
    return allocate(counts, value)


def subsample_per_class(dataset: Dataset, fraction: float, seed: int) -> Dataset:
    """Keep ``fraction`` of each class (at least one image each): the dataset-size knob."""
    if fraction == 1.0:
        return dataset
    labels = labels_of(dataset)
    rng = np.random.default_rng(seed)
    keep: list[int] = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        keep.extend(rng.choice(idx, size=max(1, round(fraction * len(idx))), replace=False).tolist())
    return Subset(dataset, sorted(int(i) for i in keep))


def training_subset(train: Dataset, cfg, classes: Sequence[str]) -> Dataset:
    """The training images a run trains on: ``train_per_class`` of each class, or
    ``train_size`` stratified, or else ``train_fraction`` of each class (the config allows only
    one of them to differ from its default)."""
    per_class, size = cfg.get("train_per_class"), cfg.get("train_size")
    if per_class is None and size is None:
        return subsample_per_class(train, float(cfg.train_fraction), cfg.split_seed)
    labels = labels_of(train)
    counts = _class_counts(labels, classes)
    what = "training images (what the validation and test splits leave)"
    if per_class is not None:
        fewest = int(np.argmin(counts))
        if counts[fewest] < per_class:
            raise UserError(f"dataset.train_per_class={per_class}: class {classes[fewest]!r} has "
                            f"{_images(int(counts[fewest]), what)}; allowed: at most "
                            f"{counts[fewest]}, the fewest of any class")
        shares = np.full(len(classes), per_class, dtype=np.int64)
    else:
        shares = _proportional("dataset.train_size", size, counts, what)
    return _subset(train, _pick(labels, shares, cfg.split_seed, _TRAIN_STREAM))


def _base_positions(dataset: Dataset) -> tuple[Dataset, list[int]]:
    """The dataset under any nesting of ``Subset`` and the positions in it that ``dataset`` holds."""
    if isinstance(dataset, Subset):
        base, positions = _base_positions(dataset.dataset)
        return base, [positions[int(i)] for i in dataset.indices]
    return dataset, list(range(size_of(dataset)))


def unused_to_test(pool: Dataset, train: Dataset, test: Dataset) -> Dataset:
    """The test split with the images of ``pool`` that ``train`` left unused (``dataset.unused_to_test``).

    A few-shot training set drawn from a large pool would otherwise waste most of the pool: moved
    to the test split, those images make the test set fine enough to tell strategies apart
    (1,400 test images resolve about ±1.6 points at 90% accuracy, 270 about ±3.6). The test
    images are fixed by ``dataset.split_seed`` and the training-set size alone, never by the
    run seed, so every strategy of a comparison is tested on the same images.
    """
    base, pooled = _base_positions(pool)
    train_base, kept = _base_positions(train)
    test_base, tested = _base_positions(test)
    if train_base is not base or test_base is not base:
        raise ValueError("the training pool, training set and test split come from different datasets")
    unused = sorted(set(pooled) - set(kept))
    return Subset(base, sorted(tested + unused)) if unused else test


def take_validation(train: Dataset, cfg, classes: Sequence[str]) -> tuple[Subset, Subset]:
    """Exactly ``cfg.val_size`` images split off ``train``, stratified: (train left, val)."""
    labels = labels_of(train)
    counts = _class_counts(labels, classes)
    shares = _proportional("dataset.val_size", cfg.val_size, counts,
                           "images the validation split is taken from (what the test split leaves)")
    emptied = np.flatnonzero((shares == counts) & (counts > 0))
    if len(emptied):
        c = int(emptied[0])
        raise UserError(f"dataset.val_size={cfg.val_size} leaves class {classes[c]!r} "
                        f"({_images(int(counts[c]))}) no training image; allowed: a smaller "
                        "dataset.val_size, or more images of that class")
    val = _pick(labels, shares, cfg.split_seed, _VAL_STREAM)
    rest = np.setdiff1d(np.arange(len(labels)), val)
    return _subset(train, rest), _subset(train, val)


def resize_validation(val: Dataset, cfg, classes: Sequence[str]) -> Dataset:
    """A dataset's own validation split cut to ``cfg.val_size`` images, stratified; unchanged
    when ``val_size`` is null."""
    if cfg.get("val_size") is None:
        return val
    labels = labels_of(val)
    shares = _proportional("dataset.val_size", cfg.val_size, _class_counts(labels, classes),
                           "images of the dataset's validation split")
    return _subset(val, _pick(labels, shares, cfg.split_seed, _VAL_STREAM))
