"""FineTuneModule: a timm backbone, its layer groups, and a strategy plan, as a LightningModule.

The module knows *how* to freeze a set of groups; *when* to do so is the job of the
``UnfreezeSchedule`` callback, which reads the plan each epoch.
"""

from __future__ import annotations

import torch
from lightning import LightningModule
from torch import nn
from torchmetrics import Metric
from torchmetrics.classification import MulticlassAccuracy

from ftbench.backbone import LayerGroup, group_modules
from ftbench.checkpointing import StartingWeights
from ftbench.optim import build_optimizer, build_scheduler
from ftbench.strategies import StrategyPlan

STAGES = ("train", "val", "test")


class BatchMean(Metric):
    """Mean of a per-batch value weighted by batch size, summed over ranks at compute.

    ``self.log(tensor, on_epoch=True)`` would do the same, but a ``log`` call costs about a
    millisecond, which is most of a step when only the head trains on cached features.
    (``MeanMetric`` checks for NaN every step, a device sync on GPU, and its
    ``nan_strategy="disable"`` drops the weights.)
    """

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        # float32, not float64: MPS has no float64, and an epoch's sum needs no more
        self.add_state("total", torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("weight", torch.tensor(0.0), dist_reduce_fx="sum")

    def update(self, value: torch.Tensor, weight: int) -> None:
        self.total += value.detach().float() * weight
        self.weight += weight

    def compute(self) -> torch.Tensor:
        return self.total / self.weight


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
        self.trainable = [True] * len(groups)
        self.starting_weights = StartingWeights(model, [g.name for g in groups], self._group_modules)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        # Updated every step, logged once per epoch. validate_args=False: the labels come from
        # the data module, and the checks would sync an accelerator on every step.
        self.epoch_metrics = nn.ModuleDict()
        for stage in STAGES:
            self.epoch_metrics[f"{stage}_loss"] = BatchMean()
            self.epoch_metrics[f"{stage}_acc"] = MulticlassAccuracy(num_classes, average="micro",
                                                                    validate_args=False)

    # -- freezing -------------------------------------------------------------------------
    def set_trainable(self, mask: list[bool]) -> None:
        """Freeze every group whose flag is False; never touches the optimizer's layout."""
        self.trainable = list(mask)
        for params, trainable in zip(self.group_params, mask, strict=True):
            for p in params:
                p.requires_grad_(trainable)
        if self.training:
            self.train(True)

    def train(self, mode: bool = True):
        # Lightning calls train() at every epoch and after every validation; frozen groups
        # must stay in eval mode so their BatchNorm statistics never move.
        super().train(mode)
        if mode:
            for modules, trainable in zip(self._group_modules, self.trainable, strict=True):
                if not trainable:
                    for m in modules:
                        m.eval()
        return self

    def frozen_modules(self) -> list[nn.Module]:
        return [m for ms, t in zip(self._group_modules, self.trainable, strict=True)
                if not t for m in ms]

    # -- steps ----------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 2:  # cached pre-logit features (see features.py): only the head runs
            x = nn.functional.dropout(x, p=getattr(self.model, "drop_rate", 0.0), training=self.training)
            return self.model.get_classifier()(x)
        return self.model(x.contiguous(memory_format=self.memory_format))

    def _shared_step(self, batch, stage: str) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        loss = self.criterion(logits, y)
        self.epoch_metrics[f"{stage}_loss"].update(loss, len(y))
        self.epoch_metrics[f"{stage}_acc"].update(logits, y)
        return loss

    def _log_epoch(self, stage: str) -> None:
        """The stage's epoch loss and accuracy, over every rank (torchmetrics syncs at compute)."""
        loss, accuracy = self.epoch_metrics[f"{stage}_loss"], self.epoch_metrics[f"{stage}_acc"]
        if not loss.update_called:
            return
        suffix = "_epoch" if stage == "train" else ""  # the per-step loss is train_loss_step
        # The values already agree across ranks: sync_dist's mean of them changes nothing and
        # keeps Lightning from warning about unsynced epoch metrics.
        self.log(f"{stage}_loss{suffix}", loss.compute(), prog_bar=True, sync_dist=True)
        self.log(f"{stage}_acc", accuracy.compute(), prog_bar=stage != "train", sync_dist=True)
        loss.reset()
        accuracy.reset()

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        loss = self._shared_step(batch, "train")
        # Only on the steps the loggers write (every log_every_n_steps), for the same reason.
        every = self.trainer.log_every_n_steps
        if every and (self.global_step + 1) % every == 0:
            self.log("train_loss_step", loss, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        self._shared_step(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._shared_step(batch, "test")

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    # -- checkpoints ----------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # the epoch being saved counts as trained: a mid-epoch (interrupt) save includes it
        untouched = self.plan.untouched_groups(self.trainer.current_epoch)
        self.starting_weights.leave_out(checkpoint, untouched)

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

    def group_lrs(self) -> list[float]:
        """Each layer group's current LR, 0 where the group is frozen (bottom to top)."""
        optimizer = self.optimizers(use_pl_optimizer=False)
        lrs = [0.0] * len(self.groups)
        for pg in optimizer.param_groups:
            lrs[pg["layer_group"]] = pg["lr"] if self.trainable[pg["layer_group"]] else 0.0
        return lrs
