"""Shared fixtures: compose the real Hydra config and fit tiny models in-process."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict

from ftbench.train import CONFIG_DIR, fit

os.environ.setdefault("WANDB_MODE", "offline")

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


def make_cfg(*overrides: str, run_dir: Path | None = None) -> DictConfig:
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=list(overrides))
    if run_dir is not None:
        with open_dict(cfg):
            cfg.logger.save_dir = str(run_dir)
    return cfg


@pytest.fixture
def run_fit(tmp_path):
    """Fit with the given overrides in ``tmp_path``; returns (result, run_dir)."""

    def _run(*overrides: str, fast: bool = True):
        cfg = make_cfg(*(FAST if fast else []), *overrides, run_dir=tmp_path)
        return fit(cfg, tmp_path), tmp_path

    return _run


@pytest.fixture
def pretrained(tmp_path_factory):
    """A 'pretrained' test_efficientnet saved to a file, so a run starts from known weights.

    Returns the file and the model's layer groups.
    """
    import torch
    from safetensors.torch import save_file

    from ftbench.backbone import create_backbone, layer_groups

    torch.manual_seed(123)
    model = create_backbone("test_efficientnet", num_classes=10, weights="none")
    path = tmp_path_factory.mktemp("weights") / "pretrained.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path)
    return path, layer_groups(model)
