"""ftbench's own cost: the same fine-tune through ftbench and through a minimal PyTorch loop.

Same model and initial weights, same in-memory data, batch size, optimizer, LR schedule and
number of epochs (so the same steps, short last batches included); both on the same device.
Prints images/s of each and their ratio (target: ftbench >= 0.95x the plain loop): the
median over back-to-back pairs, run in alternating order so that machine drift cancels.

    python -m benchmarks.overhead [--epochs 3] [--repeats 5] [HYDRA_OVERRIDES ...]
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from statistics import median

import torch
from lightning import seed_everything

from benchmarks.common import machine, make_cfg, parse_args, quiet, timed, verdict
from ftbench.backbone import create_backbone, layer_groups
from ftbench.data import FineTuneDataModule
from ftbench.optim import build_optimizer, build_scheduler
from ftbench.strategies import build_plan
from ftbench.train import fit


def ftbench_images_per_second(overrides: list[str], epochs: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = make_cfg(*overrides, "strategy=full", f"trainer.max_epochs={epochs}",
                       "+trainer.limit_val_batches=0", "+trainer.limit_test_batches=1",
                       run_dir=Path(tmp))
        result = fit(cfg, Path(tmp))
    return result["cost"]["images_per_second"]


def plain_images_per_second(overrides: list[str], epochs: int) -> float:
    """The loop a researcher would write by hand, with the same ingredients."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = make_cfg(*overrides, "strategy=full", "trainer.max_epochs=1", run_dir=Path(tmp))
    seed_everything(cfg.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dm = FineTuneDataModule(cfg.dataset, batch_size=cfg.data.batch_size)
    model = create_backbone(cfg.model.name, dm.num_classes, weights=cfg.model.weights)
    dm.resolve_for(model)
    dm.setup()
    groups = layer_groups(model)
    plan = build_plan(cfg.strategy, [g.name for g in groups], epochs)
    fmt = torch.channels_last if cfg.model.channels_last else torch.contiguous_format
    model = model.to(device, memory_format=fmt).train()
    optimizer = build_optimizer(cfg.optimizer, model, groups, plan.lr_scales(), plan.lr)
    loader = torch.utils.data.DataLoader(dm.datasets["train"], batch_size=cfg.data.batch_size,
                                         shuffle=True)
    scheduler = build_scheduler(cfg.optimizer, optimizer, epochs * len(loader), len(loader))
    use_bf16 = device.type == "cuda"

    def run() -> int:
        images = 0
        for _ in range(epochs):
            for x, y in loader:
                x = x.to(device, non_blocking=True).contiguous(memory_format=fmt)
                y = y.to(device, non_blocking=True)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                    loss = torch.nn.functional.cross_entropy(model(x), y)
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                scheduler.step()
                images += len(y)
        return images

    seconds, images = timed(run)
    return images / seconds


def main() -> None:
    args = parse_args(__doc__, epochs=3, repeats=5, example="model=resnet50 trainer=gpu")
    quiet()
    print(f"overhead benchmark on {machine()}; overrides: {args.overrides or 'embedded default'}")
    ours, plain = [], []
    ftbench_images_per_second(args.overrides, 1)  # warm-up: imports, allocator, kernels
    plain_images_per_second(args.overrides, 1)
    sides = [(plain, plain_images_per_second), (ours, ftbench_images_per_second)]
    for i in range(args.repeats):
        # each pair runs back to back, in alternating order, so a drift in the machine's
        # speed falls on both sides alike
        for results, measure in sides if i % 2 == 0 else sides[::-1]:
            results.append(measure(args.overrides, args.epochs))
        print(f"  pair {i + 1}: plain {plain[-1]:8.1f} img/s   ftbench {ours[-1]:8.1f} img/s   "
              f"ratio {ours[-1] / plain[-1]:.3f}")
    print(f"median: plain {median(plain):.1f} img/s, ftbench {median(ours):.1f} img/s "
          f"(ratio of medians {median(ours) / median(plain):.3f})")
    ratio = median([o / p for o, p in zip(ours, plain, strict=True)])
    print(verdict("ftbench / plain images per second, median of pairs", ratio, 0.95))


if __name__ == "__main__":
    main()
