"""ftbench's own cost: the same fine-tune through ftbench and through a lean PyTorch loop.

Same model and initial weights, same in-memory tensors, batch size, optimizer param groups,
LR schedule and number of epochs (so the same steps, short last batches included); both on
the same device. The plain loop indexes its tensors a batch at a time, as ftbench's loader
does, so the ratio is the framework's cost alone.
Prints images/s of each and their ratio (target: ftbench >= 0.95x the plain loop): the
median over back-to-back pairs, run in alternating order so that machine drift cancels.

    python -m benchmarks.overhead [--epochs 3] [--repeats 5] [--profile] [HYDRA_OVERRIDES ...]
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from statistics import median

import torch
from lightning import seed_everything
from torch.utils.data import TensorDataset

from benchmarks.common import machine, make_cfg, parse_args, quiet, timed, verdict
from ftbench.data import FineTuneDataModule
from ftbench.finetune.optim import build_optimizer, build_scheduler
from ftbench.finetune.strategies import build_plan
from ftbench.models.backbone import create_backbone, layer_groups
from ftbench.run.result import read_result
from ftbench.train import fit


def ftbench_images_per_second(overrides: list[str], epochs: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = make_cfg(*overrides, "strategy=full", f"trainer.max_epochs={epochs}",
                       "+trainer.limit_val_batches=0", "+trainer.limit_test_batches=1", "eval.shifts=[]",
                       run_dir=Path(tmp))
        fit(cfg, Path(tmp))
        return read_result(tmp).cost.images_per_second


def plain_images_per_second(overrides: list[str], epochs: int) -> float:
    """The lean loop a performance-minded researcher writes by hand: the same in-memory tensors,
    shuffled and indexed a whole batch at a time (no DataLoader, no collate), channels_last,
    the same optimizer param groups and LR schedule, bf16 autocast on a GPU as ftbench's
    ``trainer=gpu``; nothing else (no metrics, no logging, no checks)."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = make_cfg(*overrides, "strategy=full", "trainer.max_epochs=1", run_dir=Path(tmp))
    seed_everything(cfg.seed, verbose=False)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dm = FineTuneDataModule(cfg.dataset, batch_size=cfg.data.batch_size)
    model = create_backbone(cfg.model.name, dm.num_classes, weights=cfg.model.weights,
                            drop_rate=cfg.model.drop_rate)
    dm.resolve_for(model)
    dm.setup()
    train = dm.datasets["train"]
    if not isinstance(train, TensorDataset):
        raise SystemExit("the overhead benchmark compares in-memory training: use a deterministic "
                         "dataset (dataset.augment=false) that fits dataset.in_memory_max")
    images, labels = train.tensors  # on the host, like ftbench's: each batch is copied over
    groups = layer_groups(model)
    plan = build_plan(cfg.strategy, [g.name for g in groups], epochs)
    fmt = torch.channels_last if cfg.model.channels_last else torch.contiguous_format
    model = model.to(device, memory_format=fmt).train()
    optimizer = build_optimizer(cfg.optimizer, model, groups, plan.lr_scales(), plan.lr)
    batch_size = cfg.data.batch_size
    steps = math.ceil(len(labels) / batch_size)  # a short last batch, as the DataLoader's
    scheduler = build_scheduler(cfg.optimizer, optimizer, epochs * steps, steps)
    use_bf16 = device.type == "cuda"

    def run() -> int:
        seen = 0
        for _ in range(epochs):
            order = torch.randperm(len(labels))
            for start in range(0, len(labels), batch_size):
                index = order[start:start + batch_size]
                x = images[index].to(device, non_blocking=True).contiguous(memory_format=fmt)
                y = labels[index].to(device, non_blocking=True)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                    loss = torch.nn.functional.cross_entropy(model(x), y)
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                scheduler.step()
                seen += len(y)
        return seen

    seconds, seen = timed(run)
    return seen / seconds


def profile(overrides: list[str], epochs: int, rows: int = 15) -> None:
    """Where each side's time goes: torch.profiler's top operators by self time (CPU, and
    CUDA on a GPU), one run of each after a warm-up."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    sort = "self_cuda_time_total" if torch.cuda.is_available() else "self_cpu_time_total"
    for name, measure in (("plain", plain_images_per_second), ("ftbench", ftbench_images_per_second)):
        measure(overrides, 1)
        with torch_profile(activities=activities) as prof:
            speed = measure(overrides, epochs)
        print(f"\n== {name}: {speed:.1f} img/s under the profiler; top {rows} by {sort}")
        print(prof.key_averages().table(sort_by=sort, row_limit=rows, max_name_column_width=60))


def main() -> None:
    args = parse_args(__doc__, epochs=3, repeats=5, example="model=resnet50 trainer=gpu",
                      flags={"--profile": "print torch.profiler's top operators of each side instead"})
    quiet()
    if args.profile:
        profile(args.overrides, args.epochs)
        return
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
