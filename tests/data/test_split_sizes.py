"""Exact split sizes (train_size, train_per_class, val_size) and the split digest of a result."""

from __future__ import annotations

import re
from functools import cache

import numpy as np
import pytest
from lightning import seed_everything
from omegaconf import OmegaConf

from ftbench.config import validate_config
from ftbench.data import FineTuneDataModule
from ftbench.data.labels import labels_of
from ftbench.data.sizes import allocate
from ftbench.data.sources import load_splits
from ftbench.data.split_hash import base_indices, split_hashes
from ftbench.run.failures import UserError
from ftbench.train import fit
from tests.helpers import FAST, image_folder, make_cfg

DIGITS = 10


@cache
def _composed(name: str):
    return make_cfg(f"dataset={name}").dataset


def dataset_cfg(name: str = "digits", **kw):
    return OmegaConf.merge(_composed(name), kw)  # a copy: the composed config stays as it is


def splits_of(name: str = "digits", **kw):
    """The splits a run trains, validates and tests on (training subset included)."""
    return FineTuneDataModule(dataset_cfg(name, **kw), batch_size=8).load()


def indices(split) -> list[int]:
    return base_indices(split)[1].tolist()


def per_class(split, classes: int = DIGITS) -> list[int]:
    return np.bincount(labels_of(split), minlength=classes).tolist()


def test_allocation_is_proportional_by_largest_remainder_and_sums_exactly():
    # exact shares 2.5, 3.5, 4.0 of 10: floors 2, 3, 4; the one left goes to the first of
    # the tied largest remainders
    assert allocate([5, 7, 8], 10).tolist() == [3, 3, 4]
    assert allocate([10, 20, 30], 7).tolist() == [1, 2, 4]  # 1.17, 2.33, 3.5: one to the 0.5
    assert allocate([100, 1, 1, 50], 4).tolist() == [1, 1, 1, 1]  # every class keeps one
    assert allocate([3, 0, 5], 8).tolist() == [3, 0, 5]  # an absent class gets none
    rng = np.random.default_rng(0)
    for _ in range(50):
        counts = rng.integers(1, 40, size=rng.integers(2, 12))
        total = int(rng.integers(len(counts), counts.sum() + 1))
        shares = allocate(counts, total)
        assert shares.sum() == total and (shares >= 1).all() and (shares <= counts).all()


def test_train_size_is_exact_stratified_and_leaves_val_and_test_alone():
    full, small = splits_of(), splits_of(train_size=300)
    assert len(small.train) == 300
    expected = allocate(per_class(full.train), 300).tolist()
    assert per_class(small.train) == expected
    assert max(expected) - min(expected) <= 2  # digits' classes are about equally large
    assert set(indices(small.train)) < set(indices(full.train))
    assert indices(small.val) == indices(full.val) and indices(small.test) == indices(full.test)


def test_train_per_class_takes_exactly_k_of_each_class_and_k_below_is_a_subset():
    five, ten = splits_of(train_per_class=5), splits_of(train_per_class=10)
    assert per_class(five.train) == [5] * DIGITS and per_class(ten.train) == [10] * DIGITS
    assert set(indices(five.train)) < set(indices(ten.train))


@pytest.mark.parametrize("sizing", [{"train_size": 100}, {"train_per_class": 7}, {"val_size": 50}])
def test_exact_splits_are_fixed_by_split_seed_alone(sizing):
    def split_indices(run_seed: int, **kw) -> list[list[int]]:
        seed_everything(run_seed, verbose=False)  # the run seed moves every global generator
        splits = splits_of(**sizing, **kw)
        return [indices(s) for s in (splits.train, splits.val, splits.test)]

    first = split_indices(0)
    assert split_indices(0) == first
    assert split_indices(123) == first  # another run seed: the same images
    assert split_indices(0, split_seed=1) != first
    # the run seed and the strategy are not dataset settings: a run never passes them here
    assert make_cfg("seed=5", "strategy=full").dataset == make_cfg().dataset


def test_val_size_is_split_off_train_when_the_dataset_has_no_val_split():
    full, sized = splits_of(), splits_of(val_size=200, train_size=800)
    assert (len(sized.train), len(sized.val)) == (800, 200)
    assert per_class(sized.val) == [20] * DIGITS
    assert indices(sized.test) == indices(full.test)
    train, val, test = (set(indices(s)) for s in (sized.train, sized.val, sized.test))
    assert not (train & val or train & test or val & test)
    assert len(splits_of(val_size=200).train) == 1797 - len(full.test) - 200  # the rest trains


