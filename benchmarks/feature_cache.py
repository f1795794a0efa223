"""Feature caching: linear_probe for 10 epochs, cached against uncached, on the embedded default.

Three ways to run the same fit and test (timed in this process, so imports are excluded):

- ``uncached``: the backbone runs on every batch of every epoch;
- ``cached``: features computed once in the run, the head trains on them;
- ``stored``: features read from a feature store that an earlier run filled
  (``data.feature_store=DIR``), as for every later seed or head-only strategy of a sweep.

Target: at least 20x less wall-clock than ``uncached`` at equal accuracy (within 1 point).

Printed with the ratios, because they set what caching can reach here: the backbone forwards
each path runs (the cached path still runs one per image), and a bare Lightning fit of the
same head steps on features of the same shapes (no callbacks, logger or checkpoints), which
the stored path cannot undercut.

    python -m benchmarks.feature_cache [--epochs 10] [--repeats 2] [HYDRA_OVERRIDES ...]
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from statistics import median

import torch
from lightning import LightningModule, Trainer
from torch.utils.data import DataLoader, TensorDataset

from benchmarks.common import machine, make_cfg, parse_args, quiet, timed, verdict
from ftbench.models.backbone import create_backbone
from ftbench.run.result import Result, read_result
from ftbench.train import fit

MODES = {"uncached": ["data.cache_features=false"], "cached": [], "stored": []}


def run(epochs: int, mode: str, store: Path, overrides: list[str]) -> tuple[float, Result]:
    extra = [f"data.feature_store={store}"] if mode == "stored" else []
    with tempfile.TemporaryDirectory() as tmp:
        cfg = make_cfg(*overrides, "strategy=linear_probe", f"trainer.max_epochs={epochs}",
                       *MODES[mode], *extra, run_dir=Path(tmp))
        seconds, _ = timed(lambda: fit(cfg, Path(tmp)))
        return seconds, read_result(tmp)


class _Head(LightningModule):
    def __init__(self, features: int, classes: int, lr: float):
        super().__init__()
        self.head, self.lr = torch.nn.Linear(features, classes), lr

    def training_step(self, batch, batch_idx):
        return torch.nn.functional.cross_entropy(self.head(batch[0]), batch[1])

    def validation_step(self, batch, batch_idx):
        torch.nn.functional.cross_entropy(self.head(batch[0]), batch[1])

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.lr)


def bare_lightning_seconds(result: Result, epochs: int) -> float:
    """The same number of head steps and validation batches through a bare Lightning fit."""
    data = result.data
    classes, batch = data.num_classes, result.config_at("data", "batch_size")
    width = create_backbone(result.config_at("model", "name"), classes, weights="none").num_features

    def loader(n: int, shuffle: bool) -> DataLoader:
        return DataLoader(TensorDataset(torch.randn(n, width), torch.randint(0, classes, (n,))),
                          batch_size=batch, shuffle=shuffle)

    trainer = Trainer(max_epochs=epochs, accelerator="cpu", logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    model = _Head(width, classes, result.config_at("strategy", "lr"))
    seconds, _ = timed(lambda: trainer.fit(model, loader(data.train_size, True),
                                           loader(data.val_size, False)))
    return seconds


def main() -> None:
    args = parse_args(__doc__, epochs=10, repeats=2, example="dataset.image_size=224")
    quiet()
    print(f"feature_cache benchmark on {machine()}: linear_probe, {args.epochs} epochs "
          f"{' '.join(args.overrides)}")
    times: dict[str, list[float]] = {m: [] for m in MODES}
    accs: dict[str, list[float]] = {m: [] for m in MODES}
    with tempfile.TemporaryDirectory() as store:
        # a warm-up, which fills the store as a sweep's first run does
        _, first = run(1, "stored", Path(store), args.overrides)
        for _ in range(args.repeats):
            for mode in MODES:
                seconds, result = run(args.epochs, mode, Path(store), args.overrides)
                times[mode].append(seconds)
                accs[mode].append(result.metrics.test_acc)
                print(f"  {mode:8s} {seconds:7.2f} s  test_acc {result.metrics.test_acc:.4f}")
    base = median(times["uncached"])
    print("median: " + ", ".join(f"{m} {median(t):.2f} s" for m, t in times.items()))
    data = first.data
    uncached_forwards = args.epochs * (data.train_size + data.val_size) + data.test_size
    cached_forwards = data.train_size + data.val_size + data.test_size
    floor = bare_lightning_seconds(first, args.epochs)
    print(f"backbone forwards: uncached {uncached_forwards}, cached {cached_forwards} "
          f"({uncached_forwards / cached_forwards:.1f}x fewer; per image, the feature pass can be "
          f"cheaper than a training batch's forward, see extraction_batch_size)")
    print(f"bound, a bare Lightning fit of the same head steps: {floor:.2f} s "
          f"-> stored at most {base / floor:.1f}x")
    for mode in ("cached", "stored"):
        print(verdict(f"uncached / {mode} wall-clock", base / median(times[mode]), 20.0))
        gap = abs(median(accs[mode]) - median(accs["uncached"])) * 100
        print(verdict(f"{mode} accuracy gap (points)", gap, 1.0, higher_is_better=False))


if __name__ == "__main__":
    main()
