"""Shifted test sets: fixed corruptions of the test split, the user's own folder, their results."""

from __future__ import annotations

import statistics

import pytest
import torch
from torchvision.transforms import v2

from ftbench.config import eval_shifts
from ftbench.data import FineTuneDataModule
from ftbench.data.datamodule import materialize
from ftbench.data.shifts import CORRUPTIONS, SEVERITIES, Shift, ShiftedImages
from ftbench.models.backbone import create_backbone
from ftbench.run.failures import UserError
from ftbench.run.hashing import StreamDigest
from ftbench.train import fit
from tests.helpers import FAST, image_folder, make_cfg, train_cli

IMAGES = 48  # digits test images the corruption tests look at


@pytest.fixture(scope="module")
def digits():
    """The embedded default's data module, sized for a tiny model like the runs of the tests."""
    cfg = make_cfg(*FAST)
    dm = FineTuneDataModule(cfg.dataset, batch_size=16)
    dm.resolve_for(create_backbone(cfg.model.name, dm.num_classes, weights="none"))
    dm.setup()
    return dm


def shifted(dm: FineTuneDataModule, shift: Shift) -> torch.Tensor:
    return materialize(dm.shifted_set(shift, IMAGES)).tensors[0]


def test_eval_shifts_are_read_as_kind_and_severity_in_the_order_given():
    assert eval_shifts(make_cfg("eval.shifts=[jpeg:5,jpeg:1]")) == [Shift("jpeg", 5), Shift("jpeg", 1)]
    assert eval_shifts(make_cfg("eval.shifts=[]")) == []


def test_a_shifted_set_is_the_test_split_corrupted_in_pixel_space_before_normalisation(digits):
    clean = digits.datasets["test"].tensors[0][:IMAGES]
    labels = materialize(digits.shifted_set(Shift("rotate", 2), IMAGES)).tensors[1]
    assert torch.equal(labels, digits.datasets["test"].tensors[1][:IMAGES])
    # the same pipeline with the corruption taken out gives the test split, bit for bit
    unshifted = ShiftedImages(digits._test_pixels, Shift("jpeg", 1), 32, digits.normalise)
    unshifted.transform = v2.Identity()
    assert torch.equal(torch.stack([unshifted[i][0] for i in range(IMAGES)]), clean)


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_each_corruption_is_fixed_changes_the_images_and_more_so_with_severity(digits, name):
    clean = digits.datasets["test"].tensors[0][:IMAGES]
    change = []
    for severity in SEVERITIES:
        torch.manual_seed(severity)  # the run's random state does not enter the corruption ...
        state = torch.get_rng_state()
        first = shifted(digits, Shift(name, severity))
        assert torch.equal(torch.get_rng_state(), state)  # ... nor does the corruption move it
        torch.manual_seed(1000 + severity)
        assert torch.equal(shifted(digits, Shift(name, severity)), first)
        change.append(float((first - clean).abs().mean()))
    assert change[0] > 0.01, change
    assert change == sorted(change) and len(set(change)) == len(change), change


def test_loader_workers_read_the_same_shifted_set(digits):
    dataset = digits.shifted_set(Shift("gaussian_noise", 5), IMAGES)  # a random draw per image
    expected = materialize(dataset).tensors[0]
    digits.num_workers = 2
    try:
        read = torch.cat([x for x, _ in digits.eval_loader(dataset)])
    finally:
        digits.num_workers = 0
    assert torch.equal(read, expected)


def test_the_content_hash_does_not_depend_on_the_batching():
    images, labels = torch.randn(10, 3, 4, 4), torch.arange(10)
    whole, batched = StreamDigest(), StreamDigest()
    whole.update(images, labels)
    for start in range(0, 10, 3):
        batched.update(images[start:start + 3], labels[start:start + 3])
    assert whole.hexdigest() == batched.hexdigest()
    changed = StreamDigest()
    changed.update(images, labels.flip(0))
    assert changed.hexdigest() != whole.hexdigest()


