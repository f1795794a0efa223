"""The LightningDataModule: transforms, the dataset-size knob, in-memory tensors, loaders.

Transforms come from timm's ``create_transform`` with the backbone's own input size and
normalisation (``resolve_data_config``), unless the dataset config overrides them. When a
split's transform is deterministic and the split is small, it is decoded and transformed
once and kept as a tensor: later epochs cost no decoding at all.

An augmented training split keeps a deterministic view beside it (the evaluation
transform): epochs that train the head alone train on cached features of that view, as a
linear probe is meant to, and augmentation applies where backbone groups train.
"""

from __future__ import annotations

import torch
from lightning import LightningDataModule
from timm.data import create_transform, resolve_data_config
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset, default_collate
from torchvision.transforms.v2.functional import normalize

from ftbench.data.shifts import Shift, ShiftedImages
from ftbench.data.sized import size_of
from ftbench.data.sizes import training_subset, unused_to_test
from ftbench.data.sources import Splits, load_splits, ood_folder
from ftbench.data.split_hash import split_hashes
from ftbench.run.schema import Data


class Transformed(Dataset):
    def __init__(self, base: Dataset, transform):
        self.base, self.transform = base, transform

    def __len__(self) -> int:
        return size_of(self.base)

    def __getitem__(self, index: int):
        image, label = self.base[index]
        return self.transform(image), label


class FeatureSwitch(Dataset):
    """A split that serves cached features instead of images while they are set.

    The loader over it, its sampler and its shuffling stay the same objects when the source
    switches: only what an index maps to changes. So no loader is rebuilt (Lightning builds
    the train loader before any callback could fill a cache) and no RNG draw moves. The
    images are in-memory tensors, or an augmented split transformed item by item.

    The second kind may be read by loader workers, whose copy of this object dates from when
    they started: Lightning starts the first epoch's workers before any callback runs. So an
    image batch carries its indices, and the data module swaps in the features the main
    process holds (``on_before_batch_transfer``) whenever the copy that read it was stale.
    """

    def __init__(self, images: Dataset):
        self.images = images
        self.features: TensorDataset | None = None

    def __len__(self) -> int:
        return size_of(self.images)

    def __getitem__(self, index: int):
        return (self.images if self.features is None else self.features)[index]

    def __getitems__(self, indices: list[int]) -> list[torch.Tensor]:
        """A whole batch by one indexing per tensor, instead of one item at a time + stack.

        The loader calls this for a batch of sampler indices; what it returns is already the
        batch (see ``_as_batch``), the same tensors the item-by-item path would collate.
        """
        source = self.images if self.features is None else self.features
        index = torch.as_tensor(indices, dtype=torch.long)
        if not isinstance(source, TensorDataset):  # augmented images, one item at a time
            return [*default_collate([source[i] for i in indices]), index]
        return [tensor[index] for tensor in source.tensors]

    def resolve(self, batch: list[torch.Tensor]) -> list[torch.Tensor]:
        """A batch as this (main-process) switch serves it now: an image batch carrying its
        indices becomes features if they are set, else images without the indices."""
        if len(batch) != 3:
            return batch
        x, y, index = batch
        if self.features is not None:
            return [tensor[index.cpu()] for tensor in self.features.tensors]
        return [x, y]

    @property
    def in_memory(self) -> bool:
        return isinstance(self.images, TensorDataset)


def _as_batch(batch: list[torch.Tensor]) -> list[torch.Tensor]:
    return batch


def materialize(dataset: Dataset) -> TensorDataset:
    """Run a deterministic transform once over a split and keep the result as tensors."""
    images, labels = zip(*(dataset[i] for i in range(size_of(dataset))), strict=True)
    return TensorDataset(torch.stack(images), torch.as_tensor(labels, dtype=torch.long))


