"""Dataset sources: each returns train/val/test splits of ``(PIL image, label)`` items.

Sources only find and split images; transforms, subsampling and batching belong to the
data module. A registry maps ``dataset.name`` to its source, so adding one is one function.
"""

from __future__ import annotations

import logging
import tarfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.model_selection import train_test_split
from torch.utils.data import Dataset, Subset
from torchvision.datasets import DatasetFolder

from ftbench.data.folders import (
    BAD_IMAGE_POLICIES,
    LinkSafeImageFolder,
    image_folder,
    is_readable_image,
    load_rgb,
    names,
    warn_shared_images,
)
from ftbench.data.labels import labels_of
from ftbench.data.sizes import resize_validation, take_validation
from ftbench.run.failures import UserError, visible

log = logging.getLogger(__name__)

__all__ = ["BAD_IMAGE_POLICIES", "SOURCES", "Splits", "load_splits"]

OOD_SETTING = "dataset.ood_root"


class OodImageFolder(LinkSafeImageFolder):
    """A folder of ``dataset.ood_root``: its messages name that setting."""

    setting = OOD_SETTING


class LabeledImages(Dataset):
    """Images held in memory as PIL, with their labels as an array."""

    def __init__(self, images: Sequence[Image.Image], labels: Sequence[int]):
        self.images = list(images)
        self.labels = np.asarray(labels, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Image.Image, int]:
        return self.images[index], int(self.labels[index])


@dataclass
class Splits:
    train: Dataset
    val: Dataset
    test: Dataset
    classes: list[str]


def stratified_split(dataset: Dataset, fraction: float, seed: int) -> tuple[Subset, Subset]:
    """Split off ``fraction`` of ``dataset``, keeping class proportions; fixed by ``seed``."""
    labels = labels_of(dataset)
    try:
        keep, held = train_test_split(np.arange(len(labels)), test_size=fraction,
                                      stratify=labels, random_state=seed)
    except ValueError as err:  # too few images in a class, or too few for every class
        counts = np.bincount(labels)
        raise UserError(f"dataset: {len(labels)} images in {np.count_nonzero(counts)} classes "
                        f"(the fewest: {counts[counts > 0].min()}) cannot be split keeping every "
                        f"class in each split ({str(err).splitlines()[0]}); allowed: more images "
                        "per class, or other dataset.val_fraction / dataset.test_fraction") from err
    if isinstance(dataset, Subset):  # index the base dataset directly: one level, clear indices
        base = np.asarray(dataset.indices)
        dataset, keep, held = dataset.dataset, base[keep], base[held]
    return Subset(dataset, sorted(int(i) for i in keep)), Subset(dataset, sorted(int(i) for i in held))


def validation_split(train: Dataset, val: Dataset | None, cfg, share: float,
                     classes: list[str]) -> tuple[Dataset, Dataset]:
    """(train, val): the dataset's own validation split, cut to ``dataset.val_size`` if that
    is set; or, for a dataset without one, a split off ``train``: ``val_size`` images if set,
    else ``share`` of each class."""
    if val is not None:
        return train, resize_validation(val, cfg, classes)
    if cfg.get("val_size") is not None:
        return take_validation(train, cfg, classes)
    return stratified_split(train, share, cfg.split_seed)


def _three_way(dataset: Dataset, cfg, classes: list[str]) -> tuple[Dataset, Dataset, Subset]:
    rest, test = stratified_split(dataset, cfg.test_fraction, cfg.split_seed)
    val_share = cfg.val_fraction / (1.0 - cfg.test_fraction)
    train, val = validation_split(rest, None, cfg, val_share, classes)
    return train, val, test


def digits(cfg) -> Splits:
    """scikit-learn's handwritten digits (8x8, 16 grey levels), upscaled to RGB images."""
    from sklearn.datasets import load_digits

    data = load_digits()
    size = cfg.upscale
    images = [
        Image.fromarray((img * (255.0 / 16.0)).round().astype(np.uint8), mode="L")
        .resize((size, size), Image.Resampling.BILINEAR)
        .convert("RGB")
        for img in data.images
    ]
    classes = [str(c) for c in data.target_names]
    return Splits(*_three_way(LabeledImages(images, data.target), cfg, classes), classes)


def imagefolder(cfg) -> Splits:
    """A user's own images: ``root/<class>/<image>``, or ``root/{train,val,test}/<class>/…``."""
    if not cfg.root:
        raise UserError("dataset=imagefolder needs dataset.root=<folder of class subfolders>")
    root = Path(cfg.root)
    if not root.is_dir():
        raise UserError(f"dataset.root={str(root)!r}: no such folder")
    digests: dict[str, str] = {}  # file -> digest of its bytes, filled while the files are checked
    folder = partial(image_folder, bad_images=cfg.bad_images, digests=digests)
    if (root / "train").is_dir():
        train = folder(root / "train")
        val = folder(root / "val") if (root / "val").is_dir() else None
        test = folder(root / "test") if (root / "test").is_dir() else None
        for name, split in (("val", val), ("test", test)):
            if split is not None and split.classes != train.classes:
                raise UserError(f"dataset.root={str(root)!r}: {name}/ has classes "
                                f"{split.classes}, train/ has {train.classes}")
        classes = list(train.classes)
        if test is None:
            train, test = stratified_split(train, cfg.test_fraction, cfg.split_seed)
        train, val = validation_split(train, val, cfg, cfg.val_fraction, classes)
        splits = Splits(train, val, test, classes)
    else:
        full = folder(root)
        splits = Splits(*_three_way(full, cfg, full.classes), full.classes)
    warn_shared_images({name: _files_of(getattr(splits, name)) for name in ("train", "val", "test")},
                       digests, root)
    return splits


