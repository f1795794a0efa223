import pytest
from omegaconf import OmegaConf

from ftbench.errors import UserError
from ftbench.strategies import STRATEGIES, build_plan

BASE = {"lr": 1e-3, "lr_decay": 2.0, "unfreeze_every": 2, "trainable_groups": 2,
        "probe_epochs": 3}


def plan(name: str, num_groups: int = 5, max_epochs: int = 10, **kw):
    return build_plan(OmegaConf.create({**BASE, "name": name, **kw}), num_groups, max_epochs)


def test_linear_probe_trains_only_the_head_every_epoch():
    p = plan("linear_probe")
    assert all(p.trainable_mask(e) == [False] * 4 + [True] for e in range(10))


@pytest.mark.parametrize("name", ["full", "discriminative"])
def test_full_and_discriminative_train_everything(name):
    assert all(all(plan(name).trainable_mask(e)) for e in range(10))


def test_gradual_unfreezes_one_group_from_the_top_every_n_epochs():
    p = plan("gradual", unfreeze_every=2)
    assert [p.num_trainable(e) for e in range(10)] == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert p.trainable_mask(2) == [False, False, False, True, True]


def test_partial_counts_backbone_groups_on_top_of_the_head():
    assert plan("partial", trainable_groups=2).trainable_mask(0) == [False, False, True, True, True]
    assert plan("partial", trainable_groups=0).trainable_mask(0) == [False] * 4 + [True]
    assert all(plan("partial", trainable_groups=4).trainable_mask(0))


def test_lp_ft_probes_then_trains_everything():
    p = plan("lp_ft", probe_epochs=3)
    assert [p.num_trainable(e) for e in range(5)] == [1, 1, 1, 5, 5]


def test_lr_scales_divide_by_decay_per_group_from_the_top():
    scales = plan("discriminative", lr_decay=2.6).lr_scales()
    assert scales[-1] == 1.0
    for lower, upper in zip(scales, scales[1:]):
        assert upper / lower == pytest.approx(2.6, rel=1e-12)


@pytest.mark.parametrize("name, override, message", [
    ("nope", {}, "strategy='nope'"),
    ("full", {"lr": 0}, "strategy.lr=0"),
    ("full", {"lr": -1e-3}, "strategy.lr=-0.001"),
    ("discriminative", {"lr_decay": 0.5}, "strategy.lr_decay=0.5"),
    ("gradual", {"unfreeze_every": 0}, "strategy.unfreeze_every=0"),
    ("partial", {"trainable_groups": 5}, "strategy.trainable_groups=5"),
    ("partial", {"trainable_groups": -1}, "strategy.trainable_groups=-1"),
    ("lp_ft", {"probe_epochs": 10}, "strategy.probe_epochs=10"),
    ("lp_ft", {"probe_epochs": 0}, "strategy.probe_epochs=0"),
])
def test_bad_strategy_settings_name_the_value_and_what_is_allowed(name, override, message):
    with pytest.raises(UserError, match="allowed") as err:
        plan(name, **override)
    assert message in str(err.value)


def test_every_strategy_has_a_config_file():
    from pathlib import Path

    from ftbench.train import CONFIG_DIR

    shipped = {p.stem for p in (Path(CONFIG_DIR) / "strategy").glob("*.yaml")}
    assert shipped == set(STRATEGIES)
