"""What a run cost beyond time and memory: FLOPs, and how far the weights moved.

- ``FlopMeter`` counts the FLOPs of the first real training step of every phase (each set of
  trainable groups) and multiplies by the images that phase trained on; evaluation apart.
- ``WeightDrift`` measures, per layer group, ``||w - w0|| / ||w0||`` between the pretrained
  and the final weights: how much each strategy rewrote what the backbone had learned.

``CostMeter`` (``ftbench.callbacks``) keeps the wall-clock, throughput and peak memory;
``cost_summary`` puts the three together in the shape of ``result.json``'s ``cost``.
"""

from __future__ import annotations

import torch
from lightning import Callback, LightningModule, Trainer
from torch.utils.flop_counter import FlopCounterMode

from ftbench.flops import flop_counter


class FlopMeter(Callback):
    """Training FLOPs counted on real steps whenever the trainable groups change.

    The counter runs from ``on_train_batch_start`` to ``on_after_backward`` around a step that
    training takes anyway: no extra step, no RNG draw, no BatchNorm update. FLOPs are linear in
    the batch size, so a phase costs its FLOPs per image times the images it trained on (a
    short last batch included). Evaluation is counted on its first batch of each input kind:
    images, or the pre-logit features that ``FeatureCache`` serves while the backbone is frozen.
    The cache's one-off feature extraction is counted by the cache and added in ``cost_summary``.
    """

    def __init__(self) -> None:
        self.train_flops = 0.0
        self.eval_flops = 0.0
        self.epoch_flops: list[float] = []
        self.phases: list[dict] = []  # {"trainable": mask, "flops_per_image": x, "epoch": e}
        self.eval_flops_per_image: dict[str, float] = {}  # input shape -> FLOPs per image
        self._epoch_flops = 0.0
        self._input: list[int] = []
        self._counter: FlopCounterMode | None = None
        self._counting_images = 0

    # -- counting ----------------------------------------------------------------------------
    def _start(self, images: int) -> None:
        self._counter = flop_counter()
        self._counter.__enter__()
        self._counting_images = images

    def _stop(self) -> float | None:
        if self._counter is None:
            return None
        self._counter.__exit__(None, None, None)
        flops, self._counter = self._counter.get_total_flops(), None
        return flops / self._counting_images

    def _phase(self, pl_module: LightningModule, batch) -> dict | None:
        # the input's shape tells images from cached features (a phase may switch between them)
        mask, shape = list(pl_module.trainable), list(batch[0].shape[1:])
        return next((p for p in self.phases if p["trainable"] == mask and p["input"] == shape), None)

    # -- training ----------------------------------------------------------------------------
    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._epoch_flops = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self._phase(pl_module, batch) is None:
            self._start(len(batch[1]))
            self._input = list(batch[0].shape[1:])

    def on_after_backward(self, trainer: Trainer, pl_module: LightningModule) -> None:
        per_image = self._stop()
        if per_image is not None:
            self.phases.append({"trainable": list(pl_module.trainable), "input": self._input,
                                "flops_per_image": per_image, "epoch": trainer.current_epoch})

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.on_after_backward(trainer, pl_module)  # a step without backward still ends the count
        self._epoch_flops += self._phase(pl_module, batch)["flops_per_image"] * len(batch[1])

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.epoch_flops.append(self._epoch_flops)
        self.train_flops += self._epoch_flops
        pl_module.log("epoch_train_flops", self._epoch_flops)

    # -- evaluation --------------------------------------------------------------------------
    def _eval_batch_start(self, trainer: Trainer, batch) -> None:
        if not trainer.sanity_checking and _shape_key(batch) not in self.eval_flops_per_image:
            self._start(len(batch[1]))

    def _eval_batch_end(self, trainer: Trainer, batch) -> None:
        if trainer.sanity_checking:
            return
        per_image = self._stop()
        if per_image is not None:
            self.eval_flops_per_image[_shape_key(batch)] = per_image
        self.eval_flops += self.eval_flops_per_image[_shape_key(batch)] * len(batch[1])

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
        self._stop()  # never leave the dispatch mode installed

    # -- checkpointing -----------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"train_flops": self.train_flops, "eval_flops": self.eval_flops,
                "epoch_flops": self.epoch_flops, "phases": self.phases,
                "eval_flops_per_image": self.eval_flops_per_image,
                # a run resumed mid-epoch (saved by a signal) goes on adding to its epoch
                "running_epoch_flops": self._epoch_flops}

    def load_state_dict(self, state_dict: dict) -> None:
        self.train_flops = state_dict["train_flops"]
        self.eval_flops = state_dict["eval_flops"]
        self.epoch_flops = list(state_dict["epoch_flops"])
        self.phases = list(state_dict["phases"])
        self.eval_flops_per_image = dict(state_dict["eval_flops_per_image"])
        self._epoch_flops = state_dict.get("running_epoch_flops", 0.0)


