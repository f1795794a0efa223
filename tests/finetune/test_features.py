"""Feature caching trains the head on cached features exactly as it would on images."""

import pytest
import torch

from ftbench.data import FineTuneDataModule
from ftbench.finetune.features import extract_features, extraction_batch_size
from ftbench.models.backbone import create_backbone
from tests.helpers import make_cfg

IMAGES, FEATURES = [3, 32, 32], [256]  # test_efficientnet's input and pre-logit width


def _inputs(result: dict) -> list:
    """Per training phase, the shape of one training input (recorded by the FLOP meter)."""
    return [phase["input"] for phase in result["cost"]["flop_phases"]]


def test_cached_features_are_the_backbone_pre_logits():
    dm = FineTuneDataModule(make_cfg().dataset, batch_size=32)
    model = create_backbone("test_efficientnet", dm.num_classes, weights="none").eval()
    dm.resolve_for(model)
    dm.setup()
    feats = extract_features(model, dm.datasets["val"], batch_size=50)
    x, y = dm.datasets["val"][:7]
    with torch.no_grad():
        direct = model.forward_head(model.forward_features(x), pre_logits=True)
        logits = model(x)
    assert torch.allclose(feats.tensors[0][:7], direct, atol=1e-5)
    assert torch.equal(feats.tensors[1][:7], y)
    assert torch.allclose(model.get_classifier()(feats.tensors[0][:7]), logits, atol=1e-5)


def test_linear_probe_on_cached_features_matches_the_uncached_run(run_fit, tmp_path):
    cached, _ = run_fit("strategy=linear_probe", "trainer.max_epochs=3")
    assert cached["cost"]["feature_cache"]["used"]
    assert _inputs(cached) == [FEATURES]  # every training step ran on cached features
    uncached, _ = run_fit("strategy=linear_probe", "trainer.max_epochs=3", "data.cache_features=false")
    assert not uncached["cost"]["feature_cache"]["used"]
    assert _inputs(uncached) == [IMAGES]
    for a, b in zip(cached["history"], uncached["history"]):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)
    assert cached["metrics"]["test_acc"] == pytest.approx(uncached["metrics"]["test_acc"], abs=0.02)


def test_lp_ft_switches_from_features_to_images_when_the_backbone_unfreezes(run_fit):
    result, _ = run_fit("strategy=lp_ft", "strategy.probe_epochs=1", "trainer.max_epochs=2")
    assert result["cost"]["feature_cache"]["used"]
    assert _inputs(result) == [FEATURES, IMAGES]
    assert [len(h["trainable_groups"]) for h in result["history"]] == [1, len(result["groups"])]
    assert result["history"][1]["train_loss"] > 0


@pytest.mark.slow  # over a few seconds: make test runs it, make test-fast leaves it out
def test_with_augmentation_head_only_epochs_train_on_cached_deterministic_features(run_fit):
    # a probe on augmented data: one backbone pass per image, not one per image per epoch
    probe, _ = run_fit("strategy=linear_probe", "dataset.augment=true", "trainer.max_epochs=2")
    assert probe["data"]["augmented"] and probe["cost"]["feature_cache"]["used"]
    assert _inputs(probe) == [FEATURES]
    # the default task (digits_fewshot): 203 training, 180 validation, 1,414 test images, each once
    assert probe["cost"]["feature_cache"]["images_computed"] == 203 + 180 + 1414
    # lp_ft: the probe epoch on features, then augmented images once the backbone trains
    lp_ft, _ = run_fit("strategy=lp_ft", "dataset.augment=true", "trainer.max_epochs=2")
    assert _inputs(lp_ft) == [FEATURES, IMAGES]
    assert lp_ft["cost"]["feature_cache"]["used"]


def augmented_digits(num_workers: int = 0):
    dm = FineTuneDataModule(make_cfg("dataset.augment=true").dataset, batch_size=4,
                            num_workers=num_workers)
    model = create_backbone("test_efficientnet", dm.num_classes, weights="none").eval()
    dm.resolve_for(model)
    dm.setup()
    return dm, model


def test_an_augmented_split_serves_random_images_and_features_of_its_deterministic_view():
    dm, model = augmented_digits()
    assert dm.can_serve_features("train")
    view = dm.feature_inputs("train")
    assert torch.equal(view[3][0], view[3][0])  # deterministic: the evaluation transform
    assert torch.equal(view[3][0], dm.transform(False)(dm.splits.train[3][0]))
    loader = dm.train_dataloader()
    served = loader.dataset
    torch.manual_seed(0)
    x, y, index = served.__getitems__([3, 5])  # an image batch carries its indices
    assert x.shape == (2, 3, 32, 32) and index.tolist() == [3, 5]
    assert not torch.equal(x, served.__getitems__([3, 5])[0])  # augmented on every read
    assert len(dm.on_before_batch_transfer([x, y, index], 0)) == 2  # the indices go
    features = extract_features(model, view, batch_size=8)
    dm.serve_features("train", features)
    x, y = dm.on_before_batch_transfer(next(iter(loader)), 0)  # the same loader, now features
    assert x.shape == (4, FEATURES[0]) and y.dtype == torch.long
    dm.serve_images()
    assert dm.on_before_batch_transfer(next(iter(loader)), 0)[0].shape == (4, 3, 32, 32)


