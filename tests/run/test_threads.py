"""A run's torch threads: its share of the machine's cores, said when it starts and recorded."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import pytest
import torch
from omegaconf import OmegaConf

from ftbench.config import validate_config
from ftbench.report.collect import Run
from ftbench.report.sections import threads_note
from ftbench.run.failures import UserError
from ftbench.run.threads import (
    WORKERS_ENV,
    ThreadShare,
    copies_started,
    launcher_jobs,
    resolve_threads,
    thread_share,
)
from tests.helpers import FAST, make_cfg

JOBLIB = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
SUBMITIT_LOCAL = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher"
BASIC = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"


@pytest.fixture(autouse=True)
def keep_torch_threads():
    """A run sets torch's thread count for the whole process: put it back after each test."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("setting, cores, workers, omp, expected", [
    ("auto", 8, 1, None, 8),
    ("auto", 8, 2, None, 4),
    ("auto", 8, 3, None, 2),    # cores // workers
    ("auto", 2, 2, None, 1),
    ("auto", 2, 5, None, 1),    # never below one
    ("auto", 16, 2, 4, 4),      # OMP_NUM_THREADS caps auto
    ("auto", 16, 8, 4, 2),      # ... only from above
    (3, 2, 2, None, 3),         # an explicit count wins over the share
    (3, 2, 2, 1, 3),            # ... and over OMP_NUM_THREADS
])
def test_auto_is_the_cores_divided_by_the_workers_and_a_number_wins(setting, cores, workers, omp, expected):
    assert resolve_threads(setting, cores, workers, omp) == expected


@pytest.mark.parametrize("bad", [0, -2, 1.5, "many", True, None])
def test_a_bad_thread_setting_is_one_line(bad):
    with pytest.raises(UserError) as err:
        resolve_threads(bad, 2, 1)
    assert str(err.value) == (f"trainer.threads={bad!r} is not valid; allowed: auto (the cores of this "
                              "machine / the workers on it), or an integer >= 1")


@pytest.mark.parametrize("overrides, message", [
    (["trainer.threads=0"], "trainer.threads=0 is not valid; allowed: auto"),
    (["trainer.threads=lots"], "trainer.threads='lots' is not valid; allowed: auto"),
])
def test_the_config_check_refuses_a_bad_thread_setting(tmp_path, overrides, message):
    with pytest.raises(UserError, match=message) as err:
        validate_config(make_cfg(*FAST, *overrides, run_dir=tmp_path))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("launcher, batch, expected", [
    (None, None, 1),                                      # a single run, or outside Hydra
    ({"_target_": BASIC}, None, 1),                       # one job after another
    ({"_target_": BASIC}, 4, 1),
    ({"_target_": JOBLIB, "n_jobs": 2}, None, 2),
    ({"_target_": JOBLIB, "n_jobs": -1}, None, 8),        # joblib: one job per core
    ({"_target_": JOBLIB, "n_jobs": -2}, None, 7),        # all cores but one
    ({"_target_": JOBLIB, "n_jobs": 4}, 2, 2),            # the tuned comparison launches tune.batch at once
    ({"_target_": JOBLIB, "n_jobs": 2}, 3, 2),
    ({"_target_": SUBMITIT_LOCAL}, 3, 3),
])
def test_the_launcher_says_how_many_jobs_share_the_machine(launcher, batch, expected):
    assert launcher_jobs(OmegaConf.create(launcher) if launcher else None, batch, cores=8) == expected


def test_copies_started_by_hand_are_counted_from_the_environment():
    assert copies_started({}) == 1 and copies_started({WORKERS_ENV: " 3 "}) == 3
    for bad in ("0", "-1", "two", "1.5"):
        with pytest.raises(UserError, match=f"FTBENCH_WORKERS='{bad}' is not valid; allowed: an integer"):
            copies_started({WORKERS_ENV: bad})


