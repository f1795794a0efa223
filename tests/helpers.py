"""Shared by the tests: the real Hydra config, tiny runs, CLI calls, images."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from lightning import Callback
from omegaconf import DictConfig, open_dict
from PIL import Image

from ftbench.config import compose_config, register_resolvers
from ftbench.run.atomic import write_json
from ftbench.run.predictions import Predictions, write_predictions

os.environ.setdefault("WANDB_MODE", "offline")
register_resolvers()

# A tiny timm model and a few batches: a whole fit takes seconds on a laptop CPU.
FAST = [
    "model.name=test_efficientnet",
    "model.weights=none",
    "dataset.image_size=32",
    "trainer.max_epochs=2",
    "+trainer.limit_train_batches=3",
    "+trainer.limit_val_batches=2",
    "+trainer.limit_test_batches=2",
    "trainer.enable_progress_bar=false",
]
# timm's tiny test models, one of each family the layer groups know
TINY_MODELS = ["test_resnet", "test_efficientnet", "test_convnext", "test_vit"]
# Dropout makes the run draw random numbers every step: a resume that lost the random state
# would train on other masks and end elsewhere.
SCHEDULE = [*FAST, "trainer.max_epochs=3", "model.drop_rate=0.2"]


class Crash(Exception):
    pass


class CrashAtEpoch(Callback):
    """Dies at the start of ``epoch``, after the previous epoch's checkpoint was written."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == self.epoch:
            raise Crash


def contents(run_dir: Path) -> dict[str, bytes]:
    """Every file of a run folder, but the log of attempts and the lock a run takes."""
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(run_dir.rglob("*"))
            if p.is_file() and p.name not in ("train.log", ".ftbench.lock")}


def make_cfg(*overrides: str, run_dir: Path | None = None) -> DictConfig:
    """The composed config, as ``python -m ftbench.train OVERRIDES`` would see it."""
    cfg = compose_config(*overrides)
    if run_dir is not None:
        with open_dict(cfg):
            cfg.logger.save_dir = str(run_dir)
    return cfg


def train_cli(*args: str, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """``python -m ftbench.train ARGS`` in a fresh process."""
    return subprocess.run([sys.executable, "-m", "ftbench.train", *args], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def save_image(path: Path, seed: int = 0, size: tuple[int, int] = (16, 16)) -> Path:
    """A random RGB image (a different one for every seed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (*size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def image_folder(root: Path, classes: dict[str, int] | tuple[str, ...] = ("cat", "dog", "emu"),
                 per_class: int = 10, size: tuple[int, int] = (16, 16)) -> Path:
    """``root/<class>/<i>.png``: ``classes`` maps names to counts, or lists names of ``per_class``."""
    counts = classes if isinstance(classes, dict) else {c: per_class for c in classes}
    for c, (name, count) in enumerate(counts.items()):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            save_image(root / name / f"{i}.png", seed=100 * c + i, size=size)
    return root


def checked_fit(cfg: DictConfig, run_dir: Path, **kwargs) -> dict:
    """``fit`` after the one check a run's preparation makes (``ftbench.train.prepare``)."""
    from ftbench.config import validate_config
    from ftbench.train import fit

    validate_config(cfg)
    return fit(cfg, run_dir, **kwargs)


def fake_run(template: dict, strategy: str, seed: int, test_acc: float, flops: float, **config) -> dict:
    """The template with another strategy, seed and outcome: report input, not a measurement."""
    run = copy.deepcopy(template)
    run.update(strategy=strategy, seed=seed)
    run["metrics"]["test_acc"] = test_acc
    run["cost"]["train_flops"] = flops
    run["config"]["strategy"]["name"] = strategy
    run["config"]["seed"] = seed
    for dotted, value in config.items():
        section, key = dotted.split("__")
        run["config"][section][key] = value
    return run


def write_runs(root: Path, runs: list[dict], examples: int = 200) -> None:
    """Each run's record, and for a tested run predictions with its accuracy: the first
    ``test_acc`` share of a seeded order of the examples right, the rest wrong."""
    for i, run in enumerate(runs):
        folder = root / f"{i}_{run['strategy']}_seed{run['seed']}"
        acc = run.get("metrics", {}).get("test_acc")
        if isinstance(acc, float) and 0 <= acc <= 1:
            rng = np.random.default_rng([i, int(run["seed"])])
            label = np.arange(examples) % 10
            right = np.zeros(examples, bool)
            right[rng.permutation(examples)[:round(acc * examples)]] = True
            sets = {"test": Predictions(np.arange(examples), label, np.where(right, label, (label + 1) % 10),
                                        np.where(right, 0.9, 0.1).astype(np.float32))}
            write_predictions(folder / "predictions.npz", sets)
            run = {**run, "predictions": "predictions.npz"}
        write_json(folder / "result.json", run)