def test_loader_workers_started_before_the_features_still_deliver_them():
    # Lightning starts the first epoch's workers before any callback has cached a feature
    dm, model = augmented_digits(num_workers=2)
    loader = dm.train_dataloader()
    torch.manual_seed(0)
    batches = iter(loader)  # the workers copy the switch now, without features
    features = extract_features(model, dm.feature_inputs("train"), batch_size=64)
    dm.serve_features("train", features)
    x, y = dm.on_before_batch_transfer(next(batches), 0)
    assert x.shape == (4, FEATURES[0])
    (rows,) = [torch.nonzero((features.tensors[0] == row).all(dim=1)).flatten() for row in x[:1]]
    assert torch.equal(features.tensors[1][rows[0]], y[0])  # each feature with its own label


@pytest.mark.slow  # over a few seconds: make test runs it, make test-fast leaves it out
def test_a_feature_store_lets_later_runs_skip_the_backbone(run_fit, tmp_path):
    store = tmp_path / "store"
    first, _ = run_fit("strategy=linear_probe", "trainer.max_epochs=2", f"data.feature_store={store}")
    second, _ = run_fit("strategy=linear_probe", "trainer.max_epochs=2", f"data.feature_store={store}")
    assert first["cost"]["feature_cache"]["images_computed"] > 0
    assert first["cost"]["feature_cache"]["images_loaded"] == 0
    assert second["cost"]["feature_cache"]["images_computed"] == 0
    assert second["cost"]["feature_cache"]["images_loaded"] == first["cost"]["feature_cache"][
        "images_computed"]
    assert second["metrics"] == first["metrics"]  # shifted accuracies included
    # train, val, test and each shifted test set, whose backbone pass the second run skips too
    assert len(list(store.glob("*.safetensors"))) == 3 + len(first["data"]["shift_hashes"]) == 8
    assert 0 < second["cost"]["shift_eval_flops"] < first["cost"]["shift_eval_flops"] / 100


def test_feature_keys_change_with_the_weights_and_the_inputs():
    from ftbench.finetune.features import backbone_hash, features_key

    model = create_backbone("test_resnet", num_classes=3, weights="none")
    x = torch.randn(4, 3, 16, 16)
    key = features_key(model, x)
    assert key == features_key(model, x.clone())
    model.get_classifier().weight.data += 1  # the head does not change the features
    assert key == features_key(model, x)
    with torch.no_grad():
        model.conv1[0].weight[0, 0, 0, 0] += 1e-3
    assert key != features_key(model, x)
    assert features_key(model, x) != features_key(model, x[:3])
    assert features_key(model, x, "bf16-mixed") != features_key(model, x, "32-true")
    kept = backbone_hash(model, "bf16-mixed")  # one backbone hash serves several inputs
    for inputs in (x, x[:3]):
        assert features_key(model, inputs, backbone=kept) == features_key(model, inputs, "bf16-mixed")


@pytest.mark.slow  # over a few seconds: make test runs it, make test-fast leaves it out
def test_features_are_computed_in_the_runs_precision_and_stored_apart(run_fit, tmp_path):
    from safetensors.torch import load_file

    store = tmp_path / "store"
    bf16 = ["trainer=gpu", "trainer.accelerator=cpu", "data.pin_memory=false"]
    run_fit("strategy=linear_probe", f"data.feature_store={store}", *bf16)
    bf16_files = set(store.glob("*.safetensors"))
    run_fit("strategy=linear_probe", f"data.feature_store={store}")
    sets = 3 + 5  # train, val, test, and the five default shifted test sets
    assert len(bf16_files) == sets and len(list(store.glob("*.safetensors"))) == 2 * sets
    for path in bf16_files:  # pooled under bf16 autocast: every value is a bfloat16 value
        features = load_file(str(path))["features"]
        assert torch.equal(features, features.bfloat16().float())


def test_the_train_split_feature_pass_counts_as_training_time(run_fit):
    result, _ = run_fit("strategy=linear_probe", "trainer.max_epochs=2")
    cost = result["cost"]
    assert cost["feature_cache"]["train_seconds"] > 0
    assert cost["train_seconds"] == pytest.approx(
        sum(cost["epoch_train_seconds"]) + cost["feature_cache"]["train_seconds"])
    assert cost["images_per_second"] == pytest.approx(cost["train_images"] / cost["train_seconds"])


@pytest.mark.parametrize(("size", "expected"), [(32, 256), (64, 64), (96, 16), (224, 8), (512, 8)])
def test_cpu_feature_pass_batches_hold_about_the_same_number_of_pixels(size, expected):
    assert extraction_batch_size(torch.device("cpu"), torch.Size([100, 3, size, size])) == expected
    assert extraction_batch_size(torch.device("cuda"), torch.Size([100, 3, size, size])) == 256
