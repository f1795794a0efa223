"""The same seed gives the same run, bit for bit, on the embedded default (real Lite0 weights)."""

from __future__ import annotations

import pytest

from ftbench.train import fit
from tests.helpers import make_cfg

SHORT = ["trainer.max_epochs=2", "+trainer.limit_train_batches=3", "+trainer.limit_val_batches=1",
         "+trainer.limit_test_batches=1", "trainer.enable_progress_bar=false",
         "strategy=lp_ft", "strategy.probe_epochs=1"]


@pytest.mark.slow  # over a few seconds: make test runs it, make test-fast leaves it out
def test_same_seed_same_metrics_another_seed_another_run(tmp_path):
    a, b, c = (fit(make_cfg(*SHORT, f"seed={seed}", run_dir=tmp_path / d), tmp_path / d)
               for d, seed in (("a", 7), ("b", 7), ("c", 8)))
    assert a["metrics"] == b["metrics"]
    assert [h["train_loss"] for h in a["history"]] == [h["train_loss"] for h in b["history"]]
    assert c["history"][0]["train_loss"] != a["history"][0]["train_loss"]


def test_a_deterministic_trainer_keeps_deterministic_kernels_without_filling_new_memory(tmp_path):
    import torch

    from ftbench.finetune.trainer import build_trainer

    build_trainer(make_cfg("trainer.deterministic=true", run_dir=tmp_path), logger=False)
    # the promise (same seed, same run) rests on the kernels; filling every new tensor with
    # NaN costs a tenth of a CPU step and buys it nothing
    assert torch.are_deterministic_algorithms_enabled()
    assert not torch.utils.deterministic.fill_uninitialized_memory


def test_a_result_records_the_versions_and_the_commit_it_was_made_with():
    import platform
    import subprocess
    from pathlib import Path

    import torch

    from ftbench.run.result import build_result

    versions = build_result(None, status="pruned").versions  # a completed one needs its accuracy
    assert versions.python == platform.python_version() and versions.torch == torch.__version__
    checkout = Path(__file__).resolve().parents[2]
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=checkout)
    assert versions.git_commit == (head.stdout.strip() if (checkout / ".git").exists() else None)
