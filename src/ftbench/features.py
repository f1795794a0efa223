"""Feature caching: while the whole backbone is frozen, run it once, not once per epoch.

During head-only epochs (``linear_probe``, the probe phase of ``lp_ft``, the first epochs of
``gradual``) the backbone is a fixed function of the input. If the training transform is
deterministic too, every epoch would recompute the same features, so we compute each split's
pre-logit features once and train the classifier on those tensors. The data module serves
the cached features while they are valid; the module recognises them by their shape.
"""

from __future__ import annotations

import time

import torch
from lightning import Callback, LightningModule, Trainer
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset


@torch.no_grad()  # not inference_mode: the features later feed autograd (the head)
def extract_features(model: nn.Module, dataset: Dataset, batch_size: int,
                     memory_format: torch.memory_format = torch.contiguous_format) -> TensorDataset:
    """Pre-logit features (pooled, before the classifier) of every item, in order."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    features, labels = [], []
    try:
        # A private generator: iterating a DataLoader draws a seed, and drawing it from the
        # global RNG would change the shuffling of every later epoch.
        loader = DataLoader(dataset, batch_size=batch_size, shuffle=False,
                            generator=torch.Generator())
        for x, y in loader:
            x = x.to(device).contiguous(memory_format=memory_format)
            features.append(model.forward_head(model.forward_features(x), pre_logits=True).float())
            labels.append(torch.as_tensor(y))
    finally:
        model.train(was_training)
    return TensorDataset(torch.cat(features).cpu(), torch.cat(labels).long())


class FeatureCache(Callback):
    """Computes features when head-only epochs start and hands them to the data module.

    Features are extracted at most once per split and dropped as soon as a backbone group
    starts to train (the data module then serves images again, from the next epoch on).
    """

    def __init__(self, batch_size: int = 256) -> None:
        self.batch_size = batch_size
        self.seconds = 0.0
        self.images = 0
        self.used = False

    def _head_only(self, pl_module: LightningModule, epoch: int) -> bool:
        return pl_module.plan.num_trainable(epoch) == 1

    def _update(self, trainer: Trainer, pl_module: LightningModule, epoch: int) -> None:
        dm = trainer.datamodule
        if not self._head_only(pl_module, epoch):
            dm.features.clear()
            return
        # Test features are worth computing only if the backbone is still frozen at the end.
        splits = ["train", "val"]
        if self._head_only(pl_module, trainer.max_epochs):
            splits.append("test")
        start = time.perf_counter()
        for split in splits:
            if split not in dm.features:
                dm.features[split] = extract_features(pl_module.model, dm.datasets[split],
                                                      self.batch_size, pl_module.memory_format)
                self.images += len(dm.datasets[split])
        self.seconds += time.perf_counter() - start
        self.used = True

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._update(trainer, pl_module, trainer.current_epoch)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._update(trainer, pl_module, trainer.current_epoch + 1)  # loaders reload next epoch

    def summary(self) -> dict:
        return {"used": self.used, "seconds": self.seconds, "images": self.images}
