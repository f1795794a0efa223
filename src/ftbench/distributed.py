"""What one run adds up to when it trains on several processes (DDP ranks).

Each rank meters only its own shard: images and FLOPs add up over ranks, wall-clock and
peak memory are those of the slowest and the fullest rank. Accuracy needs none of this:
torchmetrics syncs its states across ranks itself.
"""

from __future__ import annotations

import torch
from lightning import Trainer

SUMMED_COST = ("train_images", "train_flops", "eval_flops")
MAXED_COST = ("train_seconds", "peak_memory_mb")


def reduce_over_ranks(trainer: Trainer, values: list[float], op: str = "sum") -> list[float]:
    """Every rank's ``values`` combined elementwise (``sum`` or ``max``); a no-op on one process.

    A collective: every rank must call it, in the same order.
    """
    if trainer.world_size == 1:
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=trainer.strategy.root_device)
    return trainer.strategy.reduce(tensor, reduce_op=op).tolist()


def cost_over_ranks(trainer: Trainer, cost: dict) -> dict:
    """The whole run's cost from one rank's ``cost``, with ``devices`` and throughput added up."""
    summed = [k for k in SUMMED_COST if cost.get(k) is not None]
    maxed = [k for k in MAXED_COST if cost.get(k) is not None]
    total = dict(cost)
    for keys, op in ((summed, "sum"), (maxed, "max")):
        reduced = reduce_over_ranks(trainer, [float(cost[k]) for k in keys], op)
        total.update({k: type(cost[k])(v) for k, v in zip(keys, reduced, strict=True)})
    if total.get("train_images") is not None and total.get("train_seconds"):
        total["images_per_second"] = total["train_images"] / total["train_seconds"]
    total["devices"] = trainer.world_size
    return total
