"""Cross-cutting behaviour of a fine-tuning run, as Lightning callbacks.

- ``UnfreezeSchedule`` applies the strategy plan at the start of every epoch.
- ``EpochHistory`` records what each epoch did (loss, accuracy, per-group LRs).
- ``CostMeter`` measures what the run cost.
"""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

import torch
from lightning import Callback, LightningModule, Trainer

from ftbench.backbone import count_params

_PROC_STATUS = Path("/proc/self/status")


class UnfreezeSchedule(Callback):
    """Sets the trainable groups for the epoch about to run, from the plan alone.

    Lightning's ``BaseFinetuning`` adds param groups when it unfreezes and re-freezes
    everything in ``setup``, so a resumed run loses its unfrozen groups. Here the trainable
    set is a pure function of ``trainer.current_epoch`` and the optimizer always holds
    every group, so a resumed run is in exactly the state of an uninterrupted one.
    """

    def _apply(self, trainer: Trainer, pl_module: LightningModule) -> None:
        pl_module.set_trainable(pl_module.plan.trainable_mask(trainer.current_epoch))

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._apply(trainer, pl_module)

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # After a checkpoint is restored. A run resumed mid-epoch (saved by a signal) gets
        # no on_train_epoch_start for that epoch, and setup ran before the epoch was restored.
        self._apply(trainer, pl_module)

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._apply(trainer, pl_module)


class EpochHistory(Callback):
    """One record per training epoch, saved in checkpoints so that a resume keeps it."""

    def __init__(self) -> None:
        self.history: list[dict] = []
        self._lrs: list[float] = []

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._lrs = pl_module.group_lrs()  # the LRs the epoch starts with

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        metrics = trainer.callback_metrics
        # Callbacks' epoch end runs before the module's, which logs and resets this metric;
        # its compute() is over every rank's shard and cached, so the module reuses it.
        train_loss = float(pl_module.epoch_metrics["train_loss"].compute())
        self.history.append({
            "epoch": trainer.current_epoch,
            "train_loss": train_loss,
            "val_acc": float(metrics["val_acc"]) if "val_acc" in metrics else None,
            "val_loss": float(metrics["val_loss"]) if "val_loss" in metrics else None,
            "lrs": self._lrs,
            "trainable_groups": [g.name for g, t in zip(pl_module.groups, pl_module.trainable,
                                                         strict=True) if t],
            "trainable_params": count_params(pl_module.model, trainable_only=True),
        })

    def state_dict(self) -> dict:
        # the running epoch's starting LRs too: a run resumed mid-epoch does not start it again
        return {"history": self.history, "epoch_lrs": self._lrs}

    def load_state_dict(self, state_dict: dict) -> None:
        self.history = list(state_dict["history"])
        self._lrs = list(state_dict.get("epoch_lrs", []))


class CostMeter(Callback):
    """Training wall-clock (validation excluded), throughput, and peak memory."""

    def __init__(self) -> None:
        self.train_seconds = 0.0
        self.images = 0
        self.epoch_seconds: list[float] = []
        self._epoch_start = 0.0
        self._val_seconds = 0.0
        self._val_start = 0.0
        self._resumed_seconds = 0.0  # of an epoch a signal interrupted, restored on resume

    def _sync(self, pl_module: LightningModule) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)

    def on_fit_start(self, trainer, pl_module) -> None:
        reset_peak_memory(pl_module.device)

    def on_train_start(self, trainer, pl_module) -> None:
        # A run resumed mid-epoch gets no on_train_epoch_start: its clock goes on from here,
        # with the seconds the epoch had run before the signal. Otherwise the epoch start resets it.
        self._val_seconds = 0.0
        self._epoch_start = time.perf_counter() - self._resumed_seconds

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._sync(pl_module)
        self._val_seconds = 0.0
        self._epoch_start = time.perf_counter()

    def on_validation_start(self, trainer, pl_module) -> None:
        self._val_start = time.perf_counter()

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.training:
            self._val_seconds += time.perf_counter() - self._val_start

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.images += len(batch[1])

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._sync(pl_module)
        seconds = self._epoch_seconds_so_far()
        self.epoch_seconds.append(seconds)
        self.train_seconds += seconds
        pl_module.log("epoch_train_seconds", seconds)

    def summary(self, pl_module: LightningModule) -> dict:
        return {
            "train_seconds": self.train_seconds,
            "train_images": self.images,
            "epoch_train_seconds": self.epoch_seconds,
            "images_per_second": self.images / self.train_seconds if self.train_seconds else None,
            "peak_memory_mb": peak_memory_mb(pl_module.device),
            "trainable_params": count_params(pl_module.model, trainable_only=True),
            "total_params": count_params(pl_module.model),
        }

    def _epoch_seconds_so_far(self) -> float:
        return time.perf_counter() - self._epoch_start - self._val_seconds

    def state_dict(self) -> dict:
        # The running epoch's seconds matter only to a run resumed mid-epoch: after an epoch
        # boundary, on_train_epoch_start starts the clock afresh.
        return {"train_seconds": self.train_seconds, "images": self.images,
                "epoch_seconds": self.epoch_seconds,
                "running_epoch_seconds": self._epoch_seconds_so_far()}

    def load_state_dict(self, state_dict: dict) -> None:
        self.train_seconds = state_dict["train_seconds"]
        self.images = state_dict["images"]
        self.epoch_seconds = list(state_dict["epoch_seconds"])
        self._resumed_seconds = state_dict.get("running_epoch_seconds", 0.0)


def reset_peak_memory(device: torch.device) -> None:
    """Start the peak afresh, so that runs sharing a process (a multirun) each get their own."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    elif _PROC_STATUS.exists():
        try:
            Path("/proc/self/clear_refs").write_text("5")  # Linux: resets VmHWM, the peak RSS
        except OSError:
            pass


def peak_memory_mb(device: torch.device) -> float:
    """CUDA peak allocated on GPU; the process's peak resident set size on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    if _PROC_STATUS.exists():
        for line in _PROC_STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**10  # kB
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10  # bytes vs KiB
