"""Fixtures: fit tiny models in-process, and a known 'pretrained' starting point."""

from __future__ import annotations

import pytest

from ftbench.train import fit
from tests.helpers import FAST, make_cfg


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
