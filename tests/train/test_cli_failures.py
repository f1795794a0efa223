"""Failures as a user meets them on the command line: one line, an exit code, nothing half-written."""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from hydra.core.override_parser.overrides_parser import OverridesParser
from lightning.pytorch.utilities.exceptions import SIGTERMException

from ftbench.finetune.divergence import DivergenceGuard
from ftbench.models.weights import read_state_dict
from ftbench.report import cli as report
from ftbench.run.failures import Diverged, run_guarded
from ftbench.train import fit
from tests.helpers import FAST, make_cfg
from tests.helpers import train_cli as train


@pytest.mark.parametrize("args, message", [
    ([*FAST, "strategy=foo"], "strategy='foo' is not valid; allowed: bitfit, discriminative, full, gradual"),
    ([*FAST, "model=foo"], "model='foo' is not valid; allowed: convnext_tiny"),
    ([*FAST, "strategy.lr_dekay=2"], "strategy.lr_dekay is not a setting"),
    ([*FAST, "+strategy=full"], "Multiple values for strategy"),
    ([*FAST, "optimizer.name=sgd", "+optimizer.momentum=0"],
     "+optimizer.momentum=... adds a setting, but optimizer.momentum exists already; set it with "
     "optimizer.momentum=..."),
    ([*FAST, "strategy.lr=[1"], "cannot parse the override 'strategy.lr=[1'"),
    # a value fit() refuses (the full table of those is in test_validation.py)
    ([*FAST, "strategy=gradual", "strategy.unfreeze_every=0"], "strategy.unfreeze_every=0 is not valid"),
    (["resume=no/such/run"], "resume='no/such/run' is not a run folder"),
    (["resume=no/such/run", "seed=3"], "continues the run with its own config; allowed: no other"),
])
def test_a_bad_invocation_is_one_line_a_nonzero_exit_and_no_result(tmp_path, cli, args, message):
    code, stderr = cli(f"hydra.run.dir={tmp_path}", *args)
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ftbench: error: "), stderr
    assert message in lines[0]
    assert not (tmp_path / "result.json").exists()


@pytest.mark.slow  # over a few seconds: make test runs it, make test-fast leaves it out
def test_a_sweep_survives_a_bad_and_a_diverging_job_and_the_report_shows_them(tmp_path, cli, capsys):
    code, stderr = cli("-m", f"hydra.sweep.dir={tmp_path}", "hydra.sweep.subdir=${hydra.job.num}",
                       *FAST, "trainer.max_epochs=1", "strategy=full", "strategy.lr=0.001,-1,1e30")
    assert code == 0, stderr[-2000:]
    results = [json.loads((tmp_path / str(i) / "result.json").read_text()) for i in range(3)]
    assert [r["status"] for r in results] == ["completed", "failed", "diverged"]
    assert results[1]["error"] == "strategy.lr=-1 is not valid; allowed: a number > 0"
    assert "training loss is nan" in results[2]["error"] or "training loss is inf" in results[2]["error"]
    for failed in results[1:]:
        assert "metrics" not in failed
        assert failed["strategy"] == "full" and failed["seed"] == 0 and failed["config"]
    assert report.main([str(tmp_path)]) == 0
    table = capsys.readouterr().out
    assert "| full | 1 |" in table
    assert "| failed | full | 0 | strategy.lr=-1 is not valid" in table
    assert "| diverged | full | 0 | training loss is" in table


def test_a_diverging_single_run_says_so_and_records_it(tmp_path, cli):
    code, stderr = cli(f"hydra.run.dir={tmp_path}", *FAST, "strategy=full", "strategy.lr=1e30")
    assert code == 3
    assert stderr.strip().splitlines()[-1].startswith("ftbench: error: diverged: training loss is")
    assert "Traceback" not in stderr
    assert json.loads((tmp_path / "result.json").read_text())["status"] == "diverged"
    assert not (tmp_path / "model.safetensors").exists()


