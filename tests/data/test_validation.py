"""Bad input gets one clear line naming the value and what is allowed, before any heavy work."""

from __future__ import annotations

import pytest
import torch

from ftbench.models.backbone import create_backbone
from ftbench.run.failures import UserError
from tests.helpers import FAST, image_folder, make_cfg, save_image
from tests.helpers import checked_fit as fit


@pytest.mark.parametrize("overrides, message", [
    (["strategy.name=warmup"], "strategy='warmup' is not valid; allowed: linear_probe"),
    (["model.name=resnet_fifty"], "model.name='resnet_fifty' is not a timm model"),
    (["dataset.name=mnist"], "dataset='mnist' is not valid; allowed: digits"),
    (["model.weights=imagenet"], "model.weights='imagenet' is not valid; allowed: package"),
    (["strategy.lr=0"], "strategy.lr=0 is not valid; allowed: a number > 0"),
    (["strategy.lr=-0.1"], "strategy.lr=-0.1 is not valid"),
    (["strategy.lr=abc"], "strategy.lr='abc' is not valid"),
    (["strategy.lr=nan"], "strategy.lr=nan is not valid"),
    (["strategy.lr_decay=0.5"], "strategy.lr_decay=0.5 is not valid; allowed: a number >= 1"),
    (["strategy=partial", "strategy.trainable_groups=7"],
     "strategy.trainable_groups=7 is not valid; allowed: an integer 0..6"),
    (["strategy=partial", "strategy.trainable_groups=-1"], "strategy.trainable_groups=-1"),
    (["strategy=gradual", "strategy.unfreeze_every=0"],
     "strategy.unfreeze_every=0 is not valid; allowed: a number > 0"),
    (["strategy=gradual", "strategy.unfreeze_every=often"],
     "strategy.unfreeze_every='often' is not valid; allowed: auto, a number of epochs > 0"),
    (["strategy=lp_ft", "strategy.probe_epochs=2"],
     "strategy.probe_epochs=2 is not valid; allowed: an integer 1..1"),
    (["strategy=lp_ft", "trainer.max_epochs=1"], "strategy=lp_ft needs trainer.max_epochs >= 2"),
    (["strategy=surgical", "strategy.groups=[stage9]"], "strategy.groups: 'stage9' is not a backbone "
     "group of this model; allowed: a list of stem, stage1, stage2, stage3, stage4, stage5 or "
     "their indices 0..5"),
    (["strategy=surgical", "strategy.groups=stage9"], "strategy.groups: 'stage9' is not a backbone group"),
    (["strategy=lora", "strategy.rank=0"], "strategy.rank=0 is not valid; allowed: an integer >= 1"),
    (["strategy=lora", "strategy.target_modules=[nope]"], "strategy.target_modules: 'nope' matches no"),
    (["dataset.train_fraction=0"], "dataset.train_fraction=0 is not valid; allowed: a number > 0 and <= 1"),
    (["dataset.train_fraction=1.5"], "dataset.train_fraction=1.5 is not valid"),
    (["data.batch_size=0"], "data.batch_size=0 is not valid; allowed: an integer >= 1"),
    (["data.num_workers=-1"], "data.num_workers=-1 is not valid"),
    (["trainer.max_epochs=0"], "trainer.max_epochs=0 is not valid; allowed: an integer >= 1"),
    (["dataset.val_fraction=0.5", "dataset.test_fraction=0.5"], "leave no training data"),
    (["optimizer.name=adam"], "optimizer.name='adam' is not valid; allowed: adamw, sgd"),
    (["optimizer.schedule=step"], "optimizer.schedule='step' is not valid"),
    (["optimizer.min_lr_factor=2"], "optimizer.min_lr_factor=2 is not valid"),
    (["optimizer.betas=[0.9]"], "optimizer.betas=[0.9] is not valid; allowed: two numbers"),
    (["optimizer.name=sgd", "optimizer.momentum=0"],
     "optimizer.momentum=0 is not valid with optimizer.nesterov=true"),
    (["dataset.bad_images=maybe"], "dataset.bad_images='maybe' is not valid; allowed: error, skip"),
    (["logger=wandb", "logger.mode=sometimes"], "logger.mode='sometimes' is not valid; allowed: auto"),
    (["progress=dots"], "progress='dots' is not valid; allowed: auto, bar, lines"),
    (["model.label_smoothing=1.0"], "model.label_smoothing=1.0 is not valid"),
    (["seed=-3"], "seed=-3 is not valid"),
    (["dataset=imagefolder"], "dataset.root has no value"),
    (["strategy.lr=${oc.env:FTBENCH_NO_SUCH_VARIABLE}"], "strategy.lr: cannot be resolved"),
    (["model.weights=/no/such/weights.safetensors"], "no such file"),
    (["eval.shifts=[fog:3]"], "eval.shifts[0]='fog:3' is not valid; allowed: a list of name:severity, "
                              "name one of gaussian_noise, gaussian_blur, contrast, jpeg, rotate"),
    (["eval.shifts=[jpeg:3,jpeg:6]"], "eval.shifts[1]='jpeg:6' is not valid; allowed:"),
    (["eval.shifts=[jpeg]"], "eval.shifts[0]='jpeg' is not valid"),
    (["eval.shifts=jpeg:3"], "eval.shifts='jpeg:3' is not valid; allowed: a list of name:severity"),
    (["eval.shifts=[rotate:2,rotate:2]"], "eval.shifts[1]='rotate:2' is listed twice"),
    (["dataset.ood_root=/no/such/folder"], "dataset.ood_root='/no/such/folder': no such folder"),


    (["seed=5000000000"], "seed=5000000000 is not valid; allowed: an integer 0..4294967295"),
    (["dataset.split_seed=-1"], "dataset.split_seed=-1 is not valid; allowed: an integer 0..4294967295"),
    (["dataset.upscale=0"], "dataset.upscale=0 is not valid; allowed: an integer >= 1"),
    (["dataset.std=[0,0,0]"], "dataset.std[0]=0 is not valid; allowed: a number > 0"),
    (["dataset.mean=[0.5,0.5]"], "dataset.mean=[0.5, 0.5] is not valid; allowed: null"),
    (["dataset.val_fraction=0.001"], "cannot be split keeping every class in each split"),
    (["trainer.precision=bogus"], "trainer.precision='bogus' is not valid; allowed: "),
    (["trainer.devices=0"], "trainer.devices=0 is not valid; allowed: an integer >= 1, -1"),
    (["trainer.accelerator=tpu"], "trainer.accelerator='tpu' is not available on this machine; "
                                  "allowed: auto, cpu"),
    (["trainer.accelerator=bogus"], "trainer.accelerator='bogus' is not valid; allowed: auto, gpu"),
    (["+trainer.num_nodes=0"], "trainer: Lightning refuses these settings"),
])
def test_bad_settings_are_one_line_user_errors(tmp_path, overrides, message):
    cfg = make_cfg(*FAST, *overrides, run_dir=tmp_path)
    with pytest.raises(UserError) as err:
        fit(cfg, tmp_path)
    assert message in str(err.value)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "result.json").exists()
    assert not (tmp_path / "last.ckpt").exists()  # refused before any training


