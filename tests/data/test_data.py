"""Dataset sources and the data module, on small image folders the tests create."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from omegaconf import OmegaConf

from ftbench.data import FineTuneDataModule
from ftbench.data.sources import labels_of, load_splits
from ftbench.run.failures import UserError
from tests.helpers import image_folder, make_cfg, save_image


def _folder(root: Path, classes=("cat", "dog", "emu"), per_class: int = 10) -> Path:
    return image_folder(root, classes, per_class, size=(20, 24))


def dataset_cfg(name: str, **kw):
    return make_cfg(f"dataset={name}").dataset if not kw else OmegaConf.merge(
        make_cfg(f"dataset={name}").dataset, kw)


def test_digits_split_is_fixed_stratified_and_disjoint():
    splits = load_splits(dataset_cfg("digits"))
    sizes = [len(splits.train), len(splits.val), len(splits.test)]
    assert sum(sizes) == 1797 and sizes[2] == pytest.approx(0.15 * 1797, abs=2)
    assert splits.classes == [str(i) for i in range(10)]
    for split in (splits.train, splits.val, splits.test):
        counts = np.bincount(labels_of(split), minlength=10)
        assert counts.min() >= 0.8 * counts.mean()  # every class in every split
    again = load_splits(dataset_cfg("digits"))
    assert splits.test.indices == again.test.indices
    indices = [set(split.indices) for split in (splits.train, splits.val, splits.test)]
    assert len(set.union(*indices)) == sum(sizes) == 1797  # pairwise disjoint
    image, _ = splits.train[0]
    assert image.size == (32, 32) and image.mode == "RGB"


def test_train_fraction_subsamples_each_class():
    dm = FineTuneDataModule(dataset_cfg("digits", train_fraction=0.2), batch_size=8)
    full = load_splits(dataset_cfg("digits"))
    small = dm.load().train
    assert len(small) == pytest.approx(0.2 * len(full.train), abs=10)
    counts = np.bincount(labels_of(small), minlength=10)
    assert counts.min() >= 0.15 * len(full.train) / 10


def test_data_module_follows_the_backbone_normalisation_and_keeps_tensors_in_memory():
    dm = FineTuneDataModule(dataset_cfg("digits"), batch_size=16)
    # Lite0's own normalisation (0.5), not timm's ImageNet default
    model = timm.create_model("tf_efficientnet_lite0", num_classes=dm.num_classes)
    config = dm.resolve_for(model)
    assert config["input_size"] == (3, 32, 32)
    assert config["mean"] == config["std"] == (0.5, 0.5, 0.5)
    dm.setup("fit")
    assert isinstance(dm.datasets["train"], torch.utils.data.TensorDataset)
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (16, 3, 32, 32) and y.dtype == torch.long


def test_with_augmentation_the_train_split_is_random_and_read_lazily_the_others_fixed():
    dm = FineTuneDataModule(dataset_cfg("digits", augment=True), batch_size=16)
    dm.resolve_for(timm.create_model("test_efficientnet", num_classes=dm.num_classes))
    dm.setup("fit")
    train = dm.datasets["train"]
    assert not isinstance(train, torch.utils.data.TensorDataset)  # transformed on every read
    torch.manual_seed(0)
    draws = [train[0][0] for _ in range(4)]
    assert draws[0].shape == (3, 32, 32)
    assert any(not torch.equal(draws[0], d) for d in draws[1:])
    for split in ("val", "test"):
        assert isinstance(dm.datasets[split], torch.utils.data.TensorDataset)


def test_imagefolder_splits_a_flat_folder(tmp_path):
    root = _folder(tmp_path / "imgs")
    splits = load_splits(dataset_cfg("imagefolder", root=str(root)))
    assert splits.classes == ["cat", "dog", "emu"]
    assert len(splits.train) + len(splits.val) + len(splits.test) == 30
    assert len(splits.test) == 6  # 20% of each class


def test_imagefolder_uses_given_train_val_test_folders(tmp_path):
    for split, n in (("train", 6), ("val", 2), ("test", 3)):
        _folder(tmp_path / split, per_class=n)
    splits = load_splits(dataset_cfg("imagefolder", root=str(tmp_path)))
    assert (len(splits.train), len(splits.val), len(splits.test)) == (18, 6, 9)


@pytest.mark.parametrize("make, message", [
    (lambda root: None, "no such folder"),
    (lambda root: _folder(root, classes=("only",)), "1 class folder"),
    (lambda root: (_folder(root), (root / "empty").mkdir()), "empty"),
])
def test_imagefolder_mistakes_are_user_errors(tmp_path, make, message):
    root = tmp_path / "data"
    make(root)
    with pytest.raises(UserError, match=message):
        load_splits(dataset_cfg("imagefolder", root=str(root)))


def test_fit_on_an_image_folder_with_augmentation(run_fit, tmp_path):
    root = _folder(tmp_path / "imgs", per_class=8)
    result, run_dir = run_fit("dataset=imagefolder", f"dataset.root={root}", "dataset.image_size=32",
                              "strategy=full", "data.batch_size=4")
    assert result["data"]["augmented"] is True
    assert result["data"]["train_size"] + result["data"]["val_size"] + result["data"]["test_size"] == 24
    assert 0.0 <= result["metrics"]["test_acc"] <= 1.0
    assert (run_dir / "model.safetensors").is_file()


def test_eurosat_reads_its_folder_layout(tmp_path):
    _folder(tmp_path / "eurosat" / "2750", classes=("Forest", "River"), per_class=10)
    splits = load_splits(dataset_cfg("eurosat", root=str(tmp_path), download=False))
    assert splits.classes == ["Forest", "River"]
    assert len(splits.train) + len(splits.val) + len(splits.test) == 20


def test_dtd_uses_its_official_splits(tmp_path):
    base = tmp_path / "dtd" / "dtd"
    for split, n in (("train", 4), ("val", 2), ("test", 3)):
        lines = []
        for cls in ("banded", "woven"):
            for i in range(n):
                name = f"{split}_{i}.jpg"
                save_image(base / "images" / cls / name, seed=i)
                lines.append(f"{cls}/{name}")
        (base / "labels").mkdir(parents=True, exist_ok=True)
        (base / "labels" / f"{split}1.txt").write_text("\n".join(lines) + "\n")
    splits = load_splits(dataset_cfg("dtd", root=str(tmp_path), download=False))
    assert (len(splits.train), len(splits.val), len(splits.test)) == (8, 4, 6)
    assert splits.classes == ["banded", "woven"]


def test_pets_splits_val_off_trainval(tmp_path):
    base = tmp_path / "oxford-iiit-pet"
    (base / "annotations").mkdir(parents=True)
    for split, n in (("trainval", 10), ("test", 3)):
        lines = []
        for label, breed in enumerate(("Abyssinian", "beagle"), start=1):
            for i in range(n):
                image_id = f"{breed}_{split}{i}"
                save_image(base / "images" / f"{image_id}.jpg", seed=i)
                lines.append(f"{image_id} {label} {label} 1")
        (base / "annotations" / f"{split}.txt").write_text("\n".join(lines) + "\n")
    splits = load_splits(dataset_cfg("pets", root=str(tmp_path), download=False))
    assert len(splits.test) == 6 and len(splits.train) + len(splits.val) == 20
    assert len(splits.val) == 2


def test_a_missing_torchvision_dataset_names_the_folder_to_fill(tmp_path):
    with pytest.raises(UserError, match=f"not found in '{tmp_path}'.*CIFAR10"):
        load_splits(dataset_cfg("cifar10", root=str(tmp_path), download=False))


def test_in_memory_loaders_fetch_whole_batches_equal_to_item_by_item_collation():
    dm = FineTuneDataModule(dataset_cfg("digits"), batch_size=16)
    dm.resolve_for(timm.create_model("test_efficientnet", num_classes=dm.num_classes))
    dm.setup("fit")
    torch.manual_seed(0)
    batched = [b for _, b in zip(range(4), dm.train_dataloader(), strict=False)]
    torch.manual_seed(0)
    reference = torch.utils.data.DataLoader(dm.datasets["train"], batch_size=16, shuffle=True)
    for (x, y), (rx, ry) in zip(batched, reference, strict=False):
        assert torch.equal(x, rx) and torch.equal(y, ry)


def test_links_in_an_image_folder_never_count_a_file_twice(tmp_path, caplog):
    root = _folder(tmp_path / "imgs", classes=("cat", "dog"), per_class=8)
    (root / "cat" / "inner").symlink_to(root / "cat")  # a link back up: walked, it never ends
    (root / "dog" / "again.png").symlink_to(root / "dog" / "0.png")
    (root / "dog" / "hard.png").hardlink_to(root / "dog" / "1.png")
    splits = load_splits(dataset_cfg("imagefolder", root=str(root)))
    assert len(splits.train) + len(splits.val) + len(splits.test) == 16
    assert ": 2 files are links to (or hard links of) files listed already" in caplog.text


def test_an_image_folder_may_link_to_images_kept_elsewhere(tmp_path):
    elsewhere = _folder(tmp_path / "store", classes=("cat", "dog"), per_class=8)
    root = tmp_path / "imgs"
    root.mkdir()
    (root / "cat").symlink_to(elsewhere / "cat")  # a class folder that is a link
    (root / "dog").mkdir()
    for image in (elsewhere / "dog").iterdir():
        (root / "dog" / image.name).symlink_to(image)  # images that are links
    splits = load_splits(dataset_cfg("imagefolder", root=str(root)))
    assert splits.classes == ["cat", "dog"]
    assert len(splits.train) + len(splits.val) + len(splits.test) == 16


def test_a_class_folder_that_is_a_looping_link_is_one_line(tmp_path):
    root = _folder(tmp_path / "imgs", classes=("cat", "dog"), per_class=8)
    (root / "loop").symlink_to(root / "loop")
    with pytest.raises(UserError, match=r"'.*loop' cannot be read \(Too many levels of symbolic links\)"):
        load_splits(dataset_cfg("imagefolder", root=str(root)))


def test_identical_images_in_two_splits_are_reported(tmp_path, caplog):
    root = _folder(tmp_path / "imgs", classes=("cat", "dog"), per_class=10)
    for name in ("cat", "dog"):  # every image twice, as a copy under another name
        for image in list((root / name).iterdir()):
            (root / name / f"copy_{image.name}").write_bytes(image.read_bytes())
    load_splits(dataset_cfg("imagefolder", root=str(root)))
    assert "are in more than one split as identical copies" in caplog.text

    caplog.clear()
    load_splits(dataset_cfg("imagefolder", root=str(_folder(tmp_path / "clean", ("cat", "dog")))))
    assert "identical copies" not in caplog.text


@pytest.mark.parametrize("layout", [{"cat": 10, "dog": 1}, {"cat": 1, "dog": 1, "emu": 1}])
def test_classes_too_small_to_split_are_one_line(tmp_path, layout):
    root = image_folder(tmp_path / "imgs", layout)
    with pytest.raises(UserError, match=r"cannot be split keeping every class in each split .*"
                                        r"allowed: more images per class"):
        load_splits(dataset_cfg("imagefolder", root=str(root)))
