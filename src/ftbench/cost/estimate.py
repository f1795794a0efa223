"""What a run is about to cost, said before it trains.

One line when fitting starts: images per epoch, epochs, input size, FLOPs of one image's
forward (counted with ``ftbench.cost.flops`` on a real training image), a rough time estimate
for this machine (a forward timed on a few images, a training step counted as three forwards
where backbone groups train and one where only the head does) and the torch threads the run
computes with (``ftbench.run.threads``). And one more line when the
images are much smaller than the input size the weights expect: they are upscaled, and the
compute grows with the pixels.
"""

from __future__ import annotations

import logging
import math
import time
from typing import TYPE_CHECKING, cast

import torch
from lightning import Callback, LightningModule, Trainer
from lightning.pytorch.utilities.seed import isolate_rng

from ftbench.cost.flops import flop_counter
from ftbench.tracking.units import duration, si

if TYPE_CHECKING:
    from ftbench.finetune.observed import TrainingView

log = logging.getLogger("ftbench")

TIMED_IMAGES = 8
# a step that trains backbone groups: forward, input gradients and weight gradients
TRAIN_FORWARDS = 3.0
UPSCALE_NOTE_RATIO = 1.5  # input side / image side above which the upscaling is worth a line


def limited(items: int, batch_size: int, limit: int | float | None) -> int:
    """Items an epoch goes through under a ``limit_*_batches`` setting (a count of batches, a
    fraction of them, or None for all): Lightning's rule, for the estimate and the shifted sets."""
    batches = math.ceil(items / batch_size)
    if isinstance(limit, int) and not isinstance(limit, bool):
        batches = min(batches, limit)
    elif isinstance(limit, float):
        batches = int(batches * limit)
    return min(items, batches * batch_size)


def upscaling_note(image_size: tuple[int, int], input_size: tuple[int, int]) -> str | None:
    """The line that says small images are upscaled to the weights' input, or None."""
    (w, h), (in_h, in_w) = image_size, input_size
    if min(in_h / h, in_w / w) < UPSCALE_NOTE_RATIO:
        return None
    factor = (in_h * in_w) / (h * w)
    own = max(32, 32 * math.ceil(max(w, h) / 32))
    return (f"dataset: the images are {w}x{h} px and are upscaled to the weights' input of "
            f"{in_w}x{in_h} ({factor:.0f}x the pixels, and about as much more compute per image); "
            f"dataset.image_size sets the size trained at: dataset.image_size={own} stays near the "
            f"images' own size, sizes in between trade accuracy against time (compare a few)")


class RunPreview(Callback):
    """Logs the run's expected cost (and any upscaling) when fitting starts, on rank zero."""

    def __init__(self, cached_head_epochs: bool = False, threads=None) -> None:
        self.cached_head_epochs = cached_head_epochs  # head-only epochs train on cached features
        self.threads = threads  # ftbench.run.threads.KeepThreads: the run's thread count, said here

    @torch.no_grad()
    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        view = watched(pl_module)
        if not trainer.is_global_zero:
            return
        dm = trainer.datamodule  # type: ignore[attr-defined]  # set by Trainer.fit
        note = None
        if not dm.cfg.get("image_size"):
            size = dm.source_image_size()
            note = size and upscaling_note(size, tuple(dm.data_config["input_size"][1:]))
        if note:
            log.warning(note)
        train, val, test = (dm.datasets[s] for s in ("train", "val", "test"))
        was_training = view.training
        view.eval()
        # isolate_rng: an augmented split draws random numbers; the run's own draws stay as
        # they would be without this look ahead (a resumed run stays bit-identical)
        with isolate_rng():
            first = train[0][0].unsqueeze(0)
            try:
                with trainer.precision_plugin.forward_context(), flop_counter() as counter:
                    view(first.to(view.device))
                seconds = self._seconds_per_image(trainer, view, train)
            finally:
                view.train(was_training)
        images = limited(len(train), dm.batch_size, trainer.limit_train_batches) // trainer.world_size
        val_images = limited(len(val), dm.batch_size, trainer.limit_val_batches) // trainer.world_size
        test_images = limited(len(test), dm.batch_size, trainer.limit_test_batches) // trainer.world_size
        cached = self.cached_head_epochs and dm.can_serve_features("train")
        forwards = self._forwards(trainer, view, images, val_images, test_images, cached)
        share = self.threads.share if self.threads is not None else None
        log.info("run: %d images per epoch x %d epochs at %s px, %s per image (forward); about %s "
                 "on this machine (a forward timed on %d images, a training step as %g forwards "
                 "where backbone groups train)%s", images, trainer.max_epochs,
                 "x".join(str(d) for d in first.shape[1:]), si(counter.get_total_flops(), "FLOP"),
                 duration(forwards * seconds), TIMED_IMAGES, TRAIN_FORWARDS,
                 f"; {share.describe()}" if share else "")

    @staticmethod
    def _seconds_per_image(trainer: Trainer, pl_module: TrainingView, train) -> float:
        batch = torch.stack([train[i][0] for i in range(min(TIMED_IMAGES, len(train)))])
        batch = batch.to(pl_module.device)
        timings = []
        for _ in range(2):  # the first forward pays for one-off set-up
            start = time.perf_counter()
            with trainer.precision_plugin.forward_context():
                pl_module(batch)
            if pl_module.device.type == "cuda":
                torch.cuda.synchronize(pl_module.device)
            timings.append(time.perf_counter() - start)
        return timings[-1] / len(batch)

    @staticmethod
    def _forwards(trainer: Trainer, pl_module: TrainingView, images: int, val_images: int,
                  test_images: int, cached: bool) -> float:
        """Image forwards of the whole run, a training step counted as ``TRAIN_FORWARDS``;
        ``cached``: head-only epochs train on features computed once."""
        total, extracted = float(test_images), False
        for epoch in range(trainer.current_epoch, trainer.max_epochs or 0):
            if any(pl_module.trainable_at(epoch)[:-1]):
                total += TRAIN_FORWARDS * images + val_images
            elif cached:  # one pass over every split, then the head alone
                total += 0 if extracted else images + val_images
                extracted = True
            else:
                total += images + val_images
        return total


def watched(pl_module: LightningModule) -> TrainingView:
    """The module as ``TrainingView``: what this observer may read of training."""
    return cast("TrainingView", pl_module)