@pytest.mark.slow  # over a few seconds: make test runs it, make test-fast leaves it out
def test_runs_of_other_seeds_and_strategies_are_tested_on_the_same_shifted_images(run_fit, tmp_path):
    probe, _ = run_fit("strategy=linear_probe", "seed=0")  # features through the cache
    full, _ = run_fit("strategy=full", "seed=1")  # images through the whole model
    keys = [s.key for s in eval_shifts(make_cfg())]
    for result in (probe, full):
        shift = result["metrics"]["shift"]
        assert list(shift) == [*keys, "mean"]
        assert shift["mean"] == pytest.approx(statistics.fmean(shift[k] for k in keys))
        assert all(0 <= shift[k] <= 1 for k in keys)
    assert list(probe["data"]["shift_hashes"]) == keys
    assert probe["data"]["shift_hashes"] == full["data"]["shift_hashes"]
    # as many images as the in-distribution test (limit_test_batches=2, 64 a batch), each
    # counted once through the whole model, apart from training and from the test's FLOPs
    cost = full["cost"]
    per_image = cost["eval_flops_per_image"]["3x32x32"]
    assert cost["shift_eval_images"] == len(keys) * 2 * 64
    assert cost["shift_eval_flops"] == pytest.approx(per_image * cost["shift_eval_images"])
    assert cost["eval_flops"] == pytest.approx(per_image * (2 * 2 * 64 + 2 * 64))  # val, test only
    assert probe["cost"]["shift_eval_flops"] == pytest.approx(cost["shift_eval_flops"], rel=0.01)


@pytest.mark.slow
def test_a_default_run_on_the_embedded_default_is_tested_under_five_shifts(run_fit):
    result, _ = run_fit("strategy=linear_probe", "trainer.max_epochs=1", "+trainer.limit_train_batches=2",
                        "+trainer.limit_val_batches=1", "trainer.enable_progress_bar=false", fast=False)
    assert result["model"] == "tf_efficientnet_lite0" and result["dataset"] == "digits"
    shift = result["metrics"]["shift"]
    assert {key.split(":")[0] for key in shift if key != "mean"} == set(CORRUPTIONS)
    assert len(shift) >= 6 and shift["mean"] == pytest.approx(
        statistics.fmean(v for k, v in shift.items() if k != "mean"))
    assert result["cost"]["shift_eval_images"] == (len(shift) - 1) * result["data"]["test_size"]


def test_eval_shifts_empty_tests_nothing_under_shift(run_fit):
    result, _ = run_fit("strategy=linear_probe", "eval.shifts=[]", "trainer.max_epochs=1")
    assert result["metrics"]["shift"] is None and result["data"]["shift_hashes"] == {}
    assert result["cost"]["shift_eval_flops"] == 0


def test_an_ood_folder_of_some_training_classes_is_tested_like_a_corruption(run_fit, tmp_path):
    ood = image_folder(tmp_path / "camera2", ("3", "7"), per_class=5)
    dm = FineTuneDataModule(make_cfg(*FAST, f"dataset.ood_root={ood}").dataset, batch_size=16)
    assert dm.num_classes == 10
    assert sorted(set(dm.ood.targets)) == [3, 7]  # the training data's labels, not 0 and 1
    result, _ = run_fit(f"dataset.ood_root={ood}", "eval.shifts=[contrast:5]", "strategy=linear_probe")
    shift = result["metrics"]["shift"]
    assert list(shift) == ["contrast:5", "ood_root", "mean"]
    assert shift["mean"] == shift["contrast:5"]  # the folder is not in the mean
    assert result["cost"]["shift_eval_images"] == 2 * 64 + 10
    assert set(result["data"]["shift_hashes"]) == {"contrast:5", "ood_root"}


def test_an_ood_folder_with_a_class_the_training_data_lacks_is_refused_before_training(tmp_path):
    ood = image_folder(tmp_path / "camera2", ("3", "cat"), per_class=2)
    cfg = make_cfg(*FAST, f"dataset.ood_root={ood}", run_dir=tmp_path)
    with pytest.raises(UserError) as err:
        fit(cfg, tmp_path)
    assert "class folder(s) cat not among the training classes; allowed: 0, 1, 2" in str(err.value)
    assert not (tmp_path / "last.ckpt").exists() and not (tmp_path / "result.json").exists()


@pytest.mark.slow
def test_on_the_command_line_a_foreign_ood_class_is_one_line_and_exit_2(tmp_path):
    ood = image_folder(tmp_path / "camera2", ("3", "cat"), per_class=2)
    run_dir = tmp_path / "run"
    proc = train_cli(*FAST, f"hydra.run.dir={run_dir}", f"dataset.ood_root={ood}",
                     env={"HYDRA_FULL_ERROR": "0"})
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ftbench: error: dataset.ood_root="), proc.stderr
    assert "cat not among the training classes" in lines[0]
    assert not (run_dir / "result.json").exists() and not (run_dir / "last.ckpt").exists()