class FineTuneDataModule(LightningDataModule):
    """Train/val/test loaders for one dataset config, sized to one backbone's input."""

    def __init__(self, cfg, batch_size: int, num_workers: int = 0, pin_memory: bool = False):
        super().__init__()
        self.cfg = cfg
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.splits: Splits | None = None
        self.ood: Dataset | None = None  # dataset.ood_root's images (PIL), if set
        self.data_config: dict | None = None
        self.datasets: dict[str, Dataset] = {}
        self._served: dict[str, Dataset] = {}  # what the loaders read: a FeatureSwitch if it can be
        self._feature_inputs: dict[str, Dataset] = {}  # deterministic views that features come from
        self._test_pixels: Dataset | None = None  # test images at input size, uint8, not normalised

    @property
    def num_classes(self) -> int:
        return len(self.load().classes)

    @property
    def classes(self) -> list[str]:
        return [str(c) for c in self.load().classes]

    def source_image_size(self, samples: int = 5) -> tuple[int, int] | None:
        """(width, height) of the training images as stored, the median of the first few;
        None when the source holds no PIL images."""
        train = self.load().train
        found = [getattr(train[i][0], "size", None) for i in range(min(samples, size_of(train)))]
        sizes = sorted(s for s in found if isinstance(s, tuple) and len(s) == 2)
        return sizes[len(sizes) // 2] if sizes else None

    def load(self) -> Splits:
        if self.splits is None:
            splits = load_splits(self.cfg)
            pool = splits.train
            splits.train = training_subset(pool, self.cfg, splits.classes)
            if self.cfg.get("unused_to_test"):
                splits.test = unused_to_test(pool, splits.train, splits.test)
            if self.cfg.get("ood_root"):  # its class names are checked before any model exists
                self.ood = ood_folder(self.cfg.ood_root, splits.classes, self.cfg.bad_images)
            self.splits = splits
        return self.splits

    def resolve_for(self, model: nn.Module) -> dict:
        """Input size and normalisation: the backbone's own, unless the dataset overrides."""
        overrides = {}
        if self.cfg.image_size:
            overrides["input_size"] = (3, self.cfg.image_size, self.cfg.image_size)
        for key in ("mean", "std", "crop_pct", "interpolation"):
            if self.cfg.get(key) is not None:
                overrides[key] = tuple(self.cfg[key]) if key in ("mean", "std") else self.cfg[key]
        self.data_config = resolve_data_config(overrides, model=model)
        return self.data_config

    def _resolved(self) -> dict:
        if self.data_config is None:
            raise RuntimeError("call resolve_for(model) before setup()")
        return self.data_config

    def transform(self, training: bool):
        augment = training and self.cfg.augment
        extra = ({"hflip": self.cfg.hflip, "auto_augment": self.cfg.auto_augment,
                  "scale": tuple(self.cfg.scale)} if augment else {})
        return create_transform(**self._resolved(), is_training=augment, **extra)

    @property
    def augmented(self) -> bool:
        return bool(self.cfg.augment)

    def record(self) -> Data:
        """``data`` of ``result.json``: the classes, each split's size and digest, the input size."""
        hashes = split_hashes(self.load())
        sizes = {name: size_of(dataset) for name, dataset in self.datasets.items()}
        return Data(num_classes=self.num_classes, classes=self.classes, train_size=sizes["train"],
                    val_size=sizes["val"], test_size=sizes["test"], augmented=self.augmented,
                    input_size=list(self._resolved()["input_size"]), split_hash=hashes["split_hash"],
                    split_hashes=hashes["split_hashes"])

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        self._resolved()  # the transforms need the model's input size and normalisation
        splits = self.load()
        for name, split in (("train", splits.train), ("val", splits.val), ("test", splits.test)):
            training = name == "train"
            dataset: Dataset = Transformed(split, self.transform(training))
            deterministic = not (training and self.augmented)
            if deterministic and size_of(split) <= self.cfg.in_memory_max:
                dataset = materialize(dataset)
            self.datasets[name] = dataset
            if isinstance(dataset, TensorDataset):
                self._feature_inputs[name] = dataset
            elif not deterministic:  # features of the images as evaluation sees them
                self._feature_inputs[name] = Transformed(split, self.transform(False))
            self._served[name] = FeatureSwitch(dataset) if name in self._feature_inputs else dataset

    # -- shifted test sets (see data/shifts.py and robustness.py) ------------------------------
    def fits_in_memory(self, dataset: Dataset) -> bool:
        return size_of(dataset) <= self.cfg.in_memory_max

    def normalise(self, image: torch.Tensor) -> torch.Tensor:
        """A ``uint8`` image as the model's input: exactly what the test transform makes of it."""
        config = self._resolved()
        return normalize(image.float().div(255), config["mean"], config["std"])

    def shifted_set(self, shift: Shift, count: int) -> Dataset:
        """The first ``count`` test images, corrupted in pixel space (after the test transform's
        resize and crop, before its normalisation). Each set is read once, so it is corrupted
        as it is read; what all sets share, the test images at input size (``uint8``), is
        decoded once and kept in memory when the test split is."""
        config = self._resolved()
        if self._test_pixels is None or size_of(self._test_pixels) != count:
            # timm's eval transform without its tensor conversion: uint8 at the input size
            pixels = create_transform(**config, is_training=False, use_prefetcher=True)
            base = Transformed(Subset(self.load().test, range(count)), pixels)
            self._test_pixels = materialize(base) if self.fits_in_memory(base) else base
        side = config["input_size"][-1]
        return ShiftedImages(self._test_pixels, shift, side, self.normalise)

    def ood_set(self, count: int) -> Dataset:
        """The first ``count`` images of ``dataset.ood_root``, through the test transform."""
        if self.ood is None:
            raise RuntimeError("no dataset.ood_root to read")
        return Transformed(Subset(self.ood, range(count)), self.transform(False))

    def eval_loader(self, dataset: Dataset) -> DataLoader:
        """A one-off loader over an evaluation set, in memory or read as it goes; it draws
        nothing from the run's random state."""
        in_memory = isinstance(dataset, TensorDataset)
        return self._loader_over(FeatureSwitch(dataset) if in_memory else dataset, shuffle=False,
                                 persistent=False, generator=torch.Generator())

    # -- cached features (see features.FeatureCache) -----------------------------------------
    def can_serve_features(self, split: str) -> bool:
        return split in self._feature_inputs

    def feature_inputs(self, split: str) -> Dataset:
        """What ``split``'s features are computed from: its images under a deterministic
        transform (in-memory tensors, or the evaluation view of an augmented split)."""
        return self._feature_inputs[split]

    def serving_features(self, split: str) -> bool:
        served = self._served.get(split)
        return isinstance(served, FeatureSwitch) and served.features is not None

    def serve_features(self, split: str, features: TensorDataset) -> None:
        served = self._served[split]
        if not isinstance(served, FeatureSwitch):
            raise RuntimeError(f"split {split!r} cannot serve features")
        served.features = features

    def feature_bytes(self) -> int:
        """Bytes of the cached features the loaders hold now (every split)."""
        return sum(t.nbytes for served in self._served.values()
                   if isinstance(served, FeatureSwitch) and served.features is not None
                   for t in served.features.tensors)

    def on_before_batch_transfer(self, batch, dataloader_idx: int):
        train = self._served.get("train")
        return train.resolve(batch) if isinstance(train, FeatureSwitch) else batch

    def serve_images(self) -> None:
        for served in self._served.values():
            if isinstance(served, FeatureSwitch):
                served.features = None

    def _loader(self, name: str, shuffle: bool) -> DataLoader:
        return self._loader_over(self._served[name], shuffle)

    def _loader_over(self, dataset: Dataset, shuffle: bool, persistent: bool = True,
                     generator: torch.Generator | None = None) -> DataLoader:
        switch = isinstance(dataset, FeatureSwitch)
        workers = 0 if isinstance(dataset, FeatureSwitch) and dataset.in_memory else self.num_workers
        # Workers of an augmented switch must see each epoch's source: no persistent copies.
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=shuffle,
                          num_workers=workers, pin_memory=self.pin_memory,
                          persistent_workers=persistent and workers > 0 and not switch,
                          generator=generator, collate_fn=_as_batch if switch else None)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
