"""Strategy plans: which groups train at every point of progress, and at what LR ratio."""

import pytest
from omegaconf import OmegaConf

from ftbench.finetune.strategies import STRATEGIES, build_plan
from ftbench.run.failures import UserError

BASE = {"lr": 1e-3, "lr_decay": 2.0, "unfreeze_every": 2, "trainable_groups": 2,
        "probe_epochs": 3, "groups": ["stage1"], "rank": 4, "alpha": 8, "dropout": 0.0,
        "target_modules": None}
GROUPS = ("stem", "stage1", "stage2", "stage3", "head")


def plan(name: str, model_groups=GROUPS, max_epochs: int = 10, **kw):
    return build_plan(OmegaConf.create({**BASE, "name": name, **kw}), model_groups, max_epochs)


def count(p, progress: float) -> int:
    return sum(p.trainable(progress))


def test_linear_probe_trains_only_the_head_every_epoch():
    p = plan("linear_probe")
    assert all(p.trainable(e) == (False,) * 4 + (True,) for e in range(10))
    assert p.head_only_through(9)


@pytest.mark.parametrize("name", ["full", "discriminative"])
def test_full_and_discriminative_train_everything(name):
    assert all(all(plan(name).trainable(e)) for e in range(10))


def test_gradual_unfreezes_one_group_from_the_top_every_n_epochs():
    p = plan("gradual", unfreeze_every=2)
    assert [count(p, e) for e in range(10)] == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert p.trainable(2) == (False, False, False, True, True)
    assert not p.changes_within_epochs


def test_gradual_unfreezes_within_epochs_when_the_interval_is_a_fraction():
    p = plan("gradual", unfreeze_every=0.5, max_epochs=3)
    assert [count(p, e / 4) for e in range(8)] == [1, 1, 2, 2, 3, 3, 4, 4]
    assert p.changes_within_epochs
    assert p.trained_through(0) == (False, False, False, True, True)  # through epoch 0's last step


def test_gradual_auto_spreads_every_group_over_the_run():
    p = plan("gradual", unfreeze_every="auto", model_groups=tuple(f"g{i}" for i in range(9)), max_epochs=6)
    assert count(p, 0) == 1 and all(p.trained_through(5))  # all nine train before the end
    unfrozen_at = [min(s / 100 for s in range(600) if count(p, s / 100) > k) for k in range(1, 9)]
    assert unfrozen_at == pytest.approx([2 / 3 * k for k in range(1, 9)], abs=0.01)


def test_partial_counts_backbone_groups_on_top_of_the_head():
    assert plan("partial", trainable_groups=2).trainable(0) == (False, False, True, True, True)
    assert plan("partial", trainable_groups=0).trainable(0) == (False,) * 4 + (True,)
    assert all(plan("partial", trainable_groups=4).trainable(0))


def test_lp_ft_probes_then_trains_everything():
    p = plan("lp_ft", probe_epochs=3)
    assert [count(p, e) for e in range(5)] == [1, 1, 1, 5, 5]
    assert p.head_only_through(2) and not p.head_only_through(3)


@pytest.mark.parametrize("groups, mask", [
    (["stage1"], (False, True, False, False, True)),
    (["stem", "stage3"], (True, False, False, True, True)),
    ([0, -1], (True, False, False, True, True)),  # indices from the stem, or from the top
    ("stage1", (False, True, False, False, True)),  # one group alone, as a search space names it
    (-1, (False, False, False, True, True)),
    ([], (False, False, False, False, True)),  # the probe
    ("all", (True, True, True, True, True)),  # the full fine-tune
])
def test_surgical_trains_the_chosen_groups_wherever_they_are(groups, mask):
    p = plan("surgical", groups=groups)
    assert all(p.trainable(e / 2) == mask for e in range(20))
    assert p.head_only_through(9) == (not any(mask[:-1]))  # feature caching: only for the probe
    assert not p.backbone_stats_frozen  # the chosen groups train as in a full fine-tune


@pytest.mark.parametrize("groups", [["stage9"], ["head"], [4], [-5], "stage9", 4, None, [True]])
def test_surgical_names_the_groups_a_model_has_when_it_gets_others(groups):
    with pytest.raises(UserError) as err:
        plan("surgical", groups=groups)
    assert "stem, stage1, stage2, stage3" in str(err.value) and "\n" not in str(err.value)


def test_bitfit_moves_biases_and_the_head_in_every_group_and_keeps_statistics():
    p = plan("bitfit")
    assert all(p.trainable(0)) and not p.head_only_through(0) and p.backbone_stats_frozen
    assert p.trains_param("stage2", "blocks.1.0.bn1.bias")
    assert p.trains_param("stage2", "blocks.1.0.attn.qkv.bias")
    assert not p.trains_param("stage2", "blocks.1.0.bn1.weight")
    assert not p.trains_param("stage2", "blocks.1.0.relative_position_bias_table")
    assert p.trains_param("head", "classifier.weight")


def test_lora_moves_the_adapters_and_the_head_only():
    p = plan("lora")
    assert all(p.trainable(0)) and not p.head_only_through(0) and p.backbone_stats_frozen
    assert p.trains_param("stage1", "blocks.0.0.conv.lora_A.default.weight")
    assert not p.trains_param("stage1", "blocks.0.0.conv.base_layer.weight")
    assert not p.trains_param("stage1", "blocks.0.0.bn1.bias")
    assert p.trains_param("head", "classifier.bias")


@pytest.mark.parametrize("knob, value, message", [
    ("rank", 0, "strategy.rank=0 is not valid; allowed: an integer >= 1"),
    ("alpha", 0, "strategy.alpha=0 is not valid; allowed: a number > 0"),
    ("dropout", 1.0, "strategy.dropout=1.0 is not valid; allowed: a number >= 0 and < 1"),
])
def test_lora_knobs_are_checked(knob, value, message):
    with pytest.raises(UserError, match=message):
        plan("lora", **{knob: value})


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_what_trains_only_ever_grows(name):
    """Checkpoints and the feature cache rely on it: what has trained is what trains now."""
    p = plan(name, unfreeze_every=0.7)
    masks = [p.trainable(s / 10) for s in range(100)]
    for before, after in zip(masks, masks[1:]):
        assert all(a or not b for b, a in zip(before, after))


def test_lr_scales_divide_by_decay_per_group_from_the_top():
    scales = plan("discriminative", lr_decay=2.6).lr_scales()
    assert scales[-1] == 1.0
    for lower, upper in zip(scales, scales[1:]):
        assert upper / lower == pytest.approx(2.6, rel=1e-12)


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_every_strategy_is_chosen_by_name_and_its_settings_plan_a_run_that_trains_the_head(name, tmp_path):
    from ftbench.config import group_names, validate_config
    from tests.helpers import make_cfg

    cfg = make_cfg(f"strategy={name}", "model.name=test_efficientnet", "model.weights=none", run_dir=tmp_path)
    validate_config(cfg)  # its config file holds only settings the strategy accepts
    p = build_plan(cfg.strategy, group_names(cfg.model.name), cfg.trainer.max_epochs)
    assert cfg.strategy.name == name
    assert all(p.trainable(epoch)[-1] for epoch in range(cfg.trainer.max_epochs))
