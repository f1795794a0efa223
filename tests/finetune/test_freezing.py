"""Frozen means frozen: weights, BatchNorm statistics, and no backward through the prefix; what
trains moves (a surgical group, BitFit's biases), on every tiny timm family."""

import pytest
import torch

from ftbench.models.backbone import create_backbone, group_modules, layer_groups
from ftbench.models.weights import read_state_dict
from tests.helpers import TINY_MODELS


def _tensors_of(groups, state):
    """State-dict keys (params and buffers) owned by each group, by module prefix."""
    prefixes = [{n.rsplit(".", 1)[0] for n in g.param_names} for g in groups]
    return [[k for k in state if k.rsplit(".", 1)[0] in p] for p in prefixes]


def test_linear_probe_keeps_every_backbone_tensor_bit_identical(run_fit, pretrained):
    path, groups = pretrained
    # uncached: on cached features the backbone would not run in training at all
    result, run_dir = run_fit("strategy=linear_probe", "data.cache_features=false",
                              f"model.weights={path}")
    before, after = read_state_dict(path), read_state_dict(run_dir / "model.safetensors")
    backbone = [k for k in before if not k.startswith("classifier")]
    assert any("running_mean" in k for k in backbone)
    for k in backbone:
        assert torch.equal(before[k], after[k]), k
    assert not torch.equal(before["classifier.weight"], after["classifier.weight"])
    assert result["history"][-1]["trainable_groups"] == ["head"]


def test_partial_moves_exactly_the_top_groups(run_fit, pretrained):
    path, groups = pretrained
    result, run_dir = run_fit("strategy=partial", "strategy.trainable_groups=2",
                              f"model.weights={path}")
    before, after = read_state_dict(path), read_state_dict(run_dir / "model.safetensors")
    per_group = _tensors_of(groups, before)
    for group, keys in zip(groups[:-3], per_group[:-3]):
        for k in keys:
            assert torch.equal(before[k], after[k]), f"{group.name}: {k} moved"
    for group, keys in zip(groups[-3:-1], per_group[-3:-1]):
        assert any(not torch.equal(before[k], after[k]) for k in keys), f"{group.name} did not move"


def test_frozen_prefix_runs_without_autograd_and_its_batchnorm_in_eval(run_fit, pretrained):
    from omegaconf import OmegaConf

    from ftbench.finetune.module import FineTuneModule
    from ftbench.finetune.strategies import build_plan

    path, _ = pretrained
    model = create_backbone("test_efficientnet", num_classes=10, weights=str(path))
    groups = layer_groups(model)
    cfg = OmegaConf.create({"name": "partial", "lr": 1e-3, "lr_decay": 2.0, "unfreeze_every": 1,
                            "trainable_groups": 1, "probe_epochs": 1})
    module = FineTuneModule(model, groups, build_plan(cfg, [g.name for g in groups], 3), None, 10)
    module.train()
    frozen = [m for g, modules in zip(groups[:-2], group_modules(model, groups)) for m in modules]
    assert frozen and all(not m.training for m in frozen)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert any(m.training for m in bns) and any(not m.training for m in bns)

    grads_flowed = []
    model.conv_stem.register_forward_hook(lambda m, i, o: grads_flowed.append(o.requires_grad))
    module(torch.randn(2, 3, 32, 32)).sum().backward()
    assert grads_flowed == [False]  # no graph is recorded through the frozen stem
    assert model.conv_stem.weight.grad is None


def test_gradual_unfreezes_without_changing_the_optimizer_layout(run_fit):
    result, run_dir = run_fit("strategy=gradual", "strategy.unfreeze_every=1",
                              "trainer.max_epochs=3")
    counts = [len(h["trainable_groups"]) for h in result["history"]]
    assert counts == [1, 2, 3]
    params = [h["trainable_params"] for h in result["history"]]  # counted from requires_grad
    assert params[0] < params[1] < params[2]
    ckpt = torch.load(run_dir / "last.ckpt", map_location="cpu", weights_only=False)
    layer_groups_in_opt = {pg["layer_group"] for pg in ckpt["optimizer_states"][0]["param_groups"]}
    assert layer_groups_in_opt == set(range(len(result["groups"])))


@pytest.mark.parametrize("name", TINY_MODELS)
@pytest.mark.slow  # over a second or two: make test runs it, make test-fast leaves it out
def test_surgical_moves_the_chosen_group_and_nothing_else(run_fit, pretrained_per_model, name):
    path, groups, keys = pretrained_per_model(name)
    result, run_dir = run_fit(f"model.name={name}", f"model.weights={path}", "strategy=surgical",
                              "strategy.groups=[stage1]")
    before, after = read_state_dict(path), read_state_dict(run_dir / "model.safetensors")
    assert after.keys() == before.keys() and (run_dir / "result.json").is_file()
    outside = [k for k, g in keys.items() if g not in ("stage1", "head")]
    assert any(k.endswith("running_var") for k in outside) or name in ("test_convnext", "test_vit")
    for k in outside:
        assert torch.equal(before[k], after[k]), k  # BatchNorm statistics included
    assert any(not torch.equal(before[k], after[k]) for k, g in keys.items() if g == "stage1")
    assert all(h["trainable_groups"] == ["stage1", "head"] for h in result["history"])
    assert not result["cost"]["feature_cache"]["used"]
    trains = {g.name for g in groups} - {"stage1", "head"}
    assert all(result["cost"]["drift"][g] == 0.0 for g in trains)


@pytest.mark.parametrize("name", TINY_MODELS)
@pytest.mark.slow  # over a second or two: make test runs it, make test-fast leaves it out
def test_bitfit_moves_biases_and_the_head_and_nothing_else(run_fit, pretrained_per_model, name):
    path, groups, keys = pretrained_per_model(name)
    result, run_dir = run_fit(f"model.name={name}", f"model.weights={path}", "strategy=bitfit")
    before, after = read_state_dict(path), read_state_dict(run_dir / "model.safetensors")
    backbone = [k for k, g in keys.items() if g != "head"]
    biases = [k for k in backbone if k.endswith(".bias")]
    for k in backbone:
        if k not in biases:
            assert torch.equal(before[k], after[k]), k  # weights and BatchNorm statistics
    assert sum(not torch.equal(before[k], after[k]) for k in biases) > len(biases) // 2
    head = sum(before[k].numel() for k, g in keys.items() if g == "head")
    assert result["cost"]["trainable_params"] == sum(before[k].numel() for k in biases) + head
    assert not result["cost"]["feature_cache"]["used"]
