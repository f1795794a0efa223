"""The command line as a user runs it, on the embedded default (offline, real weights)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ftbench.weights import packaged_state_dict, read_state_dict

SHORT = ["trainer.max_epochs=2", "+trainer.limit_train_batches=3", "+trainer.limit_val_batches=1",
         "+trainer.limit_test_batches=1", "trainer.enable_progress_bar=false"]


def train(run_dir: Path, *overrides: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "ftbench.train", f"hydra.run.dir={run_dir}", *overrides]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def pretrained_backbone():
    import timm

    model = timm.create_model("tf_efficientnet_lite0")
    return {k: v for k, v in packaged_state_dict("tf_efficientnet_lite0", model).items()
            if not k.startswith("classifier")}


def test_linear_probe_on_the_default_keeps_the_pretrained_backbone(tmp_path, pretrained_backbone):
    # uncached: on cached features the backbone would not run in training at all
    train(tmp_path, "strategy=linear_probe", "data.cache_features=false", *SHORT)
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["strategy"] == "linear_probe" and result["model"] == "tf_efficientnet_lite0"
    assert (tmp_path / "last.ckpt").is_file()
    weights = read_state_dict(tmp_path / "model.safetensors")
    for k, v in pretrained_backbone.items():
        assert torch.equal(weights[k], v), k


def test_partial_two_groups_moves_only_the_top_two(tmp_path, pretrained_backbone):
    train(tmp_path, "strategy=partial", "strategy.trainable_groups=2", *SHORT)
    result = json.loads((tmp_path / "result.json").read_text())
    weights = read_state_dict(tmp_path / "model.safetensors")
    names = [g["name"] for g in result["groups"]]
    top_two = names[-3:-1]
    assert result["history"][-1]["trainable_groups"] == [*top_two, "head"]
    moved = {k for k, v in pretrained_backbone.items() if not torch.equal(weights[k], v)}
    # EfficientNet groups: stages are blocks.<i>; the last stage also holds conv_head/bn2
    stage_of = {"stage6": "blocks.5.", "stage7": "blocks.6."}
    assert moved, "the top two groups should have trained"
    assert all(k.startswith(tuple(stage_of.values())) or k.startswith(("conv_head", "bn2"))
               for k in moved), sorted(moved)[:5]
    for prefix in stage_of.values():
        assert any(k.startswith(prefix) for k in moved)


def test_discriminative_lrs_differ_by_the_decay_between_neighbours(tmp_path):
    train(tmp_path, "strategy=discriminative", "strategy.lr_decay=2.6", *SHORT)
    history = json.loads((tmp_path / "result.json").read_text())["history"]
    assert len(history) == 2
    for epoch in history:
        lrs = epoch["lrs"]
        for lower, upper in zip(lrs, lrs[1:]):
            assert upper / lower == pytest.approx(2.6, rel=1e-9)


def test_same_seed_same_metrics(tmp_path):
    a = train(tmp_path / "a", "strategy=lp_ft", "strategy.probe_epochs=1", "seed=7", *SHORT)
    b = train(tmp_path / "b", "strategy=lp_ft", "strategy.probe_epochs=1", "seed=7", *SHORT)
    assert a.returncode == b.returncode == 0
    ra, rb = (json.loads((tmp_path / d / "result.json").read_text()) for d in "ab")
    assert ra["metrics"] == rb["metrics"]
    assert [h["train_loss"] for h in ra["history"]] == [h["train_loss"] for h in rb["history"]]
    c = train(tmp_path / "c", "strategy=lp_ft", "strategy.probe_epochs=1", "seed=8", *SHORT)
    rc = json.loads((tmp_path / "c" / "result.json").read_text())
    assert c.returncode == 0 and rc["history"][0]["train_loss"] != ra["history"][0]["train_loss"]


def test_bad_strategy_value_is_one_line_and_no_result(tmp_path):
    proc = train(tmp_path, "strategy=partial", "strategy.trainable_groups=42", *SHORT, check=False)
    assert proc.returncode != 0
    assert "strategy.trainable_groups=42" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "result.json").exists()
