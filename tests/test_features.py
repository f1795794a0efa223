"""Feature caching trains the head on cached features exactly as it would on images."""

import pytest
import torch

from ftbench.backbone import create_backbone
from ftbench.data import FineTuneDataModule
from ftbench.features import extract_features

from .conftest import make_cfg


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
    uncached, _ = run_fit("strategy=linear_probe", "trainer.max_epochs=3", "data.cache_features=false")
    assert not uncached["cost"]["feature_cache"]["used"]
    for a, b in zip(cached["history"], uncached["history"]):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)
    assert cached["metrics"]["test_acc"] == pytest.approx(uncached["metrics"]["test_acc"], abs=0.02)


def test_lp_ft_switches_from_features_to_images_when_the_backbone_unfreezes(run_fit):
    result, _ = run_fit("strategy=lp_ft", "strategy.probe_epochs=1", "trainer.max_epochs=2")
    assert result["cost"]["feature_cache"]["used"]
    assert [len(h["trainable_groups"]) for h in result["history"]] == [1, len(result["groups"])]
    assert result["history"][1]["train_loss"] > 0


def test_augmented_training_data_is_never_cached(run_fit):
    result, _ = run_fit("strategy=linear_probe", "dataset.augment=true", "trainer.max_epochs=1")
    assert not result["cost"]["feature_cache"]["used"]
    assert result["data"]["augmented"]
