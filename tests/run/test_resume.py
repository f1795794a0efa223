"""Interrupted runs resume to exactly the result of an uninterrupted one, on CPU."""

from __future__ import annotations

import csv
import logging
import os
import signal
import time
from types import SimpleNamespace

import pytest
import torch
from lightning import Callback
from lightning.pytorch.utilities.exceptions import SIGTERMException
from safetensors.torch import save_file

from ftbench.cost.meter import Meter
from ftbench.models.weights import read_state_dict
from ftbench.run.checkpoints import LEFT_OUT, left_out_keys
from ftbench.run.failures import UserError
from tests.helpers import Crash, CrashAtEpoch, SigtermAtEpochEnd
from tests.helpers import fit_schedule as _fit


class SigtermMidEpoch(Callback):
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.current_epoch == 1 and batch_idx == 0:
            os.kill(os.getpid(), signal.SIGTERM)


def _assert_same_run(a, a_dir, b, b_dir):
    assert b["metrics"] == a["metrics"]
    strip = ("lrs", "train_loss", "val_acc", "val_loss", "trainable_groups", "epoch")
    assert [{k: h[k] for k in strip} for h in b["history"]] == \
        [{k: h[k] for k in strip} for h in a["history"]]
    wa, wb = read_state_dict(a_dir / "model.safetensors"), read_state_dict(b_dir / "model.safetensors")
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.parametrize("strategy", [["strategy=gradual"],
                                      ["strategy=lp_ft", "strategy.probe_epochs=1"],
                                      ["strategy=surgical", "strategy.groups=[stage2]"],
                                      ["strategy=lora", "strategy.dropout=0.2"]],
                         ids=["gradual", "lp_ft", "surgical", "lora"])
@pytest.mark.slow  # over a few seconds: make test runs it, make test-fast leaves it out
def test_a_run_crashed_mid_schedule_resumes_to_the_uninterrupted_result(tmp_path, strategy, pretrained):
    weights = f"model.weights={pretrained[0]}"
    whole = _fit(tmp_path / "whole", *strategy, weights)
    with pytest.raises(Crash):
        _fit(tmp_path / "cut", *strategy, weights, callbacks=[CrashAtEpoch(1)])
    assert not (tmp_path / "cut" / "result.json").exists()
    saved = torch.load(tmp_path / "cut" / "last.ckpt", weights_only=True)
    assert saved["epoch"] == 0  # the last completed epoch
    resumed = _fit(tmp_path / "cut", *strategy, weights, ckpt_path=tmp_path / "cut" / "last.ckpt")
    _assert_same_run(whole, tmp_path / "whole", resumed, tmp_path / "cut")


def test_a_resumed_gradual_run_trains_exactly_the_groups_of_its_schedule(tmp_path, pretrained):
    path, groups = pretrained
    run_dir = tmp_path / "run"
    with pytest.raises(Crash):
        _fit(run_dir, "strategy=gradual", f"model.weights={path}", callbacks=[CrashAtEpoch(2)])
    result = _fit(run_dir, "strategy=gradual", f"model.weights={path}", ckpt_path=run_dir / "last.ckpt")
    names = [g.name for g in groups]
    assert [h["trainable_groups"] for h in result["history"]] == [names[-1:], names[-2:], names[-3:]]
    # after the resume, groups below the schedule's reach are still bit-identical to the start
    before, after = read_state_dict(path), read_state_dict(run_dir / "model.safetensors")
    below = {n.rsplit(".", 1)[0] for g in groups[:-3] for n in g.param_names}
    frozen = [k for k in before if k.rsplit(".", 1)[0] in below]
    assert frozen and all(torch.equal(before[k], after[k]) for k in frozen)
    reached = {n for g in groups[-3:-1] for n in g.param_names}
    assert all(not torch.equal(before[k], after[k]) for k in reached if k.endswith("weight"))


