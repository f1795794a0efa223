"""FineTuneModule: a timm backbone, its layer groups and a strategy plan, as a LightningModule.

The module applies the plan itself: before every training step it asks the plan which
groups train at that point of progress, and freezes the rest; ``trainable`` is then what
the step trains. Callbacks read the run through ``TrainingView`` (``finetune/observed.py``),
whose values never depend on which hook happened to run first.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from lightning import LightningModule
from torch import nn
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from ftbench.data.sized import size_of
from ftbench.finetune.attached import data_module
from ftbench.finetune.epoch_metrics import BatchMean, MetricDict
from ftbench.finetune.optim import build_optimizer, build_scheduler
from ftbench.finetune.strategies import Mask, StrategyPlan
from ftbench.models.backbone import LayerGroup, group_modules
from ftbench.models.timm_api import timm_api
from ftbench.run.checkpoints import StartingWeights
from ftbench.run.predictions import Collector, Predictions
from ftbench.run.schema import Metrics

STAGES, MAX_CONFUSION_CLASSES = ("train", "val", "test"), 256


def keeps_statistics(module: nn.Module) -> bool:
    """Does ``module`` update running statistics in train mode (BatchNorm, EvoNorm-B, ...)?"""
    return any(name.startswith("running_") for name, _ in module.named_buffers(recurse=False))


class FineTuneModule(LightningModule):
    def __init__(self, model: nn.Module, groups: list[LayerGroup], plan: StrategyPlan,
                 optimizer_cfg, num_classes: int, label_smoothing: float = 0.0,
                 channels_last: bool = False):
        super().__init__()
        # channels_last speeds convolutions up ~3x on CPU as well as on GPU.
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model = model.to(memory_format=self.memory_format)
        self.groups = groups
        self.plan = plan
        self.optimizer_cfg = optimizer_cfg
        self._group_modules = group_modules(model, groups)
        params = dict(model.named_parameters())
        self.group_params = [[params[n] for n in g.param_names] for g in groups]  # bottom to top
        # the parameters of each group that move while the group trains (all, or BitFit's biases)
        self._movable = [[plan.trains_param(g.name, n) for n in g.param_names] for g in groups]
        self.trainable: Mask = ()
        self.starting_weights = StartingWeights(model, [g.name for g in groups], self._group_modules)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        # Updated every step, logged once per epoch. validate_args=False: the labels come from
        # the data module, and the checks would sync an accelerator on every step.
        self.epoch_metrics = MetricDict()
        for stage in STAGES:
            self.epoch_metrics[f"{stage}_loss"] = BatchMean()
            self.epoch_metrics[f"{stage}_acc"] = MulticlassAccuracy(num_classes, average="micro",
                                                                    validate_args=False)
        # which classes fail: per-class test accuracy, and the confusion matrix up to MAX_CONFUSION_CLASSES
        self.test_class_metrics = MetricDict({
            "accuracy": MulticlassAccuracy(num_classes, average=None, validate_args=False)})
        if num_classes <= MAX_CONFUSION_CLASSES:
            self.test_class_metrics["confusion"] = MulticlassConfusionMatrix(num_classes,
                                                                             validate_args=False)
        self._test_predictions: Collector | None = None
        self.apply_plan(0.0)

    # -- the plan ---------------------------------------------------------------------------
    def progress(self, batch_idx: float = 0) -> float:
        """Training progress in epochs at batch ``batch_idx`` of the current epoch."""
        batches = self.trainer.num_training_batches
        fraction = batch_idx / batches if batches and batches != float("inf") else 0.0
        return self.trainer.current_epoch + fraction

    def trainable_at(self, progress: float) -> Mask:
        return self.plan.trainable(progress)

    def apply_plan(self, progress: float) -> None:
        """Freeze what the plan does not train at ``progress``; never touches the optimizer."""
        mask = self.plan.trainable(progress)
        if mask == self.trainable:
            return
        self.trainable = mask
        for params, movable, on in zip(self.group_params, self._movable, mask, strict=True):
            for p, moves in zip(params, movable, strict=True):
                p.requires_grad_(on and moves)
        if self.training:
            self.train(True)

    def train(self, mode: bool = True):
        # Lightning calls train() at every epoch and after every validation; frozen groups stay
        # in eval mode so that their BatchNorm statistics never move, and so do the statistics
        # layers of a backbone whose plan trains only some of its parameters (BitFit, LoRA).
        super().train(mode)
        if mode:
            last = len(self._group_modules) - 1
            for i, (modules, on) in enumerate(zip(self._group_modules, self.trainable, strict=True)):
                if not on:
                    for m in modules:
                        m.eval()
                elif self.plan.backbone_stats_frozen and i < last:
                    for m in modules:
                        for layer in m.modules():
                            if keeps_statistics(layer):
                                layer.eval()
        return self

    def trainable_params(self, mask: Sequence[bool]) -> int:
        """Parameters that move while ``mask``'s groups train."""
        groups = zip(self.group_params, self._movable, mask, strict=True)
        return sum(p.numel() for params, movable, on in groups if on
                   for p, moves in zip(params, movable, strict=True) if moves)

    # The trainable groups are set before each step's hooks run (at the epoch start, and at the
    # end of the step before), so that every callback sees the step's own groups.
    def on_train_start(self) -> None:
        # after a checkpoint is restored: a run resumed mid-epoch starts no epoch
        done = self.trainer.fit_loop.epoch_loop.batch_progress.current.completed
        self.apply_plan(self.progress(min(done, max(0, self.trainer.num_training_batches - 1))))

    def on_train_epoch_start(self) -> None:
        self.apply_plan(self.trainer.current_epoch)
        self._reset_epoch("train")

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        if self.plan.changes_within_epochs:
            self.apply_plan(self.progress(batch_idx + 1))

    def serving_features(self, stage: str) -> bool:
        """Are ``stage``'s inputs cached features this epoch? The data module knows."""
        return data_module(self.trainer).serving_features(stage)

    # -- steps ----------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.contiguous(memory_format=self.memory_format))

    def classify_features(self, features: torch.Tensor) -> torch.Tensor:
        """Logits of the backbone's cached pre-logit features: only the head runs (with the
        model's dropout before it, as in the full forward)."""
        features = nn.functional.dropout(features, p=getattr(self.model, "drop_rate", 0.0),
                                         training=self.training)
        return timm_api(self.model).get_classifier()(features)

    def _shared_step(self, batch, stage: str) -> torch.Tensor:
        x, y = batch
        logits = self.classify_features(x) if self.serving_features(stage) else self(x)
        loss = self.criterion(logits, y)
        self.epoch_metrics[f"{stage}_loss"].update(loss, len(y))
        self.epoch_metrics[f"{stage}_acc"].update(logits, y)
        if stage == "test":
            for metric in self.test_class_metrics.values():
                metric.update(logits, y)
            collector = self._test_predictions
            if collector is None:
                raise RuntimeError("a test step before on_test_epoch_start")
            # a rank's k-th example is example k * world_size + rank (DistributedSampler, unshuffled)
            start = collector.seen * self.trainer.world_size + self.global_rank
            positions = torch.arange(len(y), device=y.device) * self.trainer.world_size + start
            collector.add(logits, y, positions)
        return loss

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        loss = self._shared_step(batch, "train")
        # Only on the steps the loggers write (every log_every_n_steps), for the same reason.
        every = self.trainer.log_every_n_steps  # type: ignore[attr-defined]  # set by Lightning at run time
        if every and (self.global_step + 1) % every == 0:
            self.log("train_loss_step", loss, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        self._shared_step(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._shared_step(batch, "test")

    # -- epoch metrics ----------------------------------------------------------------------
    def epoch_value(self, name: str) -> float | None:
        """An epoch metric (``train_loss``, ``val_acc``, …) over every rank, or None if the
        stage has not run. Reset when the next epoch of its stage starts, not when this one
        ends, so that every epoch-end hook reads the same value in whatever order they run.
        """
        metric = self.epoch_metrics[name]
        return float(metric.compute()) if metric.update_called else None

    def _reset_epoch(self, stage: str) -> None:
        self.epoch_metrics[f"{stage}_loss"].reset()
        self.epoch_metrics[f"{stage}_acc"].reset()

    def _log_epoch(self, stage: str) -> None:
        loss, accuracy = self.epoch_value(f"{stage}_loss"), self.epoch_value(f"{stage}_acc")
        if loss is None or accuracy is None:
            return
        suffix = "_epoch" if stage == "train" else ""  # the per-step loss is train_loss_step
        # The values already agree across ranks: sync_dist's mean of them changes nothing and
        # keeps Lightning from warning about unsynced epoch metrics.
        self.log(f"{stage}_loss{suffix}", loss, prog_bar=True, sync_dist=True)
        self.log(f"{stage}_acc", accuracy, prog_bar=stage != "train", sync_dist=True)

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train")

    def on_validation_epoch_start(self) -> None:
        self._reset_epoch("val")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    def on_test_epoch_start(self) -> None:
        self._reset_epoch("test")
        self._test_predictions = Predictions.collector()
        for metric in self.test_class_metrics.values():
            metric.reset()

    def test_classes(self, names: Sequence[str]) -> Metrics:
        """Per-class test accuracy by class name (None for a class the test split lacks) and
        the confusion matrix (rows: true class, columns: predicted), over every rank; neither
        before a test."""
        metrics = self.test_class_metrics
        if not metrics["accuracy"].update_called:
            return Metrics()
        accuracy = metrics["accuracy"].compute().tolist()
        if "confusion" not in metrics:
            return Metrics(per_class_test_acc=dict(zip(names, accuracy, strict=True)))
        confusion = metrics["confusion"].compute().long()
        support = confusion.sum(dim=1).tolist()
        return Metrics(per_class_test_acc={name: (acc if n else None)
                                           for name, acc, n in zip(names, accuracy, support, strict=True)},
                       confusion_matrix=confusion.tolist())

    def test_predictions(self) -> Predictions | None:
        """Every test example's prediction (see ``ftbench.run.predictions``), over every rank;
        None before a test. A collective under DDP: every rank calls it."""
        if self._test_predictions is None:
            return None
        local = self._test_predictions.done()
        if self.trainer.world_size == 1:
            return local
        # DistributedSampler pads every rank to the same length with repeats of the first examples
        gathered = [self._all_ranks(getattr(local, f)) for f in ("index", "label", "pred", "p_true")]
        size = size_of(data_module(self.trainer).datasets["test"])
        _, first = np.unique(gathered[0], return_index=True)
        keep = first[gathered[0][first] < size]
        return Predictions(*(column[keep] for column in gathered))

    def _all_ranks(self, values: np.ndarray) -> np.ndarray:
        """Every rank's ``values``, rank after rank."""
        gathered = self.all_gather(torch.as_tensor(values))
        if not isinstance(gathered, torch.Tensor):  # one tensor in gives one tensor out
            raise TypeError(f"all_gather returned {type(gathered).__name__}")
        return gathered.flatten(0, 1).cpu().numpy()

    # -- checkpoints ----------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # the epoch being saved counts as trained: a mid-epoch (interrupt) save includes it
        trained = self.plan.trained_through(self.trainer.current_epoch)
        self.starting_weights.leave_out(checkpoint, [not t for t in trained])

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.starting_weights.put_back(checkpoint, self.state_dict())

    # -- optimisation ---------------------------------------------------------------------
    def configure_optimizers(self):
        optimizer = build_optimizer(self.optimizer_cfg, self.model, self.groups,
                                    self.plan.lr_scales(), self.plan.lr)
        total = int(self.trainer.estimated_stepping_batches)
        per_epoch = max(1, total // max(1, self.trainer.max_epochs))
        scheduler = build_scheduler(self.optimizer_cfg, optimizer, total, per_epoch)
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def group_lrs(self, mask: Sequence[bool]) -> list[float]:
        """Each layer group's current LR, 0 where ``mask`` says it is frozen (bottom to top)."""
        optimizer = self.optimizers(use_pl_optimizer=False)
        if isinstance(optimizer, list):
            raise RuntimeError("one optimizer expected (configure_optimizers returns one)")
        lrs = [0.0] * len(self.groups)
        for pg in optimizer.param_groups:
            lrs[pg["layer_group"]] = pg["lr"] if mask[pg["layer_group"]] else 0.0
        return lrs


def fine_tuned(pl_module: LightningModule) -> FineTuneModule:
    """The module a callback of this package is attached to, as its class (Lightning hands
    callbacks a ``LightningModule``)."""
    if not isinstance(pl_module, FineTuneModule):
        raise TypeError(f"{type(pl_module).__name__} is not a FineTuneModule")
    return pl_module
