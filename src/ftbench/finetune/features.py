"""Feature caching: while the whole backbone is frozen, run it once, not once per epoch.

During head-only epochs (``linear_probe``, the probe phase of ``lp_ft``, the first epochs of
``gradual``) the backbone is a fixed function of the input, so every epoch would recompute
the same features: we compute each split's pre-logit features once and train the classifier
on those tensors. The data module serves the cached features while they are valid, and it is
the one to ask whether a split's inputs are features now (``serving_features``).

Features always come from the deterministic (evaluation) transform. With
``dataset.augment=true`` the head-only epochs therefore train on un-augmented features, the
usual linear-probe protocol, and pay one backbone pass per image instead of one per image
per epoch; augmentation applies in the epochs where backbone groups train.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time

import torch
from lightning import Callback, LightningModule, Trainer
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from ftbench.cost.flops import flop_counter
from ftbench.data.sized import size_of
from ftbench.finetune.attached import data_module
from ftbench.finetune.feature_store import DiskFeatureStore
from ftbench.finetune.module import FineTuneModule, fine_tuned
from ftbench.finetune.strategies import StrategyPlan
from ftbench.models.timm_api import timm_api
from ftbench.run.hashing import update_hash
from ftbench.run.schema import FeatureCacheCost

log = logging.getLogger("ftbench")


@torch.no_grad()  # not inference_mode: the features later feed autograd (the head)
def extract_features(model: nn.Module, dataset: Dataset, batch_size: int,
                     memory_format: torch.memory_format = torch.contiguous_format,
                     num_workers: int = 0) -> TensorDataset:
    """Pre-logit features (pooled, before the classifier) of every item, in order."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    features, labels = [], []
    try:
        # A private generator: iterating a DataLoader draws a seed, and drawing it from the
        # global RNG would change the shuffling of every later epoch.
        loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                            generator=torch.Generator())
        timm_model = timm_api(model)
        for x, y in loader:
            x = x.to(device).contiguous(memory_format=memory_format)
            features.append(timm_model.forward_head(timm_model.forward_features(x), pre_logits=True).float())
            labels.append(torch.as_tensor(y))
    finally:
        model.train(was_training)
    return TensorDataset(torch.cat(features).cpu(), torch.cat(labels).long())


CPU_PIXELS_PER_BATCH = 2**18


def extraction_batch_size(device: torch.device, image_shape: torch.Size) -> int:
    """Images per forward of the feature pass: large on accelerators, sized by pixels on CPU.

    On a CPU the activations of a large batch of large images fall out of the caches:
    EfficientNet-Lite0 extracts about half as many images per second at 224 px with batch 256
    as with batch 8, while at 32 px batch 256 is the fastest. So a CPU batch holds about
    ``CPU_PIXELS_PER_BATCH`` input pixels (256 images at 32 px, 8 at 224 px).
    """
    if device.type != "cpu":
        return 256
    fits = CPU_PIXELS_PER_BATCH // max(1, image_shape[-1] * image_shape[-2])
    return max(8, min(256, 2 ** int(math.log2(max(1, fits)))))


def first_input(dataset: Dataset) -> torch.Tensor:
    """The first item's input, as a batch of one."""
    if isinstance(dataset, TensorDataset):
        return dataset.tensors[0][:1]
    return dataset[0][0].unsqueeze(0)


@torch.no_grad()
def extraction_flops_per_image(model: nn.Module, dataset: Dataset) -> float:
    """FLOPs of one image's feature extraction, counted on a real item.

    Counted on one item rather than during the whole pass: the counter's dispatch overhead
    would slow the extraction down several times, and the count per image is constant.
    """
    was_training = model.training
    model.eval()
    try:
        with flop_counter() as counter:
            x = first_input(dataset).to(next(model.parameters()).device)
            timm_model = timm_api(model)
            timm_model.forward_head(timm_model.forward_features(x), pre_logits=True)
    finally:
        model.train(was_training)
    return float(counter.get_total_flops())


def backbone_hash(model: nn.Module, precision: str = "32-true"):
    """A hashlib object fed with the architecture, every backbone tensor and the precision."""
    h = hashlib.sha256(type(model).__name__.encode())
    if precision != "32-true":  # float32 adds nothing: stores of float32 features keep their keys
        h.update(f"precision={precision}".encode())
    head = {id(p) for p in timm_api(model).get_classifier().parameters()}
    for name, tensor in model.state_dict(keep_vars=True).items():
        if id(tensor) not in head:
            h.update(name.encode())
            update_hash(h, tensor)
    return h


def features_key(model: nn.Module, inputs: torch.Tensor, precision: str = "32-true",
                 backbone=None, labels: torch.Tensor | None = None) -> str:
    """What determines the stored features and labels: the architecture, every backbone
    tensor, every input, the precision the backbone ran in (bf16 features are not float32
    features) and the labels.

    Hashing contents rather than config values means no setting can be forgotten: another
    weight file, transform, split or labelling gives another key. ``backbone`` is
    ``backbone_hash(model, precision)``, if the caller keeps it for several inputs.
    """
    h = (backbone or backbone_hash(model, precision)).copy()
    update_hash(h, inputs)
    if labels is not None:
        h.update(b"labels")
        update_hash(h, labels)
    return h.hexdigest()[:40]