def _shape_key(batch) -> str:
    """An input's per-sample shape, e.g. "3x32x32" for images, "1280" for cached features."""
    return "x".join(str(d) for d in batch[0].shape[1:])


class WeightDrift(Callback):
    """``||w - w0|| / ||w0||`` per layer group, w0 being the weights the run started from.

    w0 is taken in ``setup``, before Lightning restores a checkpoint, so a resumed run still
    measures from the pretrained weights it was built with. The head starts from a random
    initialisation: its drift says how far it travelled from there.
    """

    def __init__(self) -> None:
        self._initial: list[list[torch.Tensor]] = []
        self.drift: dict[str, float] = {}

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage == "fit":
            self._initial = [[p.detach().to("cpu", copy=True) for p in params]
                             for params in pl_module.group_params]

    @torch.no_grad()
    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        for group, params, initial in zip(pl_module.groups, pl_module.group_params,
                                          self._initial, strict=True):
            moved = sum(float((p.detach().cpu() - w0).pow(2).sum())
                        for p, w0 in zip(params, initial, strict=True))
            size = sum(float(w0.pow(2).sum()) for w0 in initial)
            self.drift[group.name] = (moved / size) ** 0.5 if size > 0 else 0.0


def cost_summary(time_meter, flop_meter: FlopMeter, drift: WeightDrift,
                 pl_module: LightningModule, cache=None) -> dict:
    """The ``cost`` block of ``result.json``.

    With cached features, a training step runs the head only; the backbone's forward over the
    training split ran once, in the cache, and is training compute and time too (val/test:
    evaluation).
    """
    extraction = cache.flops if cache else {}
    times = time_meter.summary(pl_module)
    if cache and cache.train_seconds:  # the one feature pass is part of what training took
        times["train_seconds"] += cache.train_seconds
        times["images_per_second"] = times["train_images"] / times["train_seconds"]
    return {
        **times,
        "train_flops": flop_meter.train_flops + extraction.get("train", 0),
        "eval_flops": flop_meter.eval_flops + extraction.get("val", 0) + extraction.get("test", 0),
        "epoch_train_flops": flop_meter.epoch_flops,
        "flop_phases": [{"trainable_groups": [g.name for g, t in zip(pl_module.groups, p["trainable"],
                                                                      strict=True) if t],
                         "input": p["input"], "first_epoch": p["epoch"],
                         "flops_per_image": p["flops_per_image"]}
                        for p in flop_meter.phases],
        "eval_flops_per_image": dict(flop_meter.eval_flops_per_image),
        "feature_cache": cache.summary() if cache else {"used": False},
        "drift": dict(drift.drift),
    }


def add_epoch_costs(history: list[dict], cost: dict) -> list[dict]:
    """Per-epoch training seconds and FLOPs into the history records, epoch by epoch."""
    for entry, seconds, flops in zip(history, cost["epoch_train_seconds"], cost["epoch_train_flops"],
                                     strict=False):
        entry["train_seconds"] = seconds
        entry["train_flops"] = flops
    return history


def log_cost(trainer: Trainer, cost: dict) -> None:
    """The run's cost figures to every Lightning logger, drift as ``drift/<group>``."""
    scalars = {f"cost/{k}": float(v) for k, v in cost.items() if isinstance(v, (int, float))}
    scalars.update({f"drift/{name}": value for name, value in cost["drift"].items()})
    for logger in trainer.loggers:
        logger.log_metrics(scalars, step=trainer.global_step)
        logger.save()
