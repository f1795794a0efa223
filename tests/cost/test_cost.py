"""The cost block of result.json: FLOPs per phase, evaluation FLOPs, drift, per-epoch figures."""

from __future__ import annotations

import csv
import time

import pytest

from tests.cost.hand_flops import step_flops


def test_linear_probe_cost_is_its_counted_step_times_the_images(run_fit):
    # FAST: 2 epochs x 3 batches of 64; on images, so that every step runs the backbone
    result, run_dir = run_fit("strategy=linear_probe", "data.cache_features=false")
    cost = result["cost"]
    assert len(cost["flop_phases"]) == 1 and cost["flop_phases"][0]["trainable_groups"] == ["head"]
    counted, by_hand = step_flops("test_efficientnet", "linear_probe", batch=4)
    per_image = cost["flop_phases"][0]["flops_per_image"]
    assert per_image == pytest.approx(by_hand / 4, rel=1e-9)
    images_per_epoch = 3 * 64
    assert cost["epoch_train_flops"] == [per_image * images_per_epoch] * 2
    assert cost["train_flops"] == pytest.approx(2 * per_image * images_per_epoch)
    # validation (2 batches per epoch) and test (2 batches) are counted apart, forward only
    eval_per_image = cost["eval_flops_per_image"]["3x32x32"]
    assert 0 < eval_per_image < per_image
    assert cost["eval_flops"] == pytest.approx(eval_per_image * (2 * 128 + 128))
    assert [h["train_flops"] for h in result["history"]] == cost["epoch_train_flops"]
    assert all(h["train_seconds"] > 0 for h in result["history"])
    assert cost["peak_memory_mb"] > 0 and cost["images_per_second"] > 0
    # the frozen backbone did not move at all; the head did
    drift = cost["drift"]
    assert list(drift) == [g["name"] for g in result["groups"]]
    assert all(drift[g] == 0.0 for g in list(drift)[:-1]) and drift["head"] > 0
    with open(run_dir / "logs" / "metrics.csv") as f:
        logged = [row for row in csv.DictReader(f) if row.get("cost/train_flops")]
    assert float(logged[-1]["cost/train_flops"]) == pytest.approx(cost["train_flops"])
    assert float(logged[-1]["drift/head"]) == pytest.approx(drift["head"])


def test_gradual_counts_a_new_phase_each_time_a_group_unfreezes(run_fit):
    result, _ = run_fit("strategy=gradual", "strategy.unfreeze_every=1", "trainer.max_epochs=3")
    phases = result["cost"]["flop_phases"]
    assert [p["first_epoch"] for p in phases] == [0, 1, 2]
    assert [len(p["trainable_groups"]) for p in phases] == [1, 2, 3]
    per_image = [p["flops_per_image"] for p in phases]
    assert per_image == sorted(per_image) and len(set(per_image)) == 3  # each unfrozen group costs
    assert result["cost"]["epoch_train_flops"] == pytest.approx([x * 3 * 64 for x in per_image])
    drift = result["cost"]["drift"]
    names = [g["name"] for g in result["groups"]]
    assert drift[names[0]] == 0.0  # the stem never trained
    assert drift[names[-3]] > 0 and drift[names[-2]] > 0  # the two groups unfrozen later did


def test_cached_features_count_the_one_off_backbone_pass_and_head_only_steps(tmp_path):
    from ftbench.train import fit
    from tests.helpers import FAST, make_cfg

    runs, sizes = {}, {}
    for cache in ("true", "false"):
        cfg = make_cfg(*FAST, "strategy=linear_probe", f"data.cache_features={cache}",
                       run_dir=tmp_path / cache)
        result = fit(cfg, tmp_path / cache)
        runs[cache], sizes = result["cost"], result["data"]
    cached, plain = runs["true"], runs["false"]
    assert cached["feature_cache"]["used"]
    classes = 10
    # evaluation on cached features runs the head only: one (features x classes) product
    (features_key,) = [k for k in cached["eval_flops_per_image"] if "x" not in k]
    features = int(features_key)
    assert cached["eval_flops_per_image"][features_key] == 2 * features * classes
    (phase,) = cached["flop_phases"]  # a step on features: head forward + weight gradient
    assert phase["input"] == [features] and phase["flops_per_image"] == 2 * 2 * features * classes
    # the backbone ran once over each split: its forward is the image forward minus the head
    train_size = sizes["train_size"]
    backbone_forward = plain["eval_flops_per_image"]["3x32x32"] - 2 * features * classes
    extraction = cached["feature_cache"]["flops"]
    assert extraction["train"] == pytest.approx(backbone_forward * train_size)
    assert cached["train_flops"] == pytest.approx(sum(cached["epoch_train_flops"]) + extraction["train"])
    assert cached["eval_flops"] > extraction["val"] + extraction["test"]


def test_validation_inside_fit_is_not_training_time():
    """Lightning runs validation inside fit in the VALIDATING stage: the meter must still see it."""
    from types import SimpleNamespace

    import torch
    from lightning.pytorch.trainer.states import TrainerFn

    from ftbench.cost.meter import Meter

    trainer = SimpleNamespace(current_epoch=0, global_step=0, loggers=[], training=False,
                              state=SimpleNamespace(fn=TrainerFn.FITTING))
    module = SimpleNamespace(device=torch.device("cpu"), log=lambda *args, **kwargs: None,
                             groups=[SimpleNamespace(name="head")], trainable_at=lambda p: (True,),
                             trainable=(True,), group_lrs=lambda mask: [0.1], trainable_params=lambda mask: 1,
                             plan=SimpleNamespace(trained_through=lambda epoch: (True,)),
                             epoch_value=lambda name: None)
    meter = Meter()
    meter.on_train_epoch_start(trainer, module)
    meter.on_validation_start(trainer, module)
    time.sleep(0.5)
    meter.on_validation_end(trainer, module)
    meter.on_train_epoch_end(trainer, module)
    assert meter.epoch_seconds[0] < 0.25


def test_gradual_counts_the_parameters_that_trained_not_the_next_group_to_unfreeze(run_fit):
    # test_efficientnet has 7 groups: 6 epochs unfreeze the top 6, the stem never trains
    result, _ = run_fit("strategy=gradual", "strategy.unfreeze_every=1", "trainer.max_epochs=6")
    groups = {g["name"]: g["params"] for g in result["groups"]}
    trained = set().union(*(h["trainable_groups"] for h in result["history"]))
    assert trained == set(groups) - {"stem"}
    cost = result["cost"]
    assert cost["trainable_params"] == sum(groups[name] for name in trained)
    assert cost["trainable_params"] == result["history"][-1]["trainable_params"]
    assert cost["total_params"] == sum(groups.values()) > cost["trainable_params"]