class FeatureCache(Callback):
    """Computes features when head-only epochs start and hands them to the data module.

    Features are extracted at most once per split (in-memory splits only) and dropped as
    soon as a backbone group starts to train: the data module then serves images again.
    """

    def __init__(self, plan: StrategyPlan, store_dir: str | None = None) -> None:
        self.plan = plan
        self.store = DiskFeatureStore(store_dir) if store_dir else None
        self.seconds = 0.0
        self.train_seconds = 0.0  # of which: the train split's features
        self.images = 0  # images that went through the backbone in this run
        self.loaded = 0  # images whose features came from the disk store
        self.bytes = 0  # the most cached features held at once (a part of training's memory)
        self.used = False
        self.epoch: int | None = None  # the epoch the data module's loaders are set up for
        self.flops: dict[str, float] = {}  # split -> FLOPs of its one-off extraction
        # Hashed once per fit for every split's key: features are only ever extracted while
        # the whole backbone is frozen and has not trained, so it holds its starting weights.
        self._backbone_hash = None

    def head_only(self, epoch: int) -> bool:
        """Whether every epoch up to ``epoch`` trains the head alone (the backbone is unchanged)."""
        return self.plan.head_only_through(epoch)

    def _update(self, trainer: Trainer, pl_module: FineTuneModule, epoch: int) -> None:
        self.epoch = epoch
        dm = data_module(trainer)
        if not self.head_only(epoch):
            dm.serve_images()
            return
        # Test features are worth computing only if the backbone is still frozen at the end.
        splits = ["train", "val"]
        if self.backbone_frozen_throughout(trainer):
            splits.append("test")
        start = time.perf_counter()
        for split in splits:
            if dm.can_serve_features(split) and not dm.serving_features(split):
                computed_before, split_start = self.images, time.perf_counter()
                dm.serve_features(split, self._features(trainer, pl_module, dm.feature_inputs(split)))
                if split == "train":  # the train split's pass is training time
                    self.train_seconds += time.perf_counter() - split_start
                computed = self.images - computed_before  # zero when the store had them
                if computed:
                    per_image = extraction_flops_per_image(pl_module.model, dm.feature_inputs(split))
                    self.flops[split] = self.flops.get(split, 0) + per_image * computed
        self.seconds += time.perf_counter() - start
        self.bytes = max(self.bytes, dm.feature_bytes())
        self.used = True

    def _features(self, trainer: Trainer, pl_module: FineTuneModule, dataset: Dataset) -> TensorDataset:
        features, computed = self.features(trainer, pl_module, dataset)
        if computed:
            self.images += size_of(dataset)
        else:
            self.loaded += len(features)
        return features

    def features(self, trainer: Trainer, pl_module: FineTuneModule,
                 dataset: Dataset) -> tuple[TensorDataset, bool]:
        """The backbone's features of ``dataset``, from the store if it has them, and whether
        they were computed (the backbone ran). Valid only while the backbone holds its
        starting weights (frozen since the start), as during every head-only epoch."""
        # Only in-memory splits are stored: their inputs can be hashed without a decode pass.
        key, store = None, self.store
        if store is not None and isinstance(dataset, TensorDataset):
            if self._backbone_hash is None:
                self._backbone_hash = backbone_hash(pl_module.model, str(trainer.precision))
            key = features_key(pl_module.model, dataset.tensors[0], backbone=self._backbone_hash,
                               labels=dataset.tensors[1])
            stored = store.load(key, dataset.tensors[1])
            if stored is not None:
                return stored, False
        batch_size = extraction_batch_size(pl_module.device, first_input(dataset).shape)
        # a split transformed item by item (the deterministic view of an augmented one) is
        # decoded by the loader workers the run has
        workers = 0 if isinstance(dataset, TensorDataset) else data_module(trainer).num_workers
        # The run's own precision (bf16 autocast under trainer=gpu), as the uncached path's
        # forwards would have; the features are stored as float32 either way.
        with trainer.precision_plugin.forward_context():
            features = extract_features(pl_module.model, dataset, batch_size, pl_module.memory_format,
                                        num_workers=workers)
        if store is not None and key is not None:
            store.save(key, features)
        return features, True

    def backbone_frozen_throughout(self, trainer: Trainer) -> bool:
        """Whether the backbone never trains in this run, so that its features stay valid."""
        if trainer.max_epochs is None:  # Lightning sets it when the Trainer is built
            raise RuntimeError("the Trainer has no max_epochs")
        return self.head_only(trainer.max_epochs - 1)

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._backbone_hash = None
        # On resume, Lightning restores its epoch counter only after this hook: the epoch
        # to prepare for comes from this callback's own checkpointed state.
        epoch = self.epoch if self.epoch is not None else trainer.current_epoch
        self._update(trainer, fine_tuned(pl_module), epoch)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._update(trainer, fine_tuned(pl_module), trainer.current_epoch + 1)  # prepare the next epoch

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "seconds": self.seconds, "train_seconds": self.train_seconds,
                "images": self.images, "bytes": self.bytes,
                "loaded": self.loaded, "used": self.used, "flops": self.flops}

    def load_state_dict(self, state_dict: dict) -> None:
        self.epoch = state_dict["epoch"]
        self.seconds, self.images = state_dict["seconds"], state_dict["images"]
        self.train_seconds, self.bytes = state_dict["train_seconds"], state_dict["bytes"]
        self.loaded, self.used = state_dict["loaded"], state_dict["used"]
        self.flops = dict(state_dict["flops"])

    def summary(self) -> FeatureCacheCost:
        """``cost.feature_cache`` of ``result.json``."""
        return FeatureCacheCost(used=self.used, seconds=self.seconds, train_seconds=self.train_seconds,
                                images_computed=self.images, bytes=self.bytes, images_loaded=self.loaded,
                                flops=dict(self.flops))
