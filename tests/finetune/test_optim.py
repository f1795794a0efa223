import pytest
import timm
from omegaconf import OmegaConf

from ftbench.finetune.optim import build_optimizer, build_scheduler, lr_factor, param_groups
from ftbench.models.backbone import layer_groups

OPT = OmegaConf.create({"name": "adamw", "weight_decay": 0.05, "schedule": "cosine",
                        "warmup_epochs": 1, "min_lr_factor": 0.01, "betas": [0.9, 0.999],
                        "momentum": 0.9, "nesterov": True})


def test_warmup_then_cosine_to_the_floor():
    f = [lr_factor(s, 100, "cosine", 10, 0.01) for s in range(101)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(f[10:], f[11:]))
    assert f[100] == pytest.approx(0.01)
    assert lr_factor(50, 100, "constant", 10, 0.01) == 1.0


def _factors(schedule: str, warmup_epochs: float, total_steps: int = 100) -> list[float]:
    """The LR factor the built scheduler applies at each of ``total_steps`` steps."""
    model = timm.create_model("test_resnet", num_classes=3)
    groups = layer_groups(model)
    cfg = OmegaConf.merge(OPT, {"schedule": schedule, "warmup_epochs": warmup_epochs})
    opt = build_optimizer(cfg, model, groups, [1.0] * len(groups), base_lr=1.0)
    sched = build_scheduler(cfg, opt, total_steps=total_steps, steps_per_epoch=10)
    factors = []
    for _ in range(total_steps):
        factors.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return factors


def test_onecycle_is_torchs_one_cycle_from_lr_over_25_up_and_down_to_the_floor():
    f = _factors("onecycle", warmup_epochs=0)  # 30% rise, as OneCycleLR's default
    assert f[0] == pytest.approx(1 / 25)
    peak = f.index(max(f))
    assert peak == 29 and f[peak] == pytest.approx(1.0)
    assert all(a < b for a, b in zip(f[:29], f[1:30]))
    assert all(a >= b for a, b in zip(f[29:], f[30:]))
    assert f[-1] == pytest.approx(0.01, rel=0.05)  # min_lr_factor
    warm = _factors("onecycle", warmup_epochs=2)  # the rise follows an explicit warm-up
    assert warm.index(max(warm)) == 19


def test_without_warmup_cosine_starts_at_full_lr():
    assert _factors("cosine", warmup_epochs=0)[0] == pytest.approx(1.0)


@pytest.mark.parametrize("schedule", ["cosine", "onecycle", "constant"])
def test_schedule_keeps_the_ratio_between_groups_at_every_step(schedule):
    model = timm.create_model("test_resnet", num_classes=3)
    groups = layer_groups(model)
    scales = [2.6 ** -(len(groups) - 1 - i) for i in range(len(groups))]
    cfg = OmegaConf.merge(OPT, {"schedule": schedule})
    opt = build_optimizer(cfg, model, groups, scales, base_lr=1e-2)
    sched = build_scheduler(cfg, opt, total_steps=20, steps_per_epoch=5)
    for _ in range(20):
        by_group = {pg["layer_group"]: pg["lr"] for pg in opt.param_groups}
        lrs = [by_group[i] for i in range(len(groups))]
        assert lrs[-1] > 0
        for lower, upper in zip(lrs, lrs[1:]):
            assert upper / lower == pytest.approx(2.6, rel=1e-9)
        opt.step()
        sched.step()


def test_no_weight_decay_on_biases_and_norms():
    model = timm.create_model("test_resnet", num_classes=3)
    groups = layer_groups(model)
    opt = build_optimizer(OPT, model, groups, [1.0] * len(groups), base_lr=1e-3)
    for pg in opt.param_groups:
        assert all((p.ndim > 1) == (pg["weight_decay"] > 0) for p in pg["params"])
    in_optimizer = sum(len(pg["params"]) for pg in opt.param_groups)
    assert in_optimizer == len(list(model.parameters()))  # frozen or not, every param is there


def test_what_a_vit_names_in_no_weight_decay_gets_none_in_the_same_layout_and_lr_ratios():
    model = timm.create_model("test_vit", num_classes=3)
    groups = layer_groups(model)
    scales = [0.5 ** (len(groups) - 1 - i) for i in range(len(groups))]
    opt = build_optimizer(OPT, model, groups, scales, base_lr=1e-3)
    decay = {name: pg["weight_decay"] for pg in opt.param_groups for p in pg["params"]
             for name, q in model.named_parameters() if q is p}
    assert decay["pos_embed"] == 0.0 and decay["cls_token"] == 0.0  # 3-d, yet exempt
    assert decay["patch_embed.proj.weight"] == 0.05 and decay["blocks.0.attn.qkv.weight"] == 0.05
    assert len(decay) == len(list(model.parameters()))  # every parameter, once
    for pg in opt.param_groups:  # each layer group's LR, decayed or not
        assert pg["lr"] == pytest.approx(1e-3 * scales[pg["layer_group"]])
    assert {pg["layer_group"] for pg in opt.param_groups} == set(range(len(groups)))


@pytest.mark.parametrize("name", ["adamw", "sgd"])
def test_a_step_with_frozen_groups_matches_torch_and_keeps_every_group(name):
    import torch

    def make():
        torch.manual_seed(0)
        model = timm.create_model("test_resnet", num_classes=3)
        for p in model.parameters():
            p.requires_grad_(False)
        for p in model.get_classifier().parameters():
            p.requires_grad_(True)
        return model

    cfg = OmegaConf.merge(OPT, {"name": name})
    ours_model, ref_model = make(), make()
    groups = layer_groups(ours_model)
    ours = build_optimizer(cfg, ours_model, groups, [1.0] * len(groups), 1e-2)
    reference_cls = torch.optim.AdamW if name == "adamw" else torch.optim.SGD
    kwargs = {"momentum": 0.9, "nesterov": True} if name == "sgd" else {}
    reference = reference_cls(param_groups(ref_model, groups, [1.0] * len(groups), 1e-2, 0.05),
                              **kwargs)
    x = torch.randn(4, 3, 32, 32)
    for _ in range(3):
        for model, opt in ((ours_model, ours), (ref_model, reference)):
            opt.zero_grad(set_to_none=True)
            model(x).sum().backward()
            opt.step()
    for a, b in zip(ours_model.parameters(), ref_model.parameters()):
        assert torch.equal(a, b)
    assert len(ours.param_groups) == len(reference.param_groups)
    assert len(ours.state_dict()["param_groups"]) == len(reference.state_dict()["param_groups"])