def test_a_run_counts_copies_and_launcher_jobs_together(monkeypatch):
    monkeypatch.setattr("ftbench.run.threads.available_cores", lambda: 8)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv(WORKERS_ENV, "2")
    assert thread_share("auto") == ThreadShare(threads=4, setting="auto", cores=8, workers=2)
    jobs = launcher_jobs(OmegaConf.create({"_target_": JOBLIB, "n_jobs": 2}), None, cores=8)
    assert thread_share("auto", jobs).workers == 4 and thread_share("auto", jobs).threads == 2
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    share = thread_share("auto", jobs)
    assert share.threads == 1
    assert share.describe() == "1 torch thread (OMP_NUM_THREADS=1; 8 cores / 4 workers on this machine)"
    explicit = thread_share(make_cfg(*FAST, "trainer.threads=3").trainer.threads)
    assert explicit.describe() == "3 torch threads (trainer.threads=3)"


def test_a_run_applies_its_thread_count_says_it_and_records_it(run_fit, caplog):
    caplog.set_level(logging.INFO, logger="ftbench")
    torch.set_num_threads(1)
    result, run_dir = run_fit("trainer.threads=2", "trainer.max_epochs=1")
    assert result["runtime"] == {"torch_threads": 2, "threads": 2, "cores": result["runtime"]["cores"],
                                 "workers": 1}
    assert json.loads((run_dir / "result.json").read_text())["runtime"]["torch_threads"] == 2
    assert torch.get_num_threads() == 2
    start = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("run: "))
    assert start.endswith("; 2 torch threads (trainer.threads=2)")


def test_auto_records_the_count_it_chose(run_fit, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv(WORKERS_ENV, "64")  # more workers than cores: one thread
    result, _ = run_fit("trainer.max_epochs=1")
    assert result["runtime"]["torch_threads"] == 1 and result["runtime"]["threads"] == "auto"
    assert result["runtime"]["workers"] == 64


def _tested(threads: int, phase: str | None = None) -> Run:
    metric = "val_acc" if phase == "search" else "test_acc"
    return Run({"status": "completed", "strategy": "full", "metrics": {metric: 0.9},
                "config": {"tune": {"phase": phase}}, "runtime": {"torch_threads": threads}})


def test_the_note_on_mixed_thread_counts_looks_at_the_tested_runs_only():
    assert threads_note([_tested(1), _tested(1, "tuned")]) == ""
    assert threads_note([_tested(1), _tested(2, "search")]) == ""  # a search trial is not compared
    note = threads_note([_tested(2), _tested(1, "default"), _tested(1, "tuned")])
    assert note.startswith("⚠ These runs trained at different torch thread counts: 1 (2 runs), 2 (1 run).")
    assert "bit for bit only at the same thread count" in note
    resumed = _tested(1)
    resumed.data["runtime"]["resumed_from_threads"] = [2]
    note = threads_note([_tested(1), resumed])
    assert note.startswith("⚠ 1 run was resumed at another torch thread count than it started with.")


@pytest.mark.slow
def test_a_resume_at_another_thread_count_says_so_and_records_it(interrupted, monkeypatch, caplog):
    from ftbench.train import fit

    cfg = OmegaConf.load(interrupted / ".hydra" / "config.yaml")
    started = torch.load(interrupted / "last.ckpt", weights_only=False)["callbacks"]["KeepThreads"]
    other = 1 if started["torch_threads"] != [1] else 2  # whatever this machine started it at
    monkeypatch.setattr("ftbench.run.threads.available_cores", lambda: 4)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv(WORKERS_ENV, str(4 // other))  # the same config (auto), another share
    result = fit(cfg, interrupted, ckpt_path=interrupted / "last.ckpt")
    assert result["runtime"]["torch_threads"] == other
    assert result["runtime"]["resumed_from_threads"] == started["torch_threads"]
    assert "resume: the run trained at" in caplog.text and f"continues at {other}" in caplog.text


@pytest.mark.slow
def test_the_jobs_of_a_joblib_multirun_share_the_cores(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", WORKERS_ENV)}
    proc = subprocess.run([sys.executable, "-m", "ftbench.train", "-m", f"hydra.sweep.dir={tmp_path}",
                           "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", *FAST,
                           "trainer.max_epochs=1", "eval.shifts=[]", "strategy=linear_probe", "seed=0,1"],
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    runtimes = [json.loads(p.read_text())["runtime"] for p in sorted(tmp_path.rglob("result.json"))]
    cores = len(os.sched_getaffinity(0))
    assert len(runtimes) == 2
    assert all(r["workers"] == 2 and r["torch_threads"] == max(1, cores // 2) for r in runtimes), runtimes
