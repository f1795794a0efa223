"""The run's meter: one callback that owns everything a run measures.

Time (training wall-clock, validation excluded), images, memory (the process's peak, and
what training itself held: see memory.py), FLOPs per training phase and of evaluation, how
far each layer group drifted from its starting weights, and the epoch history (losses,
accuracies, per-group LRs, what trained). It keeps all of it in one ``state_dict``, so a
resumed run goes on counting where the interrupted one stopped, and produces the ``cost``
and ``history`` blocks of ``result.json``, reduced over DDP ranks.

It reads the module only through ``FineTuneModule``'s small interface (``groups``,
``group_params``, ``trainable`` — what the step about to run trains, set before any of its
hooks —, ``trainable_at``, ``trainable_params``, ``group_lrs``, ``epoch_value``), so the
order in which Lightning calls hooks does not matter. What it records is what the steps
actually trained, not what the plan said they would.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, TypeVar, cast

import torch
from lightning import Callback, LightningModule, Trainer
from lightning.pytorch.trainer.states import TrainerFn

from ftbench.cost.flops import FlopTally
from ftbench.cost.memory import TrainingMemory, peak_memory_mb, reset_peak_memory
from ftbench.run.schema import Cost, Epoch, FeatureCacheCost, FlopPhase, MemoryPhase, TrainMemory

if TYPE_CHECKING:
    from ftbench.finetune.observed import TrainingView

N = TypeVar("N", int, float, float | None)  # a figure reduced over DDP ranks


class Meter(Callback):
    def __init__(self) -> None:
        self.flops = FlopTally()
        self.memory = TrainingMemory()
        self.history: list[Epoch] = []  # kept in checkpoints as plain data
        self.train_seconds = 0.0
        self.images = 0
        self.epoch_seconds: list[float] = []
        self._epoch_lrs: list[float] = []  # the LRs the running epoch started with
        self._step_mask: list[bool] = []
        self._epoch_trained: list[bool] = []  # the groups the running epoch's steps trained
        self.trained: list[bool] = []  # the groups any step of the run trained
        self._epoch_start = 0.0
        self._val_seconds = 0.0
        self._val_start = 0.0
        self._resumed_seconds = 0.0  # of an epoch a signal interrupted, restored on resume
        self._initial: list[list[torch.Tensor]] = []

    # -- time -------------------------------------------------------------------------------
    @staticmethod
    def _sync(pl_module: TrainingView) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)

    def _epoch_seconds_so_far(self) -> float:
        return time.perf_counter() - self._epoch_start - self._val_seconds

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        view = watched(pl_module)
        if stage == "fit":  # before a checkpoint is restored: drift is from the starting weights
            self._initial = [[p.detach().to("cpu", copy=True) for p in params]
                             for params in view.group_params]

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        view = watched(pl_module)
        reset_peak_memory(view.device)
        self.memory.fit_starts(view.device)

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # A run resumed mid-epoch gets no on_train_epoch_start: its clock goes on from here,
        # with the seconds the epoch had run before the signal.
        self._val_seconds = 0.0
        self._epoch_start = time.perf_counter() - self._resumed_seconds

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        view = watched(pl_module)
        self._sync(view)
        self._val_seconds = 0.0
        self._epoch_start = time.perf_counter()
        self._epoch_trained = []
        mask = view.trainable_at(trainer.current_epoch)
        self._epoch_lrs = view.group_lrs(mask)
        lrs = {f"lr/{g.name}": lr for g, lr in zip(view.groups, self._epoch_lrs, strict=True)}
        for logger in trainer.loggers:
            logger.log_metrics(lrs, step=trainer.global_step)

    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._val_start = time.perf_counter()

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # validation inside fit (its stage is VALIDATING then, not TRAINING) is not training time
        if trainer.state.fn == TrainerFn.FITTING:
            self._val_seconds += time.perf_counter() - self._val_start

    # -- steps --------------------------------------------------------------------------------
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        view = watched(pl_module)
        self._step_mask = list(view.trainable)  # set by the module before this step's hooks
        self.flops.train_step_starts(self._step_mask, batch[0], len(batch[1]), trainer.current_epoch)
        if self.flops.counting:  # the first step of a phase: its memory is measured too
            self.memory.step_starts(pl_module, {"trainable": self._step_mask,
                                                "input": list(batch[0].shape[1:]),
                                                "features": view.serving_features("train")})

    def on_after_backward(self, trainer: Trainer, pl_module: LightningModule) -> None:
        counted = self.flops.stop()
        if counted is not None:
            self.flops.phases.append(counted)
        self.memory.backward_done()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self.flops.train_step_ends(self._step_mask, batch[0], len(batch[1]))
        self.memory.step_ends(pl_module, trainer.optimizers)
        self.images += len(batch[1])
        self._epoch_trained = union(self._epoch_trained, self._step_mask)

    def _eval_batch_start(self, trainer: Trainer, batch) -> None:
        if not trainer.sanity_checking:
            self.flops.eval_step_starts(batch[0], len(batch[1]))

    def _eval_batch_end(self, trainer: Trainer, batch) -> None:
        if not trainer.sanity_checking:
            self.flops.eval_step_ends(batch[0], len(batch[1]))

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        self._eval_batch_start(trainer, batch)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx,
                                dataloader_idx=0) -> None:
        self._eval_batch_end(trainer, batch)

    def on_test_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        self._eval_batch_start(trainer, batch)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx,
                          dataloader_idx=0) -> None:
        self._eval_batch_end(trainer, batch)

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self.flops.stop()  # never leave the counter's dispatch mode installed
        self.memory.stop()  # nor the saved-tensor hooks

    # -- epochs -------------------------------------------------------------------------------
    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        view = watched(pl_module)
        self._sync(view)
        seconds = self._epoch_seconds_so_far()
        self.epoch_seconds.append(seconds)
        self.train_seconds += seconds
        flops = self.flops.epoch_ends()
        epoch = trainer.current_epoch
        trained = self._epoch_trained or list(view.trainable)  # an epoch without steps
        self.trained = union(self.trained, trained)
        self.history.append(Epoch(
            epoch=epoch,
            train_loss=view.epoch_value("train_loss"),
            val_acc=view.epoch_value("val_acc"),
            val_loss=view.epoch_value("val_loss"),
            lrs=list(self._epoch_lrs),
            trainable_groups=[g.name for g, t in zip(view.groups, trained, strict=True) if t],
            trainable_params=view.trainable_params(trained),
            train_seconds=seconds,
            train_flops=flops,
        ))
        pl_module.log("epoch_train_seconds", seconds)
        pl_module.log("epoch_train_flops", flops)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.memory.training_ends()

    @torch.no_grad()
    def measure_drift(self, pl_module: TrainingView) -> dict[str, float | None]:
        """Per group, ``||w - w0|| / ||w0||`` over the parameters the model holds now: after a
        LoRA merge, the pretrained weights with the adapters folded in (not the adapters)."""
        held = {id(p) for p in pl_module.model.parameters()}
        drift: dict[str, float | None] = {}
        for group, params, initial in zip(pl_module.groups, pl_module.group_params,
                                          self._initial, strict=True):
            pairs = [(p, w0) for p, w0 in zip(params, initial, strict=True) if id(p) in held]
            moved = sum(float((p.detach().cpu() - w0).pow(2).sum()) for p, w0 in pairs)
            size = sum(float(w0.pow(2).sum()) for _, w0 in pairs)
            drift[group.name] = (moved / size) ** 0.5 if size > 0 else 0.0
        return drift

    # -- the result's blocks ----------------------------------------------------------------
    def cost(self, trainer: Trainer, pl_module: TrainingView,
             feature_cache: FeatureCacheCost | None = None) -> Cost:
        """The ``cost`` block of ``result.json``, over every rank; logged as ``cost/*``.
        Built by keyword, checked against the schema (``ftbench.run.schema.Cost``): a figure it
        does not declare is a type error, a value of another kind raises here.

        With cached features a training step runs the head only; the backbone's one pass over
        the training split ran in the cache and is training compute and time too (its passes
        over val and test are evaluation). Drift is measured here, on the weights the run ends
        with. A collective under DDP: every rank calls it.
        """
        cache = feature_cache or FeatureCacheCost(used=False)
        extraction = cache.flops or {}

        def names(mask: list[bool]) -> list[str]:
            return [g.name for g, t in zip(pl_module.groups, mask, strict=True) if t]

        memory = self.memory.summary((cache.bytes or 0) if cache.used else 0)
        # images and FLOPs add up over DDP ranks (each rank meters only its shard); time and
        # memory are the slowest and fullest rank's
        train_images, train_flops, eval_flops = reduce_over_ranks(trainer, "sum", [
            self.images, self.flops.train_flops + (extraction.get("train") or 0),
            self.flops.eval_flops + (extraction.get("val") or 0) + (extraction.get("test") or 0)])
        train_seconds, peak_memory, train_memory = reduce_over_ranks(trainer, "max", [
            self.train_seconds + (cache.train_seconds or 0.0), peak_memory_mb(pl_module.device),
            memory["train_memory_mb"]])
        cost = Cost(
            train_seconds=train_seconds,
            train_images=int(train_images),  # an int already (the reduction keeps each type)
            epoch_train_seconds=list(self.epoch_seconds),
            peak_memory_mb=peak_memory,
            train_memory_mb=train_memory,
            train_memory=TrainMemory(method=memory["method"], phases=[
                MemoryPhase(trainable_groups=names(p["trainable"]), input=p["input"], saved_mb=p["saved_mb"],
                            grads_mb=p["grads_mb"], optimizer_mb=p["optimizer_mb"],
                            features_mb=p["features_mb"], total_mb=p["total_mb"])
                for p in memory.get("phases", [])]),
            trainable_params=pl_module.trainable_params(self.trained or pl_module.trainable),
            total_params=sum(p.numel() for p in pl_module.model.parameters()),
            train_flops=train_flops,
            eval_flops=eval_flops,
            epoch_train_flops=list(self.flops.epoch_flops),
            flop_phases=[FlopPhase(trainable_groups=names(p["trainable"]), input=p["input"],
                                   first_epoch=p["epoch"], flops_per_image=p["flops_per_image"])
                         for p in self.flops.phases],
            eval_flops_per_image=dict(self.flops.eval_per_image),
            feature_cache=cache,
            drift=self.measure_drift(pl_module),
            images_per_second=train_images / train_seconds if train_seconds else None,
            devices=trainer.world_size,
        )
        scalars = {f"cost/{k}": float(v) for k, v in cost.model_dump(exclude_unset=True).items()
                   if isinstance(v, int | float)}
        scalars.update({f"drift/{name}": value for name, value in (cost.drift or {}).items()
                        if value is not None})
        for logger in trainer.loggers:
            logger.log_metrics(scalars, step=trainer.global_step)
            logger.save()
        return cost

    # -- checkpointing ----------------------------------------------------------------------
    def state_dict(self) -> dict:
        # The running epoch's seconds and LRs matter only to a run resumed mid-epoch: after an
        # epoch boundary, on_train_epoch_start starts them afresh.
        return {"history": [entry.model_dump(exclude_unset=True) for entry in self.history],
                "train_seconds": self.train_seconds, "images": self.images,
                "epoch_seconds": self.epoch_seconds, "epoch_lrs": self._epoch_lrs,
                "trained": self.trained, "epoch_trained": self._epoch_trained,
                "running_epoch_seconds": self._epoch_seconds_so_far(), "flops": self.flops.state_dict(),
                "memory": self.memory.state_dict()}

    def load_state_dict(self, state_dict: dict) -> None:
        self.history = [Epoch(**entry) for entry in state_dict["history"]]  # as this run wrote them
        self.train_seconds, self.images = state_dict["train_seconds"], state_dict["images"]
        self.epoch_seconds = list(state_dict["epoch_seconds"])
        self._epoch_lrs = list(state_dict["epoch_lrs"])
        self.trained, self._epoch_trained = list(state_dict["trained"]), list(state_dict["epoch_trained"])
        self._resumed_seconds = state_dict["running_epoch_seconds"]
        self.flops.load_state_dict(state_dict["flops"])
        self.memory.load_state_dict(state_dict["memory"])


def union(a: list[bool], b: list[bool]) -> list[bool]:
    """Groups in either mask (an empty mask: none yet)."""
    return [x or y for x, y in zip(a, b, strict=True)] if a else list(b)


def reduce_over_ranks(trainer: Trainer, op: str, figures: Sequence[N]) -> list[N]:
    """One rank's ``figures`` over every rank (``op``: ``sum`` or ``max``), each of its own type;
    a figure that is None stays None. A no-op on one process; a collective under DDP."""
    if trainer.world_size == 1:
        return list(figures)
    present = [v for v in figures if v is not None]
    values = torch.tensor([float(v) for v in present], dtype=torch.float64,
                          device=trainer.strategy.root_device)
    reduced = iter(trainer.strategy.reduce(values, reduce_op=op).tolist())
    return [v if v is None else type(v)(next(reduced)) for v in figures]


def watched(pl_module: LightningModule) -> TrainingView:
    """The module as ``TrainingView``: what this observer may read of training."""
    return cast("TrainingView", pl_module)
