"""Shared by the tests: the real Hydra config, tiny runs, CLI calls, images."""

from __future__ import annotations

import copy
import json
import math
import os
import signal
import struct
import subprocess
import sys
import time
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


def synthetic(rng: np.random.Generator, accuracies: dict[str, float], seeds: int = 3, examples: int = 1000,
              seed_sd: float = 0.01, shared: float = 0.8):
    """Per-example correctness with known truth. Each run's accuracy is its strategy's true
    accuracy plus seed noise (``seed_sd``); each example has a difficulty shared by every run
    (``shared``: its share of the per-example variance), so strategies fail on much the same
    examples, as fine-tuned copies of one backbone do. Run r gets example i right when
    Φ⁻¹(accuracy_r) + √shared·difficulty_i + √(1 − shared)·noise_ri > 0, whose chance over the
    examples is exactly accuracy_r."""
    from scipy import stats

    from ftbench.stats.bootstrap import Evidence

    names = list(accuracies)
    per_run = np.repeat([accuracies[s] for s in names], seeds)
    per_run = per_run + seed_sd * rng.standard_normal(len(per_run))
    threshold = stats.norm.ppf(np.clip(per_run, 0.01, 0.99))[:, None]
    difficulty = rng.standard_normal(examples)
    noise = rng.standard_normal((len(names) * seeds, examples))
    correct = threshold + math.sqrt(shared) * difficulty + math.sqrt(1 - shared) * noise > 0
    return Evidence(np.arange(examples), {s: {k: correct[i * seeds + k] for k in range(seeds)}
                                          for i, s in enumerate(names)})


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def fit_schedule(run_dir, *overrides, **kwargs):
    from ftbench.train import fit

    return fit(make_cfg(*SCHEDULE, *overrides, run_dir=run_dir), run_dir, **kwargs)


def wandb_records(path: Path):
    """The records of a ``.wandb`` transaction log (a LevelDB-style log of protobufs)."""
    data, block = path.read_bytes(), 32768
    assert data[:4] == b":W&B"
    pos, pending = 7, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        length, kind = struct.unpack("<HB", data[pos + 4:pos + 7])
        if pos + 7 + length > len(data):  # a chunk still being written
            return
        pending += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL or LAST chunk: a whole record
            from wandb.proto import wandb_internal_pb2

            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def complete_records(path: Path, wait_seconds: float = 60.0) -> list:
    """The log's records once its ``exit`` record is in: W&B's service may finish writing the
    file a moment after ``run.finish()`` has returned."""
    deadline = time.monotonic() + wait_seconds
    while True:
        records = list(wandb_records(path))
        if any(r.WhichOneof("record_type") == "exit" for r in records) or time.monotonic() > deadline:
            return records
        time.sleep(0.2)


def logged_run(run_dir: Path) -> dict:
    """History keys, summary and config of the single offline W&B run under ``run_dir``."""
    (log_file,) = run_dir.glob("wandb/offline-run-*/run-*.wandb")
    history, summary, config, group = set(), {}, {}, None
    for record in complete_records(log_file):
        kind = record.WhichOneof("record_type")
        if kind == "history":
            history |= {item.key or "/".join(item.nested_key) for item in record.history.item}
        elif kind == "summary":
            summary |= {item.key or "/".join(item.nested_key): json.loads(item.value_json)
                        for item in record.summary.update}
        if kind == "run":
            group = record.run.run_group
        if kind in ("config", "run"):
            items = record.config.update if kind == "config" else record.run.config.update
            config |= {item.key: json.loads(item.value_json) for item in items}
    return {"history": history, "summary": summary, "config": config, "group": group}


def table_rows(run_dir: Path, key: str) -> list[dict]:
    """The rows of a ``wandb.Table`` logged under ``key``, from the run's media files."""
    (path,) = run_dir.glob(f"wandb/offline-run-*/files/media/table/{key}_*.table.json")
    table = json.loads(path.read_text())
    return [dict(zip(table["columns"], row)) for row in table["data"]]


class SigtermAtEpochEnd(Callback):
    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.current_epoch == 0:
            os.kill(os.getpid(), signal.SIGTERM)


TUNE_TINY = [o for o in FAST if not o.startswith("trainer.enable_progress_bar")]


def tuned_command(sweep: Path, *overrides: str, base: list[str] = TUNE_TINY) -> list[str]:
    return [sys.executable, "-m", "ftbench.train", "-m", "experiment=tuned", f"hydra.sweep.dir={sweep}",
            *base, "tune.heartbeat_seconds=1", *overrides]


def study(sweep: Path, name: str):
    import optuna

    return optuna.load_study(study_name=name, storage=f"sqlite:///{sweep}/optuna.db")


def comparison(tmp_path, trials: int):
    """The protocol over an SQLite storage, without Hydra: no job may be launched."""
    import optuna
    from omegaconf import OmegaConf

    from ftbench.tune.protocol import TunedComparison
    from ftbench.tune.storage import open_storage

    class NoLauncher:
        def launch(self, jobs, initial_job_idx):
            raise AssertionError(f"nothing should run, yet {len(jobs)} jobs were launched")

    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}, "tune": {
        "strategies": ["linear_probe"], "trials": trials, "seeds": 1, "startup_trials": 1, "sampler_seed": 0,
        "search_seed": 0, "pruner": None, "batch": 1, "storage": None, "heartbeat_seconds": 1}})
    tc = TunedComparison(config, NoLauncher(), compose=None, arguments=[])
    tc.storage = open_storage(f"sqlite:///{tmp_path}/optuna.db", 1)
    tc.spaces = {"linear_probe": {"lr": optuna.distributions.FloatDistribution(1e-3, 1.0, log=True)}}
    tc.defaults = {"linear_probe": {"lr": 0.1}}
    return tc


def tuned_sweep(template: dict, tuned_accs: dict[str, list[float]]) -> list[dict]:
    """A tuned comparison's records: two search trials and the final runs of each strategy."""
    runs = []
    for strategy, accs in tuned_accs.items():
        for trial in range(2):
            run = fake_run(template, strategy, 0, None, 1e9)
            run["config"]["tune"] = {"phase": "search", "job": f"trial{trial}"}
            run["config"]["run"] = {"test": False}
            run["metrics"]["val_acc"] = 0.8 + trial / 100
            runs.append(run)
        for seed, acc in enumerate(accs, start=1):
            for phase in ("default", "tuned"):
                run = fake_run(template, strategy, seed, acc, 1e9)
                run["config"]["tune"] = {"phase": phase, "job": f"seed{seed}"}
                runs.append(run)
    return runs
