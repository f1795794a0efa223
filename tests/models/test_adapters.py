"""LoRA's adapters (``models/adapters.py``): the layers they wrap and the group each joins, their
dropout, the merge into a plain timm model, and the one-line errors of bad targets."""

from __future__ import annotations

import pytest
import timm
import torch
from omegaconf import OmegaConf

from ftbench.config import validate_config
from ftbench.finetune.module import FineTuneModule, keeps_statistics
from ftbench.finetune.strategies import build_plan
from ftbench.models.adapters import ADAPTER_PREFIX, add_adapters, default_targets, full_rank, resolve_targets
from ftbench.models.backbone import create_backbone, layer_groups
from ftbench.models.weights import read_state_dict
from ftbench.run.failures import UserError
from tests.helpers import FAST, TINY_MODELS, make_cfg


def _logits(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(x)


@pytest.mark.parametrize("name", TINY_MODELS)
@pytest.mark.slow  # over a second or two: make test runs it, make test-fast leaves it out
def test_lora_merges_into_a_plain_timm_model_with_the_adapted_logits(run_fit, pretrained_per_model, name):
    from peft import LoraConfig, get_peft_model

    path, groups, keys = pretrained_per_model(name)
    result, run_dir = run_fit(f"model.name={name}", f"model.weights={path}", "strategy=lora",
                              "strategy.rank=4", "strategy.lr=0.05")
    saved = read_state_dict(run_dir / "model.safetensors")
    assert not any(ADAPTER_PREFIX in k or "base_layer" in k for k in saved)
    plain = timm.create_model(name, num_classes=10)
    plain.load_state_dict(saved, strict=True)

    # the adapted model as trained: the starting weights, adapters, and the last checkpoint
    cfg = result["config"]["strategy"]
    adapted = create_backbone(name, num_classes=10, weights=str(path))
    add_adapters(adapted, OmegaConf.create(cfg))
    state = torch.load(run_dir / "last.ckpt", weights_only=True)["state_dict"]
    adapted.load_state_dict({k.removeprefix("model."): v for k, v in state.items()}, strict=True)
    x = torch.randn(4, 3, 32, 32)
    expected = _logits(adapted, x)
    assert torch.allclose(_logits(plain, x), expected, rtol=1e-4, atol=1e-5)
    start_model = create_backbone(name, num_classes=10, weights=str(path))
    start_model.load_state_dict({k: v for k, v in saved.items() if keys[k] == "head"},
                                strict=False)  # the trained head alone
    assert not torch.allclose(_logits(start_model, x), expected, atol=1e-4)  # the adapters did work

    fresh = timm.create_model(name, num_classes=10)
    peft_count, _ = get_peft_model(fresh, LoraConfig(r=4, target_modules=default_targets(fresh))
                                   ).get_nb_trainable_parameters()
    head = sum(saved[k].numel() for k, g in keys.items() if g == "head")
    assert result["cost"]["trainable_params"] == peft_count + head
    assert result["cost"]["total_params"] == sum(v.numel() for v in plain.parameters())
    assert not result["cost"]["feature_cache"]["used"]
    start_weights = read_state_dict(path)
    for group in groups:  # drift is that of the merged weights, not of the adapters
        params = [n for n in group.param_names if n in saved]
        moved = sum(float((saved[n] - start_weights[n]).pow(2).sum()) for n in params)
        size = sum(float(start_weights[n].pow(2).sum()) for n in params)
        assert result["cost"]["drift"][group.name] == pytest.approx((moved / size) ** 0.5, rel=1e-4)
    adapted_groups = {keys[f"{t}.weight"] for t in default_targets(plain)}
    for group in groups[:-1]:  # the merged weights moved where adapters were, nowhere else
        assert (result["cost"]["drift"][group.name] > 0) == (group.name in adapted_groups), group.name


@pytest.mark.parametrize("name, expected", [
    ("test_vit", {"qkv", "fc1", "fc2"}),
    ("test_efficientnet", {"conv_stem", "conv", "conv_exp", "conv_pw", "conv_pwl", "conv_reduce",
                           "conv_expand", "conv_head"}),  # all but conv_dw (depthwise)
])
def test_adapters_join_the_group_of_the_layer_they_wrap(name, expected):
    torch.manual_seed(0)
    model = create_backbone(name, num_classes=10, weights="none")
    plain_groups = {n.removesuffix(".weight"): g.name for g in layer_groups(model)
                    for n in g.param_names}
    targets = default_targets(model)
    assert {t.rsplit(".", 1)[-1] for t in targets} == expected  # never depthwise, never the head
    add_adapters(model, OmegaConf.create({"name": "lora", "rank": 2, "alpha": 4, "dropout": 0.0,
                                          "target_modules": None}))
    adapters = 0
    for group in layer_groups(model):
        for param in group.param_names:
            if ADAPTER_PREFIX in param:
                layer = param.split(".lora_", 1)[0]
                assert plain_groups[layer] == group.name, param
                adapters += 1
    assert adapters == 2 * len(targets)


def test_lora_runs_adapter_dropout_but_keeps_batchnorm_statistics():
    model = create_backbone("test_efficientnet", num_classes=10, weights="none")
    add_adapters(model, OmegaConf.create({"name": "lora", "rank": 2, "alpha": 4, "dropout": 0.5,
                                          "target_modules": None}))
    groups = layer_groups(model)
    cfg = OmegaConf.create({"name": "lora", "lr": 1e-3, "lr_decay": 1.0, "rank": 2, "alpha": 4,
                            "dropout": 0.5})
    module = FineTuneModule(model, groups, build_plan(cfg, [g.name for g in groups], 2), None, 10)
    module.train()
    statistics = [m for m in model.modules() if keeps_statistics(m)]
    dropouts = [m for n, m in model.named_modules() if "lora_dropout." in n]
    assert statistics and not any(m.training for m in statistics)
    assert dropouts and all(m.training for m in dropouts)


@pytest.mark.parametrize("targets, message", [
    (["nothing_here"], "'nothing_here' matches no linear or convolution layer"),
    (["classifier"], "'classifier' matches no linear or convolution layer"),
    (["conv_dw"], "'conv_dw' matches only grouped or depthwise convolutions"),
    ("conv_pw", "strategy.target_modules='conv_pw' is not valid"),
])
def test_bad_lora_targets_are_one_line_errors(targets, message):
    model = create_backbone("test_efficientnet", num_classes=10, weights="none")
    with pytest.raises(UserError, match=message) as err:
        resolve_targets(model, targets)
    assert "\n" not in str(err.value)
    assert resolve_targets(model, ["conv_pw"]) == [n for n in default_targets(model) if n.endswith("conv_pw")]


@pytest.mark.parametrize("overrides, message", [
    (["strategy.target_modules=[]"], "strategy.target_modules=[] is not valid; allowed: null (the "
                                     "defaults) or a non-empty list of layer names"),
    (["strategy.rank=1000000000000"], "strategy.rank=1000000000000 is not valid; allowed: an integer "
                                      "1..96 (the full rank of blocks.2.0.conv_exp, the widest layer"),
    (["strategy.rank=97"], "strategy.rank=97 is not valid; allowed: an integer 1..96"),
    # the bound follows the layers adapted: conv_pw alone is narrower than the defaults
    (["strategy.target_modules=[conv_pw]", "strategy.rank=49"],
     "allowed: an integer 1..48 (the full rank of blocks.4.0.conv_pw"),
    (["strategy.rank=0"], "strategy.rank=0 is not valid; allowed: an integer >= 1"),
    (["strategy.rank=-3"], "strategy.rank=-3 is not valid; allowed: an integer >= 1"),
    (["strategy.rank=2.5"], "strategy.rank=2.5 is not valid; allowed: an integer >= 1"),
    (["strategy.rank=eight"], "strategy.rank='eight' is not valid; allowed: an integer >= 1"),
])
def test_bad_lora_settings_are_refused_by_the_config_check(tmp_path, overrides, message):
    with pytest.raises(UserError) as err:
        validate_config(make_cfg(*FAST, "strategy=lora", *overrides, run_dir=tmp_path))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_the_rank_bound_is_the_full_rank_of_the_widest_adapted_layer(tmp_path):
    # of the layers lora adapts by default, blocks.2.0.conv_exp has the largest min(inputs, outputs)
    model = create_backbone("test_efficientnet", num_classes=10, weights="none")
    layers = dict(model.named_modules())
    targets = default_targets(model)
    assert max(full_rank(layers[n]) for n in targets) == 96
    assert min(full_rank(layers[n]) for n in targets) < 16  # narrow layers do not bound the rank
    for rank in (1, 16, 96):
        validate_config(make_cfg(*FAST, "strategy=lora", f"strategy.rank={rank}", run_dir=tmp_path))
    conv = torch.nn.Conv2d(8, 100, kernel_size=3)  # 8 x 3 x 3 = 72 inputs
    assert full_rank(conv) == 72 and full_rank(torch.nn.Linear(5, 7)) == 5


@pytest.mark.parametrize("bad", ["strategy.target_modules=[]", "strategy.rank=1000000000000"])
def test_bad_lora_settings_are_one_line_and_leave_no_run_folder(tmp_path, cli, bad):
    folder = tmp_path / "run"
    code, stderr = cli(f"hydra.run.dir={folder}", *FAST, "strategy=lora", bad)
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"ftbench: error: {bad}"), stderr
    assert not folder.exists()