def test_val_size_cuts_the_datasets_own_val_split(tmp_path):
    for i, (split, n) in enumerate((("train", 6), ("val", 4), ("test", 3))):
        image_folder(tmp_path / split, per_class=n, size=(12 + i, 12))  # no image in two splits
    full = splits_of("imagefolder", root=str(tmp_path))
    cut = splits_of("imagefolder", root=str(tmp_path), val_size=6)
    assert len(cut.val) == 6 and per_class(cut.val, 3) == [2, 2, 2]
    assert set(indices(cut.val)) < set(indices(full.val))
    assert indices(cut.train) == indices(full.train) and indices(cut.test) == indices(full.test)
    with pytest.raises(UserError, match=r"^dataset.val_size=13 is more than the 12 images of the "
                                        r"dataset's validation split; allowed: an integer 3..12$"):
        splits_of("imagefolder", root=str(tmp_path), val_size=13)


def test_too_few_images_in_a_class_names_the_class_and_its_count(tmp_path):
    root = image_folder(tmp_path / "imgs", {"cat": 20, "dog": 20, "emu": 5})
    emu = per_class(splits_of("imagefolder", root=str(root)).train, 3)[2]
    with pytest.raises(UserError) as err:
        splits_of("imagefolder", root=str(root), train_per_class=emu + 1)
    message = str(err.value)
    assert "\n" not in message
    assert re.fullmatch(rf"dataset.train_per_class={emu + 1}: class 'emu' has {emu} training images? "
                        rf"\(what the validation and test splits leave\); allowed: at most {emu}, the "
                        r"fewest of any class", message), message
    assert per_class(splits_of("imagefolder", root=str(root), train_per_class=emu).train, 3) == [emu] * 3


@pytest.mark.parametrize("sizing, message", [
    ({"train_size": 5000}, "dataset.train_size=5000 is more than the 1257 training images (what the "
                           "validation and test splits leave); allowed: an integer 10..1257"),
    ({"train_size": 9}, "dataset.train_size=9 cannot hold one image of each of the 10 classes; "
                        "allowed: an integer 10..1257"),
    ({"val_size": 5}, "dataset.val_size=5 cannot hold one image of each of the 10 classes"),
])
def test_counts_the_pool_cannot_give_are_one_line(sizing, message):
    with pytest.raises(UserError) as err:
        splits_of(**sizing)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_a_val_size_that_would_take_a_whole_class_names_it(tmp_path):
    image_folder(tmp_path / "train", {"cat": 10, "dog": 10, "emu": 1})
    image_folder(tmp_path / "test", {"cat": 2, "dog": 2, "emu": 2})
    with pytest.raises(UserError, match=r"^dataset.val_size=3 leaves class 'emu' \(1 image\) no "
                                        r"training image; allowed: a smaller dataset.val_size"):
        splits_of("imagefolder", root=str(tmp_path), val_size=3)


@pytest.mark.parametrize("overrides, message", [
    (["dataset.train_size=0"], "dataset.train_size=0 is not valid; allowed: null, or an integer >= 1"),
    (["dataset.train_per_class=-2"], "dataset.train_per_class=-2 is not valid; allowed: null, or an"),
    (["dataset.val_size=abc"], "dataset.val_size='abc' is not valid; allowed: null, or an integer >= 1"),
    (["dataset.val_size=1.5"], "dataset.val_size=1.5 is not valid"),
    (["dataset.train_size=true"], "dataset.train_size=True is not valid"),
    (["dataset.train_size=100", "dataset.train_per_class=5"],
     "dataset.train_size=100 and dataset.train_per_class=5 are both set; allowed: one of them"),
    (["dataset.train_fraction=0.5", "dataset.train_per_class=5"],
     "dataset.train_fraction=0.5 and dataset.train_per_class=5 are both set; allowed: "
     "train_fraction=1.0 with an exact count, or dataset.train_per_class=null"),
])
def test_bad_size_settings_are_refused_before_any_data_is_read(tmp_path, overrides, message):
    with pytest.raises(UserError) as err:
        validate_config(make_cfg(*FAST, *overrides, run_dir=tmp_path))
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_an_exact_count_with_train_fraction_at_one_is_allowed(tmp_path):
    validate_config(make_cfg(*FAST, "dataset.train_fraction=1.0", "dataset.train_size=100",
                             "dataset.val_size=50", run_dir=tmp_path))


