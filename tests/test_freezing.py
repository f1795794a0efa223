"""Frozen means frozen: weights, BatchNorm statistics, and no backward through the prefix."""

import torch

from ftbench.models.backbone import create_backbone, group_modules, layer_groups
from ftbench.models.weights import read_state_dict


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
