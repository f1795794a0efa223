"""Epoch metrics: updated every step, logged once per epoch, equal to a hand computation."""

from __future__ import annotations

import pytest
import torch

from ftbench.data import FineTuneDataModule
from ftbench.finetune.epoch_metrics import BatchMean
from ftbench.models.backbone import create_backbone
from ftbench.models.weights import read_state_dict
from tests.helpers import FAST, make_cfg


def test_batch_mean_weights_each_batch_by_its_size():
    mean = BatchMean()
    mean.update(torch.tensor(1.0), 3)
    mean.update(torch.tensor(4.0), 1)
    assert mean.compute().item() == pytest.approx((3 * 1.0 + 4.0) / 4)
    mean.reset()
    mean.update(torch.tensor(2.0), 5)
    assert mean.compute().item() == pytest.approx(2.0)


def test_logged_test_metrics_match_an_evaluation_of_the_saved_weights(run_fit):
    result, run_dir = run_fit("strategy=full", "data.batch_size=16")
    cfg = make_cfg(*FAST, "strategy=full", "data.batch_size=16")
    dm = FineTuneDataModule(cfg.dataset, batch_size=16)
    model = create_backbone(cfg.model.name, dm.num_classes, weights="none")
    model.load_state_dict(read_state_dict(run_dir / "model.safetensors"))
    model.eval()
    dm.resolve_for(model)
    dm.setup("test")
    correct = total = 0
    loss_sum = 0.0
    with torch.no_grad():
        for i, (x, y) in enumerate(dm.test_dataloader()):
            if i == cfg.trainer.limit_test_batches:
                break
            logits = model(x)
            loss_sum += torch.nn.functional.cross_entropy(logits, y).item() * len(y)
            correct += (logits.argmax(1) == y).sum().item()
            total += len(y)
    assert total == 2 * 16
    assert result["metrics"]["test_acc"] == pytest.approx(correct / total)
    assert result["metrics"]["test_loss"] == pytest.approx(loss_sum / total, rel=1e-4)
    # the epoch history keeps its own per-epoch loss and the logged validation figures
    assert all(h["val_acc"] is not None and h["val_loss"] > 0 for h in result["history"])


def test_result_names_the_classes_with_per_class_accuracy_and_a_confusion_matrix(run_fit):
    result, _ = run_fit("strategy=full")
    classes = [str(i) for i in range(10)]
    assert result["data"]["classes"] == classes
    metrics = result["metrics"]
    matrix = torch.tensor(metrics["confusion_matrix"])
    assert matrix.shape == (10, 10) and int(matrix.sum()) == 2 * 64  # FAST: 2 test batches of 64
    # rows are the true classes: the diagonal over each row is that class's accuracy
    assert list(metrics["per_class_test_acc"]) == classes
    for i, name in enumerate(classes):
        support = int(matrix[i].sum())
        expected = None if support == 0 else float(matrix[i, i]) / support
        assert metrics["per_class_test_acc"][name] == pytest.approx(expected)
    assert metrics["test_acc"] == pytest.approx(float(matrix.trace()) / float(matrix.sum()))


def test_an_image_folder_run_records_its_own_class_names(run_fit, tmp_path):
    from tests.helpers import image_folder

    root = image_folder(tmp_path / "imgs", ("cat", "dog", "emu"), per_class=10)
    result, _ = run_fit("dataset=imagefolder", f"dataset.root={root}", "strategy=linear_probe",
                        "trainer.max_epochs=1", "data.batch_size=4")
    assert result["data"]["classes"] == ["cat", "dog", "emu"]
    assert set(result["metrics"]["per_class_test_acc"]) == {"cat", "dog", "emu"}