def _files_of(dataset: Dataset) -> list[str]:
    if isinstance(dataset, Subset):
        files = _files_of(dataset.dataset)
        return [files[i] for i in dataset.indices]
    if not isinstance(dataset, DatasetFolder):
        raise TypeError(f"{type(dataset).__name__} lists no image files")
    return [path for path, _ in dataset.samples]


def ood_folder(root: str, classes: list[str], bad_images: str = "error"):
    """``dataset.ood_root``: ``root/<class>/<image>`` of the training classes (all or some),
    labelled with the training data's class indices. A class the training data lacks is an
    error, raised from the folder names alone, before any image is read."""
    path = Path(root)
    if not path.is_dir():
        raise UserError(f"dataset.ood_root={root!r}: no such folder")
    found, _ = OodImageFolder.find_classes(path)
    if not found:
        raise UserError(f"dataset.ood_root={root!r} has no class folder; allowed: subfolders "
                        f"named like the training classes ({names(classes)})")
    foreign = [name for name in found if name not in classes]
    if foreign:
        raise UserError(f"dataset.ood_root={root!r}: class folder(s) {names(foreign)} not among "
                        f"the training classes; allowed: {names(classes)}")

    class TrainingClasses(OodImageFolder):
        @staticmethod
        def find_classes(directory):
            return found, {name: classes.index(name) for name in found}

    try:
        return TrainingClasses(str(path), loader=partial(load_rgb, setting=OOD_SETTING), allow_empty=False,
                               is_valid_file=partial(is_readable_image, bad_images=bad_images,
                                                     setting=OOD_SETTING))
    except FileNotFoundError as err:  # raised for a class folder without images
        raise UserError(f"dataset.ood_root={root!r}: {visible(str(err))}") from err


# torchvision datasets: name -> (class name, kwargs per split or None where we split off).
_TORCHVISION: dict[str, tuple[str, dict[str, dict[str, object]]]] = {
    "cifar10": ("CIFAR10", {"train": {"train": True}, "test": {"train": False}}),
    "cifar100": ("CIFAR100", {"train": {"train": True}, "test": {"train": False}}),
    "flowers102": ("Flowers102", {"train": {"split": "train"}, "val": {"split": "val"},
                                  "test": {"split": "test"}}),
    "pets": ("OxfordIIITPet", {"train": {"split": "trainval"}, "test": {"split": "test"}}),
    "dtd": ("DTD", {"train": {"split": "train"}, "val": {"split": "val"},
                    "test": {"split": "test"}}),
    "eurosat": ("EuroSAT", {"all": {}}),
}


def torchvision_source(name: str) -> Callable:
    class_name, split_args = _TORCHVISION[name]

    def load(cfg) -> Splits:
        import torchvision.datasets as tvd

        cls = getattr(tvd, class_name)
        root = Path(cfg.root)
        parts = {}
        for split, kwargs in split_args.items():
            try:
                parts[split] = cls(str(root), download=cfg.download, **kwargs)
            except (OSError, RuntimeError, zipfile.BadZipFile, tarfile.ReadError) as err:
                # what a missing or failed download raises: torchvision's "Dataset not found or
                # corrupted" and integrity checks (RuntimeError), urllib's URLError (OSError), a
                # damaged archive; anything else is a bug and keeps its traceback
                how = ("the download failed (offline?)" if cfg.download
                       else "dataset.download=false")
                raise UserError(
                    f"dataset={name}: not found in {str(root)!r} and {how}; put the "
                    f"{class_name} files there, or run once online with dataset.download=true"
                ) from err
        base = parts["all"] if "all" in parts else parts["train"]
        classes = list(getattr(base, "classes", []) or
                       [str(c) for c in sorted(set(labels_of(base).tolist()))])
        if "all" in parts:
            train, val, test = _three_way(parts["all"], cfg, classes)
        else:
            train, val = validation_split(parts["train"], parts.get("val"), cfg, cfg.val_fraction,
                                          classes)
            test = parts["test"]
        return Splits(train, val, test, classes)

    return load


SOURCES: dict[str, Callable] = {
    "digits": digits,
    "imagefolder": imagefolder,
    **{name: torchvision_source(name) for name in _TORCHVISION},
}


def load_splits(cfg) -> Splits:
    """The splits of ``cfg.name`` (checked against ``SOURCES`` by ``ftbench.config``)."""
    return SOURCES[cfg.name](cfg)