@pytest.mark.slow
def test_a_run_killed_with_sigkill_resumes_to_the_uninterrupted_result(tmp_path):
    args = [*(a for a in FAST if not a.startswith("+trainer.limit_train_batches")),
            "+trainer.limit_train_batches=6", "strategy=gradual", "trainer.max_epochs=3",
            "model.drop_rate=0.2"]
    cut = tmp_path / "cut"
    proc = subprocess.Popen([sys.executable, "-m", "ftbench.train", f"hydra.run.dir={cut}", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not (cut / "last.ckpt").exists() and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert not (cut / "result.json").exists() and not (cut / "model.safetensors").exists()
    assert torch.load(cut / "last.ckpt", weights_only=True)["epoch"] in (0, 1)  # whole, readable

    resumed = train(f"resume={cut}")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    whole = tmp_path / "whole"
    fit(make_cfg(*args, run_dir=whole), whole)  # the same run, never interrupted
    a, b = (json.loads((d / "result.json").read_text()) for d in (whole, cut))
    assert b["status"] == "completed" and b["metrics"] == a["metrics"]
    assert [h["trainable_groups"] for h in b["history"]] == [h["trainable_groups"] for h in a["history"]]
    wa, wb = read_state_dict(whole / "model.safetensors"), read_state_dict(cut / "model.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert train(f"resume={cut}").stderr.strip().endswith("has already completed (result.json)")


def test_no_secret_reaches_results_saved_configs_or_logs(tmp_path, cli, monkeypatch):
    secret = "s3cr3t-wandb-key-0123456789"
    monkeypatch.setenv("WANDB_API_KEY", secret)
    code, stderr = cli(f"hydra.run.dir={tmp_path}", *FAST, "trainer.max_epochs=1",
                       "+wandb.api_key=plain-text-key-9876", "+notes.remote=${oc.env:WANDB_API_KEY}")
    assert code == 0, stderr[-2000:]
    written = [p for p in Path(tmp_path).rglob("*") if p.is_file() and p.suffix in
               (".json", ".yaml", ".log", ".csv")]
    assert {"result.json", "config.yaml", "overrides.yaml", "train.log"} <= {p.name for p in written}
    for path in written:
        text = path.read_text()
        assert secret not in text and "plain-text-key-9876" not in text, path
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["config"]["wandb"]["api_key"] == "***"
    assert result["config"]["notes"]["remote"] == "***"


def test_the_deferred_divergence_check_reads_the_flag_every_n_steps_and_at_epoch_end():
    """The accelerator path (no read-back per step), driven with CPU losses."""
    trainer = SimpleNamespace(current_epoch=0, global_step=0)
    module = SimpleNamespace(plan=SimpleNamespace(lr=0.1), device=torch.device("cpu"))
    losses = [1.0, float("nan"), 1.0, 1.0]

    def deferred_guard(every_n_steps: int) -> DivergenceGuard:
        guard = DivergenceGuard(every_n_steps=every_n_steps, read_every_step=False)
        guard.on_fit_start(trainer, module)
        return guard

    guard = deferred_guard(3)
    guard.on_train_batch_end(trainer, module, {"loss": torch.tensor(losses[0])}, None, 0)
    guard.on_train_batch_end(trainer, module, {"loss": torch.tensor(losses[1])}, None, 1)  # not read yet
    with pytest.raises(Diverged, match="not finite"):
        guard.on_train_batch_end(trainer, module, {"loss": torch.tensor(losses[2])}, None, 2)

    guard = deferred_guard(20)
    for i, loss in enumerate(losses):
        guard.on_train_batch_end(trainer, module, {"loss": torch.tensor(loss)}, None, i)
    with pytest.raises(Diverged):  # the epoch's end reads what the interval has not
        guard.on_train_epoch_end(trainer, module)

    healthy = deferred_guard(2)
    for i in range(4):
        healthy.on_train_batch_end(trainer, module, {"loss": torch.tensor(1.0)}, None, i)
    healthy.on_train_epoch_end(trainer, module)


def test_on_cpu_the_divergence_guard_reads_every_step_and_names_the_value():
    trainer = SimpleNamespace(current_epoch=1, global_step=7)
    module = SimpleNamespace(plan=SimpleNamespace(lr=0.1), device=torch.device("cpu"))
    guard = DivergenceGuard(every_n_steps=20)
    guard.on_fit_start(trainer, module)
    guard.on_train_batch_end(trainer, module, {"loss": torch.tensor(1.0)}, None, 0)
    with pytest.raises(Diverged, match="training loss is inf at epoch 1, step 7"):
        guard.on_train_batch_end(trainer, module, {"loss": torch.tensor(float("inf"))}, None, 1)


def test_a_run_stopped_by_sigterm_exits_143_naming_the_command_that_continues_it(tmp_path, capsys):
    def stopped() -> dict:
        raise SIGTERMException

    with pytest.raises(SystemExit) as exit_:
        run_guarded(stopped, lambda error, status: None, tmp_path, multirun=False)
    assert exit_.value.code == 143
    assert capsys.readouterr().err.strip() == (
        f"ftbench: error: interrupted by SIGTERM; continue with: python -m ftbench.train resume={tmp_path}")
    assert not (tmp_path / "result.json").exists()  # an interrupted run is continued, not recorded


@pytest.mark.slow  # over a few seconds: make test runs it, make test-fast leaves it out
def test_a_multirun_stopped_by_sigterm_reports_its_jobs_and_names_a_command_that_pastes(
        tmp_path, cli, monkeypatch):
    import ftbench.train as train_module
    from tests.helpers import SigtermAtEpochEnd

    def fit_stopped_in_the_second_job(cfg, run_dir, ckpt_path=None, callbacks=(), **kwargs):
        stop = [SigtermAtEpochEnd()] if cfg.seed == 1 else []
        return fit(cfg, run_dir, ckpt_path, [*callbacks, *stop], **kwargs)

    monkeypatch.setattr(train_module, "fit", fit_stopped_in_the_second_job)
    code, stderr = cli("-m", f"hydra.sweep.dir={tmp_path}", *FAST, "strategy=full", "seed=0,1,2")
    assert code == 143, stderr
    prefix = "ftbench: error: interrupted by SIGTERM; continue with: "
    line = stderr.strip().splitlines()[-1]
    assert line.startswith(prefix)
    (stopped,) = tmp_path.glob("1_*")
    assert "=" in stopped.name and "," in stopped.name  # what Hydra would parse, unquoted
    command = shlex.split(line[len(prefix):])
    assert command[:3] == ["python", "-m", "ftbench.train"] and len(command) == 4
    assert OverridesParser.create().parse_override(command[3]).value() == str(stopped)

    md = (tmp_path / "report.md").read_text()  # the report of the jobs that ran
    assert "| full | 1 | 1 |" in md
    assert f"interrupted after a checkpoint; continue with: {line[len(prefix):]} | {stopped.name} |" in md

    monkeypatch.undo()  # the command, pasted, continues the job
    assert cli(command[3])[0] == 0
    assert json.loads((stopped / "result.json").read_text())["status"] == "completed"