def test_the_split_hash_is_equal_for_the_same_split_and_differs_for_another():
    base = split_hashes(splits_of(train_size=400))
    assert split_hashes(splits_of(train_size=400)) == base
    other_seed = split_hashes(splits_of(train_size=400, split_seed=1))
    assert other_seed["split_hash"] != base["split_hash"]
    assert all(other_seed["split_hashes"][s] != base["split_hashes"][s] for s in ("train", "val", "test"))
    smaller = split_hashes(splits_of(train_size=300))
    assert smaller["split_hash"] != base["split_hash"]
    assert smaller["split_hashes"]["train"] != base["split_hashes"]["train"]
    assert {s: smaller["split_hashes"][s] for s in ("val", "test")} == \
        {s: base["split_hashes"][s] for s in ("val", "test")}  # only the training set differs


def test_the_split_hash_follows_the_files_of_an_image_folder(tmp_path):
    root = image_folder(tmp_path / "imgs", per_class=10)
    before = split_hashes(load_splits(dataset_cfg("imagefolder", root=str(root))))
    (root / "cat" / "9.png").rename(root / "cat" / "renamed.png")  # same indices, another file
    after = split_hashes(load_splits(dataset_cfg("imagefolder", root=str(root))))
    assert after["split_hash"] != before["split_hash"]


def test_a_run_records_the_split_hash_of_its_task_whatever_its_seed_and_strategy(tmp_path):
    cfg = make_cfg(*FAST, "trainer.max_epochs=1", "dataset=digits", "dataset.train_size=60",
                   "dataset.val_size=30", "strategy=full", "seed=3", run_dir=tmp_path)
    data = fit(cfg, tmp_path)["data"]
    assert (data["train_size"], data["val_size"]) == (60, 30)
    # the digest of the task's splits as loaded without any run: every run of the task shares it
    task = split_hashes(splits_of(train_size=60, val_size=30))
    assert (data["split_hash"], data["split_hashes"]) == (task["split_hash"], task["split_hashes"])


def test_a_bad_size_on_the_command_line_is_one_line_exit_2_and_no_folder(tmp_path, cli):
    for i, bad in enumerate(("dataset.train_size=0", "dataset.train_per_class=1000")):  # config, data
        run_dir = tmp_path / f"run{i}"
        code, stderr = cli(f"hydra.run.dir={run_dir}", *FAST, bad)
        lines = stderr.strip().splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith("ftbench: error: "), stderr
        assert bad in lines[0]
        assert not run_dir.exists()


def test_the_default_task_trains_few_shot_and_tests_on_what_training_leaves():
    default = FineTuneDataModule(make_cfg().dataset, batch_size=8).load()  # no dataset override
    sizes = [len(default.train), len(default.val), len(default.test)]
    assert sizes == [203, 180, 1414]  # 15% of each class of the 1,347 left by val 10% and test 15%
    parts = [set(indices(split)) for split in (default.train, default.val, default.test)]
    assert len(set.union(*parts)) == sum(sizes) == 1797  # disjoint, and no image is wasted
    assert min(per_class(default.train)) >= 20 and min(per_class(default.test)) >= 130
    # the test images are those of digits' own 15% test split plus every unused training image
    plain = splits_of("digits")
    assert set(indices(plain.test)) < parts[2] and set(indices(plain.val)) != parts[1]
    assert splits_of("digits_fewshot").test.indices == default.test.indices  # fixed by split_seed alone


def test_unused_training_images_join_the_test_split_only_when_asked():
    kept = splits_of("digits", train_size=800)
    moved = splits_of("digits", train_size=800, unused_to_test=True)
    assert indices(moved.train) == indices(kept.train) and indices(moved.val) == indices(kept.val)
    assert len(kept.test) == 270 and len(moved.test) == 1797 - 270 - 800  # digits-800 of the suite
    assert not set(indices(moved.test)) & set(indices(moved.train))