@pytest.mark.parametrize("layout, message", [
    (None, "no such folder"),
    ({}, "has 0 class folder(s); allowed: at least 2"),
    ({"cat": 10}, "has 1 class folder(s)"),
    ({"cat": 10, "dog": 0}, "Found no valid file for the classes dog"),
])
def test_bad_image_folders_are_user_errors(tmp_path, layout, message):
    root = tmp_path / "images"
    if layout is not None:
        root.mkdir()
        image_folder(root, layout)
    cfg = make_cfg(*FAST, "dataset=imagefolder", f"dataset.root={root}", run_dir=tmp_path)
    with pytest.raises(UserError, match="dataset.root") as err:
        fit(cfg, tmp_path)
    assert message in str(err.value)


def test_a_corrupt_image_is_named_or_skipped_as_configured(tmp_path, caplog):
    root = image_folder(tmp_path / "images", {"cat": 10, "dog": 10})
    (root / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really an image")
    args = [*FAST, "dataset=imagefolder", f"dataset.root={root}", "trainer.max_epochs=1"]
    with pytest.raises(UserError, match=r"broken\.png' is not a readable image.*bad_images=skip"):
        fit(make_cfg(*args, run_dir=tmp_path), tmp_path)

    result = fit(make_cfg(*args, "dataset.bad_images=skip", run_dir=tmp_path), tmp_path)
    data = result["data"]
    assert data["train_size"] + data["val_size"] + data["test_size"] == 20  # 21 files, 1 skipped
    assert "broken.png" in caplog.text


@pytest.mark.skipif(torch.cuda.is_available(), reason="a machine with a GPU has one")
def test_a_gpu_on_a_machine_without_one_is_one_line(tmp_path):
    cfg = make_cfg(*FAST, "trainer.accelerator=gpu", run_dir=tmp_path)
    with pytest.raises(UserError, match="trainer.accelerator='gpu' is not available on this machine; "
                                        "allowed: auto, cpu"):
        fit(cfg, tmp_path)


def test_a_truncated_jpeg_is_named_or_skipped_as_configured(tmp_path, caplog):
    root = image_folder(tmp_path / "images", {"cat": 10, "dog": 10})
    whole = tmp_path / "whole.jpg"
    save_image(whole, seed=7, size=(64, 64))
    (root / "dog" / "cut.jpg").write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    args = [*FAST, "dataset=imagefolder", f"dataset.root={root}", "trainer.max_epochs=1"]
    with pytest.raises(UserError, match=r"cut\.jpg' is not a readable image"):
        fit(make_cfg(*args, run_dir=tmp_path), tmp_path)
    result = fit(make_cfg(*args, "dataset.bad_images=skip", run_dir=tmp_path), tmp_path)
    data = result["data"]
    assert data["train_size"] + data["val_size"] + data["test_size"] == 20
    assert "skipping" in caplog.text and "cut.jpg" in caplog.text


@pytest.mark.parametrize("content, message", [
    (b"hello, I am text\n", "not a readable file (truncated, corrupt, or not a PyTorch file)"),
    (bytes(range(256)) * 8, "not a readable file (truncated, corrupt, or not a PyTorch file)"),
    ("int keys", "the file holds no state dict of tensors (names mapped to tensors)"),
])
def test_a_weight_file_that_is_no_state_dict_is_named(tmp_path, content, message):
    path = tmp_path / "weights.pth"
    if content == "int keys":
        torch.save({1: torch.zeros(1)}, path)
    else:
        path.write_bytes(content)
    cfg = make_cfg(*FAST, f"model.weights={path}", run_dir=tmp_path)
    with pytest.raises(UserError) as err:
        fit(cfg, tmp_path)
    assert message in str(err.value) and "run code" not in str(err.value)


def test_weights_that_do_not_fit_the_model_are_refused(tmp_path):
    path = tmp_path / "vit.pth"
    torch.save(create_backbone("test_vit", 10, "none").state_dict(), path)
    cfg = make_cfg(*FAST, f"model.weights={path}", run_dir=tmp_path)
    with pytest.raises(UserError, match="does not fit the model"):
        fit(cfg, tmp_path)
    assert not (tmp_path / "result.json").exists()


def test_a_checkpoint_for_another_number_of_classes_is_refused(tmp_path):
    digits_run = tmp_path / "digits"
    fit(make_cfg(*FAST, "trainer.max_epochs=1", run_dir=digits_run), digits_run)
    root = image_folder(tmp_path / "images", {"cat": 10, "dog": 10})
    other = tmp_path / "other"
    cfg = make_cfg(*FAST, "dataset=imagefolder", f"dataset.root={root}", run_dir=other)
    with pytest.raises(UserError, match="trained for 10 classes, the dataset has 2"):
        fit(cfg, other, ckpt_path=digits_run / "last.ckpt")
    assert not (other / "result.json").exists()
