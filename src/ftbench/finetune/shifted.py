"""Accuracy under distribution shift: the fine-tuned model on the shifted test sets.

Right after the in-distribution test, the model is evaluated on every corruption of
``eval.shifts`` (``data/shifts.py``) and on ``dataset.ood_root`` if set, on the same number of
test images as the test (``trainer.limit_test_batches`` applies). Each set is read once, so it
is corrupted as the loader reads it (in the loader's workers, if any), from test images the data
module decodes once for all of them. When the backbone never trained (a linear probe), a set is
kept in memory instead, the feature cache computes its features (or finds them in the feature
store, keyed by the set's contents) and only the head runs on them.
Their FLOPs and time are counted apart from training and from the in-distribution evaluation.
"""

from __future__ import annotations

import time

import torch
from lightning import Callback, LightningModule, Trainer
from torch.utils.data import Dataset

from ftbench.cost.estimate import limited
from ftbench.cost.flops import FlopTally
from ftbench.data.datamodule import materialize
from ftbench.data.shifts import OOD_KEY, Shift, with_mean
from ftbench.data.sized import size_of
from ftbench.finetune.attached import data_module
from ftbench.finetune.features import FeatureCache, extraction_flops_per_image
from ftbench.finetune.module import FineTuneModule, fine_tuned
from ftbench.run.hashing import StreamDigest
from ftbench.run.predictions import Predictions
from ftbench.run.result import ShiftSummary


class ShiftEvaluation(Callback):
    """Evaluates the shifted test sets when the in-distribution test ends (on rank zero)."""

    def __init__(self, shifts: list[Shift], cache: FeatureCache | None = None) -> None:
        self.shifts = shifts
        self.cache = cache
        self.accuracy: dict[str, float] = {}
        self.predictions: dict[str, Predictions] = {}  # per shifted set, for the report's bootstrap
        self.hashes: dict[str, str] = {}
        self.images = 0
        self.seconds = 0.0
        self.tally = FlopTally()
        self.extraction_flops = 0.0

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        dm = data_module(trainer)
        if not trainer.is_global_zero or not (self.shifts or dm.ood is not None):
            return
        module = fine_tuned(pl_module)
        start = time.perf_counter()
        count = limited(size_of(dm.datasets["test"]), dm.batch_size, trainer.limit_test_batches)
        for shift in self.shifts if count else ():
            self._evaluate(trainer, module, shift.key, dm.shifted_set(shift, count))
        ood = limited(size_of(dm.ood), dm.batch_size, trainer.limit_test_batches) if dm.ood is not None else 0
        if ood:
            self._evaluate(trainer, module, OOD_KEY, dm.ood_set(ood))
        self.seconds = time.perf_counter() - start
        metrics = {f"shift/{key}": acc for key, acc in (self.summary().accuracy or {}).items()
                   if acc is not None}
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)

    def _evaluate(self, trainer: Trainer, pl_module: FineTuneModule, key: str, dataset: Dataset) -> None:
        digest = StreamDigest()  # of the images the model sees, before any feature extraction
        self.images += size_of(dataset)
        dm = data_module(trainer)
        if (self.cache is not None and dm.fits_in_memory(dataset)
                and self.cache.backbone_frozen_throughout(trainer)):
            # The backbone holds the weights the features were cached with: the cache runs it
            # once over the set (not at all if the feature store, keyed by the set's contents,
            # has it), then only the head runs, on the features.
            images = materialize(dataset)
            digest.update(*images.tensors)
            features, computed = self.cache.features(trainer, pl_module, images)
            if computed:
                per_image = extraction_flops_per_image(pl_module.model, images)
                self.extraction_flops += per_image * len(images)
            self.predictions[key] = self._predict(trainer, pl_module, features, features=True)
        else:
            self.predictions[key] = self._predict(trainer, pl_module, dataset, digest=digest)
        self.accuracy[key] = float(self.predictions[key].correct.mean())
        self.hashes[key] = digest.hexdigest()

    @torch.no_grad()
    def _predict(self, trainer: Trainer, pl_module: FineTuneModule, dataset: Dataset,
                 digest: StreamDigest | None = None, features: bool = False) -> Predictions:
        """The model's prediction of every example of ``dataset``, in the set's order."""
        batches = Predictions.collector()
        was_training = pl_module.training
        pl_module.eval()
        try:
            with trainer.precision_plugin.forward_context():
                for x, y in data_module(trainer).eval_loader(dataset):
                    if digest is not None:
                        digest.update(x, y)
                    x, y = x.to(pl_module.device), y.to(pl_module.device)
                    self.tally.eval_step_starts(x, len(y))
                    logits = pl_module.classify_features(x) if features else pl_module(x)
                    self.tally.eval_step_ends(x, len(y))
                    batches.add(logits, y)
        finally:
            pl_module.train(was_training)
        return batches.done()

    def summary(self) -> ShiftSummary:
        """What ``result.json`` records (see ``ftbench.run.result.build_result``)."""
        return ShiftSummary(accuracy=with_mean(self.accuracy) if self.accuracy else None,
                            hashes=dict(self.hashes), images=self.images, seconds=self.seconds,
                            flops=self.tally.eval_flops + self.extraction_flops)
