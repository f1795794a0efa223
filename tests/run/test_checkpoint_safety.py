"""Weights and checkpoints are read without running code; a crafted pickle is refused."""

from __future__ import annotations

import pytest
import torch

from ftbench.models.backbone import create_backbone
from ftbench.run.failures import UserError
from tests.helpers import FAST, make_cfg
from tests.helpers import checked_fit as fit


class _Payload:
    def __reduce__(self):
        import os
        return (os.system, ("touch PWNED",))


@pytest.fixture
def evil_checkpoint(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil" / "last.ckpt"
    path.parent.mkdir()
    torch.save({"epoch": 0, "state_dict": {"model.conv_stem.weight": torch.zeros(1)},
                "callbacks": {"x": _Payload()}}, path)
    return path


def test_a_malicious_checkpoint_passed_as_weights_is_refused_and_never_runs(tmp_path, evil_checkpoint):
    cfg = make_cfg(*FAST, f"model.weights={evil_checkpoint}", run_dir=tmp_path)
    with pytest.raises(UserError, match="refused, the file holds objects other than tensors"):
        fit(cfg, tmp_path)
    assert not (tmp_path / "PWNED").exists()
    assert not (tmp_path / "result.json").exists()


def test_a_malicious_resume_checkpoint_is_refused_and_never_runs(tmp_path, evil_checkpoint):
    cfg = make_cfg(*FAST, run_dir=tmp_path)
    with pytest.raises(UserError, match="refused, the checkpoint holds objects other than tensors"):
        fit(cfg, tmp_path, ckpt_path=evil_checkpoint)
    assert not (tmp_path / "PWNED").exists()


def test_a_checkpoint_of_a_run_is_usable_as_weights(run_fit, tmp_path):
    first, run_dir = run_fit("strategy=full", "trainer.max_epochs=1")
    saved = torch.load(run_dir / "last.ckpt", weights_only=True)  # no code needed to read it
    model = create_backbone("test_efficientnet", 10, weights=str(run_dir / "last.ckpt"))
    assert torch.equal(model.conv_stem.weight, saved["state_dict"]["model.conv_stem.weight"])


def test_a_checkpoint_without_its_untrained_groups_is_refused_as_weights(run_fit, tmp_path):
    run_fit("strategy=linear_probe", "trainer.max_epochs=1")
    with pytest.raises(UserError, match="leaves out the groups that had not trained yet .*"
                                        "allowed: the run's model.safetensors"):
        create_backbone("test_efficientnet", 10, weights=str(tmp_path / "last.ckpt"))