@pytest.mark.slow  # over a few seconds: make test runs it, make test-fast leaves it out
def test_sigterm_saves_a_checkpoint_that_resumes_exactly(tmp_path):
    whole = _fit(tmp_path / "whole", "strategy=gradual")
    with pytest.raises(SIGTERMException):
        _fit(tmp_path / "cut", "strategy=gradual", callbacks=[SigtermAtEpochEnd()])
    assert torch.load(tmp_path / "cut" / "last.ckpt", weights_only=True)["global_step"] == 3  # one epoch
    resumed = _fit(tmp_path / "cut", "strategy=gradual", ckpt_path=tmp_path / "cut" / "last.ckpt")
    _assert_same_run(whole, tmp_path / "whole", resumed, tmp_path / "cut")


@pytest.mark.slow  # over a few seconds: make test runs it, make test-fast leaves it out
def test_a_run_resumed_mid_epoch_keeps_its_schedule_and_counts_its_cost_once(tmp_path):
    """Lightning starts no epoch on such a resume: the epoch's state must come back whole."""
    start = time.perf_counter()
    whole = _fit(tmp_path / "whole", "strategy=gradual")
    with pytest.raises(SIGTERMException):
        _fit(tmp_path / "cut", "strategy=gradual", callbacks=[SigtermMidEpoch()])
    saved = torch.load(tmp_path / "cut" / "last.ckpt", weights_only=True)
    assert saved["global_step"] == 4  # epoch 0's 3 steps and one of epoch 1
    resumed = _fit(tmp_path / "cut", "strategy=gradual", ckpt_path=tmp_path / "cut" / "last.ckpt")
    elapsed = time.perf_counter() - start
    for key in ("trainable_groups", "lrs", "trainable_params"):
        assert [h[key] for h in resumed["history"]] == [h[key] for h in whole["history"]], key
    for key in ("train_images", "train_flops", "epoch_train_flops", "train_memory_mb", "train_memory"):
        assert resumed["cost"][key] == whole["cost"][key], key
    assert 0 < resumed["cost"]["train_seconds"] < elapsed
    assert all(0 < h["train_seconds"] < elapsed for h in resumed["history"])


def _logged(run_dir) -> list[tuple]:
    """metrics.csv as (step, epoch, the names logged), row by row."""
    with open(run_dir / "logs" / "metrics.csv", newline="") as f:
        return [(r["step"], r["epoch"], sorted(k for k, v in r.items() if v and k not in ("step", "epoch")))
                for r in csv.DictReader(f)]


@pytest.mark.parametrize("interrupt", [CrashAtEpoch(2), SigtermMidEpoch()], ids=["crash", "sigterm"])
@pytest.mark.slow  # over a few seconds: make test runs it, make test-fast leaves it out
def test_a_resumed_run_continues_its_metrics_csv(tmp_path, interrupt):
    log_steps = "trainer.log_every_n_steps=2"
    _fit(tmp_path / "whole", "strategy=gradual", log_steps)
    with pytest.raises((Crash, SIGTERMException)):
        _fit(tmp_path / "cut", "strategy=gradual", log_steps, callbacks=[interrupt])
    _fit(tmp_path / "cut", "strategy=gradual", log_steps, ckpt_path=tmp_path / "cut" / "last.ckpt")
    assert _logged(tmp_path / "cut") == _logged(tmp_path / "whole")


def test_checkpoints_leave_out_the_groups_that_have_not_trained_yet(tmp_path, pretrained):
    path, groups = pretrained
    run_dir = tmp_path / "run"
    with pytest.raises(Crash):
        _fit(run_dir, "strategy=gradual", f"model.weights={path}", callbacks=[CrashAtEpoch(2)])
    saved = torch.load(run_dir / "last.ckpt", weights_only=True)
    assert saved["epoch"] == 1  # epochs 0 and 1 trained the top two groups
    trained = {f"model.{n}" for g in groups[-2:] for n in g.param_names}
    left_out = left_out_keys(saved)
    assert list(saved[LEFT_OUT]) == [g.name for g in groups[:-2]]
    assert trained <= saved["state_dict"].keys() and not trained & left_out
    assert not left_out & saved["state_dict"].keys()
    start = read_state_dict(path)
    assert {f"model.{k}" for k in start} == left_out | saved["state_dict"].keys()  # nothing lost


