"""W&B logging: offline without credentials, never hanging without a server, no secrets kept."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ftbench.tracking.flat import flatten, leaves
from ftbench.tracking.loggers import default_group, has_wandb_credentials, resolve_mode
from ftbench.train import fit
from tests.helpers import FAST, logged_run, make_cfg, table_rows

SECRET = "ftbench-test-secret-0123456789abcdef0123456789abcdef"


def test_auto_mode_is_offline_without_credentials_and_online_with_them(no_credentials, monkeypatch,
                                                                       tmp_path):
    assert not has_wandb_credentials() and resolve_mode("auto") == "offline"
    netrc = tmp_path / "home" / ".netrc"
    netrc.parent.mkdir(parents=True)
    netrc.write_text("machine api.wandb.ai\n  login user\n  password abc\n")
    assert has_wandb_credentials() and resolve_mode("auto") == "online"
    assert resolve_mode("disabled") == "disabled"
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert resolve_mode("auto") == "offline"


def test_offline_run_logs_config_metrics_lrs_and_result(no_credentials, tmp_path, capsys, monkeypatch):
    overrides = [*FAST, "logger=wandb", "strategy=discriminative", "+optimizer.api_key=" + SECRET]
    monkeypatch.setattr(sys, "argv", ["ftbench.train", *overrides])  # W&B records the command line
    result = fit(make_cfg(*overrides, run_dir=tmp_path), tmp_path)

    assert "wandb sync" in capsys.readouterr().err
    run = logged_run(tmp_path)
    group_names = [g["name"] for g in result["groups"]]
    assert {"val_acc", "train_loss_epoch", "val_loss"} <= run["history"]
    assert {f"lr/{name}" for name in group_names} <= run["history"]
    # flat and typed, for W&B's parallel-coordinates and scatter panels
    assert run["config"]["strategy"] == "discriminative" and run["config"]["model"] == "test_efficientnet"
    assert run["config"]["strategy.lr_decay"] == 1.6 and run["config"]["trainer.max_epochs"] == 2
    assert run["config"]["optimizer.betas"] == [0.9, 0.999]
    assert not any(isinstance(v, dict) for k, v in run["config"].items() if k != "_wandb")
    assert not any(key.startswith("logger") for key in run["config"])
    assert run["config"]["optimizer.api_key"] == "***"
    assert run["summary"]["result"]["metrics"]["test_acc"] == pytest.approx(result["metrics"]["test_acc"])
    assert run["summary"]["cost"]["train_images"] == result["cost"]["train_images"]
    logged = [p for p in (tmp_path / "wandb").rglob("*") if p.is_file()]
    assert any(p.suffix == ".wandb" for p in logged)
    assert not [p for p in logged if SECRET.encode() in p.read_bytes()]


def test_a_config_is_flat_dotted_leaves_with_each_node_named_by_its_name():
    config = {"strategy": {"name": "gradual", "lr": 0.01}, "optimizer": {"betas": [0.9, 0.99]},
              "model": {"name": None}, "seed": 0}
    assert leaves(config) == {"strategy.name": "gradual", "strategy.lr": 0.01,
                              "optimizer.betas": [0.9, 0.99], "model.name": None, "seed": 0}
    assert flatten(config) == {"strategy": "gradual", "strategy.lr": 0.01,
                               "optimizer.betas": [0.9, 0.99], "model.name": None, "seed": 0}


def test_disabled_mode_leaves_no_run_folder(no_credentials, tmp_path):
    cfg = make_cfg(*FAST, "logger=wandb", "logger.mode=disabled", run_dir=tmp_path)
    result = fit(cfg, tmp_path)
    assert result["metrics"]["test_acc"] is not None
    assert not (tmp_path / "wandb").exists()


@pytest.mark.slow
def test_unreachable_server_falls_back_to_offline_and_keeps_the_key_secret(no_credentials, tmp_path):
    env = {**os.environ, "WANDB_API_KEY": SECRET, "WANDB_BASE_URL": "http://127.0.0.1:9"}
    cmd = [sys.executable, "-m", "ftbench.train", f"hydra.run.dir={tmp_path}", "logger=wandb",
           "logger.init_timeout=5", *FAST]
    # The timeout only guards against a hang; the run gives up on the server after 5 s.
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)

    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "unreachable" in proc.stderr and "wandb sync" in proc.stderr
    assert json.loads((tmp_path / "result.json").read_text())["status"] == "completed"
    assert "val_acc" in logged_run(tmp_path)["history"]
    assert SECRET not in proc.stdout + proc.stderr
    assert not any(SECRET in p.read_text(errors="ignore") for p in tmp_path.rglob("*") if p.is_file())


def test_runs_of_one_wandb_sweep_share_a_group(monkeypatch):
    monkeypatch.setenv("WANDB_SWEEP_ID", "abc123")
    assert default_group() == "sweep-abc123"


def test_online_mode_without_a_key_says_no_key_is_configured_and_logs_offline(no_credentials, tmp_path,
                                                                              capsys):
    cfg = make_cfg(*FAST, "logger=wandb", "logger.mode=online", "trainer.max_epochs=1", run_dir=tmp_path)
    fit(cfg, tmp_path)
    err = capsys.readouterr().err
    assert "logger.mode=online, but no W&B API key is configured" in err
    assert "unreachable" not in err
    assert err.count("wandb sync") == 1  # the hint once, W&B's own closing lines quiet
    assert "val_acc" in logged_run(tmp_path)["history"]


@pytest.mark.slow
def test_a_wandb_multirun_logs_its_comparison_in_one_summary_run_of_its_group(no_credentials, tmp_path,
                                                                             monkeypatch, capsys):
    from ftbench.train import main

    monkeypatch.setenv("HYDRA_FULL_ERROR", "0")
    monkeypatch.setattr(sys, "argv", ["ftbench.train", "-m", f"hydra.sweep.dir={tmp_path}",
                                      "hydra.sweep.subdir=${hydra.job.num}", *FAST, "logger=wandb",
                                      "strategy=linear_probe,full", "seed=0,1"])
    main()
    err = capsys.readouterr().err

    summary = logged_run(tmp_path)  # the sweep folder's own W&B run
    jobs = [logged_run(tmp_path / str(i)) for i in range(4)]
    assert summary["group"] == jobs[0]["group"] == jobs[3]["group"] == str(tmp_path)
    logged = summary["summary"]  # W&B keeps what a media value is under <key>/_type
    assert logged["comparison/runs/_type"] == logged["comparison/strategies/_type"] == "table-file"
    assert logged["plots/accuracy_vs_flops/_type"] == logged["plots/learning_curves/_type"] == "image-file"
    runs = table_rows(tmp_path, "comparison/runs")
    results = [json.loads((tmp_path / str(i) / "result.json").read_text()) for i in range(4)]
    assert sorted((r["strategy"], r["seed"]) for r in runs) == sorted(
        (r["strategy"], r["seed"]) for r in results)
    for row in runs:
        (result,) = [r for r in results if (r["strategy"], r["seed"]) == (row["strategy"], row["seed"])]
        assert row["test_acc"] == pytest.approx(result["metrics"]["test_acc"])
        assert row["train_flops"] == pytest.approx(result["cost"]["train_flops"])
        assert row["trainable_params"] == result["cost"]["trainable_params"]
        assert row["shift_acc"] == pytest.approx(result["metrics"]["shift"]["mean"])  # eval.shifts
    strategies = table_rows(tmp_path, "comparison/strategies")
    assert [(r["strategy"], r["test_acc_n"]) for r in strategies] == [("linear_probe", 2), ("full", 2)]
    images = list(tmp_path.glob("wandb/offline-run-*/files/media/images/plots/*.png"))
    assert {p.name.split("_")[0] for p in images} >= {"accuracy", "learning"}
    # one `wandb sync` line for the whole multirun, naming the jobs' runs and the summary's
    (hint,) = [line for line in err.splitlines() if "wandb sync" in line]
    assert f"{tmp_path}/*/wandb/offline-run-*" in hint and f"{tmp_path}/wandb/offline-run-*" in hint


def test_the_sync_command_names_every_offline_run_of_a_sweep(tmp_path):
    from ftbench.tracking.loggers import sync_command

    assert sync_command(tmp_path) is None
    for folder in ("0/wandb/offline-run-a", "1/wandb/offline-run-b", "wandb/offline-run-c"):
        (tmp_path / folder).mkdir(parents=True)
    assert sync_command(tmp_path) == (f"wandb sync {tmp_path}/*/wandb/offline-run-* "
                                      f"{tmp_path}/wandb/offline-run-*")
