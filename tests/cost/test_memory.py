"""``cost.train_memory_mb``: the memory training held beyond the weights, per strategy."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ftbench.cost.memory import MB, SavedForBackward, TrainingMemory, resident_storages, storage_bytes
from ftbench.train import fit
from tests.helpers import FAST, make_cfg


class Runs(dict):
    """One epoch of a strategy on test_efficientnet (3 batches of 64 at 32 px), fitted when a
    test first asks for it: the quick tests need two of the three."""

    def __init__(self, tmp_path_factory) -> None:
        super().__init__()
        self.tmp_path_factory = tmp_path_factory

    def __missing__(self, strategy: str) -> dict:
        run_dir = self.tmp_path_factory.mktemp(strategy)
        cfg = make_cfg(*FAST, f"strategy={strategy}", "trainer.max_epochs=1", run_dir=run_dir)
        self[strategy] = fit(cfg, run_dir)
        return self[strategy]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Runs:
    return Runs(tmp_path_factory)


@pytest.mark.slow  # over a few seconds: make test runs it, make test-fast leaves it out
def test_a_probe_holds_under_half_of_a_full_fine_tunes_memory_and_partial_lies_between(runs):
    memory = {name: runs[name]["cost"]["train_memory_mb"] for name in ("linear_probe", "partial", "full")}
    assert 0 < memory["linear_probe"] < memory["full"] / 2
    assert memory["linear_probe"] < memory["partial"] < memory["full"]


def test_the_account_is_the_gradients_optimizer_state_activations_and_features_held(runs):
    full = runs["full"]["cost"]
    assert full["train_memory"]["method"] == "tensor_accounting"
    (phase,) = full["train_memory"]["phases"]
    assert phase["trainable_groups"] == [g["name"] for g in runs["full"]["groups"]]
    # a float32 gradient per trained weight; AdamW keeps two moments (and a step count) per weight
    assert phase["grads_mb"] * MB == 4 * full["trainable_params"]
    assert phase["optimizer_mb"] == pytest.approx(2 * phase["grads_mb"], rel=1e-3)
    assert phase["features_mb"] == 0 and phase["saved_mb"] > 0
    assert full["train_memory_mb"] == pytest.approx(
        phase["saved_mb"] + phase["grads_mb"] + phase["optimizer_mb"])

    probe = runs["linear_probe"]
    (phase,) = probe["cost"]["train_memory"]["phases"]
    assert probe["cost"]["feature_cache"]["used"] and len(phase["input"]) == 1  # on features
    # every split's features (float32) and labels (int64), held while the head trains on them
    data, width = probe["data"], phase["input"][0]
    images = data["train_size"] + data["val_size"] + data["test_size"]
    assert phase["features_mb"] * MB == images * (4 * width + 8)
    assert phase["grads_mb"] * MB == 4 * probe["cost"]["trainable_params"]


def test_saved_tensors_are_counted_by_storage_without_the_weights():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    x = torch.randn(4, 8)
    with SavedForBackward(resident_storages(model)) as saved:
        loss = model(x).sum()
    loss.backward()
    # by hand: the input of each linear layer (for its weight gradient), the ReLU's output
    # (which is also the second layer's input: one storage); the weights are left out
    assert saved.bytes == 4 * (4 * 8 + 4 * 16)
    t = torch.zeros(10, 10)
    assert storage_bytes([t, t[2:], t.view(-1), t.t()]) == t.nbytes
    # tensors without storage of their own hold no memory of the account
    assert storage_bytes([torch.empty(4, device="meta"), t.to_sparse(), t]) == t.nbytes


def test_on_cuda_the_figure_is_the_allocators_peak_above_the_start_and_survives_a_resume(monkeypatch):
    allocated, peak = [100 * MB], [100 * MB]
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: allocated[0])
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: peak[0])
    memory = TrainingMemory()
    memory.fit_starts(torch.device("cuda", 0))
    peak[0] = 350 * MB
    memory.training_ends()
    assert memory.summary() == {"train_memory_mb": 250.0, "method": "cuda_allocator"}

    resumed = TrainingMemory()  # a resumed run that peaks lower after the restart
    resumed.load_state_dict(memory.state_dict())
    allocated[0] = peak[0] = 200 * MB
    resumed.fit_starts(torch.device("cuda", 0))
    peak[0] = 300 * MB
    resumed.training_ends()
    assert resumed.summary()["train_memory_mb"] == 250.0


def test_the_figure_is_the_fullest_phase_with_features_counted_only_where_steps_train_on_them():
    """lp_ft-like: a probe on cached features, then every group on images (features dropped)."""
    memory = TrainingMemory()
    memory.fit_starts(torch.device("cpu"))
    memory.phases = [
        {"trainable": [False, True], "input": [1280], "features": True, "saved": 1 * MB, "grads": 1 * MB,
         "optimizer": 2 * MB},
        {"trainable": [True, True], "input": [3, 32, 32], "features": False, "saved": 20 * MB,
         "grads": 3 * MB,
         "optimizer": 6 * MB},
    ]
    probe, everything = memory.summary(feature_bytes=100 * MB)["phases"]
    assert (probe["features_mb"], everything["features_mb"]) == (100, 0)
    assert memory.summary(feature_bytes=100 * MB)["train_memory_mb"] == 104
    assert memory.summary(feature_bytes=0)["train_memory_mb"] == 29


def test_a_peak_that_cannot_be_reset_is_said_with_the_reason(monkeypatch, tmp_path, caplog):
    import logging

    from ftbench.cost import memory

    monkeypatch.setattr(memory, "_PROC_STATUS", tmp_path / "status")
    (tmp_path / "status").write_text("VmHWM:\t1024 kB\n")
    monkeypatch.setattr(memory, "_CLEAR_REFS", tmp_path / "no" / "clear_refs")  # not writable
    caplog.set_level(logging.WARNING, logger="ftbench")
    memory.reset_peak_memory(torch.device("cpu"))
    (warning,) = caplog.records
    assert "cannot reset this process's peak resident set size" in warning.getMessage()
    assert "No such file or directory" in warning.getMessage()
    caplog.clear()
    monkeypatch.setattr(memory, "_CLEAR_REFS", tmp_path / "clear_refs")  # writable: no warning
    memory.reset_peak_memory(torch.device("cpu"))
    assert not caplog.records and (tmp_path / "clear_refs").read_text() == "5"