def test_a_surgical_checkpoint_leaves_out_every_group_it_does_not_train(tmp_path, pretrained):
    path, groups = pretrained
    run_dir = tmp_path / "run"
    with pytest.raises(Crash):
        _fit(run_dir, "strategy=surgical", "strategy.groups=[stage2]", f"model.weights={path}",
             callbacks=[CrashAtEpoch(1)])
    saved = torch.load(run_dir / "last.ckpt", weights_only=True)
    assert list(saved[LEFT_OUT]) == [g.name for g in groups if g.name not in ("stage2", "head")]
    trained = {f"model.{n}" for g in groups if g.name in ("stage2", "head") for n in g.param_names}
    assert trained <= saved["state_dict"].keys() and not trained & left_out_keys(saved)


def test_a_resume_from_other_starting_weights_is_refused_and_changes_nothing(tmp_path, pretrained):
    path, groups = pretrained
    run_dir = tmp_path / "run"
    with pytest.raises(Crash):
        _fit(run_dir, "strategy=linear_probe", f"model.weights={path}", callbacks=[CrashAtEpoch(1)])
    changed = {k: v.clone() for k, v in read_state_dict(path).items()}
    changed["conv_stem.weight"] += 0.01
    other = tmp_path / "other.safetensors"
    save_file(changed, other)
    checkpoint = (run_dir / "last.ckpt").read_bytes()
    before = sorted(p.relative_to(run_dir) for p in run_dir.rglob("*"))
    with pytest.raises(UserError, match=f"starting weights of groups {groups[0].name} differ"):
        _fit(run_dir, "strategy=linear_probe", f"model.weights={other}", ckpt_path=run_dir / "last.ckpt")
    assert (run_dir / "last.ckpt").read_bytes() == checkpoint
    assert sorted(p.relative_to(run_dir) for p in run_dir.rglob("*")) == before  # logs kept


def test_the_seconds_an_epoch_ran_before_a_signal_count_after_a_mid_epoch_resume():
    trainer = SimpleNamespace(current_epoch=0, global_step=0, loggers=[])
    module = SimpleNamespace(device=torch.device("cpu"), log=lambda *args, **kwargs: None,
                             groups=[SimpleNamespace(name="head")], trainable_at=lambda p: (True,),
                             trainable=(True,),
                             group_lrs=lambda mask: [0.1], trainable_params=lambda mask: 1,
                             plan=SimpleNamespace(trained_through=lambda epoch: (True,)),
                             epoch_value=lambda name: None)
    before = Meter()
    before.on_train_epoch_start(trainer, module)
    time.sleep(0.2)
    state = before.state_dict()  # saved by the signal, mid-epoch
    after = Meter()
    after.load_state_dict(state)
    after.on_train_start(trainer, module)  # Lightning starts no epoch on a mid-epoch resume
    after.on_train_epoch_end(trainer, module)
    assert after.epoch_seconds[0] >= 0.2 and after.train_seconds == after.epoch_seconds[0]
    assert after.history[0].lrs == [0.1]  # the epoch's starting LRs came back too


def test_an_interrupt_saves_its_checkpoint_without_a_notice_from_lightning(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    with pytest.raises(SIGTERMException):
        _fit(tmp_path, callbacks=[SigtermAtEpochEnd()])
    assert f"interrupted: checkpoint saved; continue with: python -m ftbench.train resume={tmp_path}" \
        in caplog.text
    assert "weights_only" not in caplog.text  # "`weights_only` was not set, defaulting to `False`"


@pytest.mark.slow
def test_a_run_folder_saved_by_the_previous_release_resumes_to_the_end(tmp_path, cli):
    """``tests/data/run_before_layout``: a gradual run the previous release saved after its first
    epoch (its config names ``ftbench.tracking.loggers.RunCSVLogger`` and has no ``run:`` node)."""
    import json
    import shutil
    from pathlib import Path

    run_dir = tmp_path / "run"
    shutil.copytree(Path(__file__).parents[1] / "data" / "run_before_layout", run_dir)
    code, stderr = cli(f"resume={run_dir}")
    assert code == 0, stderr
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "completed" and result["metrics"]["epochs"] == 3
    assert [h["epoch"] for h in result["history"]] == [0, 1, 2]
    # the saved epoch is continued, not trained again
    assert result["history"][0]["train_loss"] == pytest.approx(2.298888921737671, abs=0)
    assert result["history"][0]["trainable_groups"] == ["head"]
    assert (run_dir / "model.safetensors").is_file()
