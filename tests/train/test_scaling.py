"""Scaling out: a multirun through submitit, a two-process DDP fit, the GPU trainer configs."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from ftbench.models.weights import read_state_dict
from tests.helpers import FAST, logged_run, make_cfg

# FAST with one epoch of two batches: each job below is dominated by process start-up.
SHORT = [o for o in FAST if not o.startswith(("trainer.max_epochs", "+trainer.limit_train"))]
SHORT += ["trainer.max_epochs=1", "+trainer.limit_train_batches=2"]


def train(*overrides: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "ftbench.train", *overrides],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_two_job_multirun_through_submitit_local_shares_one_wandb_group(tmp_path):
    train("-m", "hydra/launcher=submitit_local", f"hydra.sweep.dir={tmp_path}",
          "hydra.sweep.subdir=job${hydra.job.num}", "seed=3,4", "logger=wandb", "logger.mode=offline",
          *SHORT)

    results = {d: json.loads((tmp_path / d / "result.json").read_text()) for d in ("job0", "job1")}
    assert [r["seed"] for r in results.values()] == [3, 4]
    assert all(r["status"] == "completed" and len(r["history"]) == 1 for r in results.values())
    assert (tmp_path / ".submitit").is_dir()  # the jobs really went through submitit
    assert {logged_run(tmp_path / d)["group"] for d in ("job0", "job1")} == {str(tmp_path)}


@pytest.mark.slow
def test_two_process_cpu_ddp_writes_one_result_with_costs_over_both_ranks(tmp_path):
    proc = train(f"hydra.run.dir={tmp_path}", "trainer=ddp", "trainer.accelerator=cpu",
                 "trainer.devices=2", "trainer.precision=32-true", "data.pin_memory=false", *FAST,
                 "dataset=digits")  # 1,257 training images: 3 whole batches of 64 a rank

    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in proc.stdout + proc.stderr  # a second process ran
    assert [p.relative_to(tmp_path) for p in tmp_path.rglob("result.json")] == [Path("result.json")]
    result = json.loads((tmp_path / "result.json").read_text())
    epochs, batches, batch_size = 2, 3, 64
    assert result["cost"]["devices"] == 2
    assert result["cost"]["train_images"] == 2 * epochs * batches * batch_size
    assert result["cost"]["images_per_second"] > 0
    # FLOPs add up over ranks; the per-epoch figures are rank 0's
    assert result["cost"]["train_flops"] == pytest.approx(2 * sum(result["cost"]["epoch_train_flops"]))
    # memory is per process: the fullest rank's (both ranks hold the same), not a sum
    phases = result["cost"]["train_memory"]["phases"]
    assert result["cost"]["train_memory_mb"] == pytest.approx(max(p["total_mb"] for p in phases))
    assert len(result["history"]) == epochs and 0 <= result["metrics"]["test_acc"] <= 1
    # rank zero alone tests the shifted sets (the whole first two batches' worth of images)
    assert len(result["data"]["shift_hashes"]) == 5 and result["metrics"]["shift"]["mean"] is not None
    assert result["cost"]["shift_eval_images"] == 5 * 2 * batch_size
    weights = read_state_dict(tmp_path / "model.safetensors")
    assert set(weights) >= {"conv_stem.weight", "classifier.weight"}


def test_gpu_and_ddp_trainers_compose_with_the_speed_settings():
    gpu = make_cfg("trainer=gpu", "model.compile=true")
    assert gpu.trainer.accelerator == "gpu" and gpu.trainer.precision == "bf16-mixed"
    assert gpu.data.pin_memory and gpu.data.num_workers > 0
    assert gpu.model.channels_last and gpu.model.compile
    assert gpu.model.name == "tf_efficientnet_lite0"  # the model group is untouched
    ddp = make_cfg("trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2")
    assert ddp.trainer.strategy == "ddp" and ddp.trainer.precision == "bf16-mixed"
    assert (ddp.trainer.devices, ddp.trainer.num_nodes) == (4, 2)


@pytest.mark.slow  # over a few seconds: make test runs it, make test-fast leaves it out
def test_the_gpu_trainer_settings_run_end_to_end_in_bf16_on_the_cpu(run_fit):
    """trainer=gpu with only the accelerator swapped: bf16 autocast, channels_last, the feature
    cache of lp_ft's probe epoch and the unfreezing after it, as a GPU run would take them."""
    result, _ = run_fit("trainer=gpu", "trainer.accelerator=cpu", "data.pin_memory=false",
                        "strategy=lp_ft", "+trainer.limit_train_batches=3",
                        "+trainer.limit_val_batches=2", "+trainer.limit_test_batches=2",
                        "trainer.enable_progress_bar=false", "model.name=test_efficientnet",
                        "model.weights=none", "dataset.image_size=32", "trainer.max_epochs=2",
                        fast=False)
    assert result["status"] == "completed"
    assert result["config"]["trainer"]["precision"] == "bf16-mixed"
    assert result["cost"]["feature_cache"]["used"]
    assert [len(h["trainable_groups"]) for h in result["history"]] == [1, len(result["groups"])]
    assert all(math.isfinite(h["train_loss"]) and math.isfinite(h["val_loss"]) for h in result["history"])
    assert 0 <= result["metrics"]["test_acc"] <= 1 and result["cost"]["train_flops"] > 0
    assert 0 <= result["metrics"]["shift"]["mean"] <= 1  # the shifted sets, under bf16 autocast
