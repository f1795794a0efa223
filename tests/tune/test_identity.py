"""What a tuned study compares is recorded when it is created: a restart that would change it, or
that finds its storage damaged, is one line and runs nothing; a trial left running without a
heartbeat does not wedge a restart; no storage password reaches a file of the sweep."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tests.helpers import study, tuned_command

SMALL = ["model.name=test_resnet", "model.weights=none", "dataset.image_size=32",
         "+trainer.limit_train_batches=2", "+trainer.limit_val_batches=1", "+trainer.limit_test_batches=1",
         "trainer.enable_progress_bar=false"]
PASSWORD = "pw-secret-9"
STUDY = ["tune.strategies=[linear_probe]", "tune.trials=2", "tune.seeds=1", "trainer.max_epochs=1",
         f"+notes.db=postgresql://ftb:{PASSWORD}@db.example/x"]  # a credential that shapes nothing

pytestmark = pytest.mark.slow


def command(sweep: Path, *study: str) -> list[str]:
    return tuned_command(sweep, *study, base=SMALL)


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, str]:
    """A tuned comparison run to its end, and what it printed."""
    sweep = tmp_path_factory.mktemp("finished") / "tuned"
    proc = subprocess.run(command(sweep, *STUDY), capture_output=True, text=True, timeout=900,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return sweep, proc.stdout + proc.stderr


@pytest.fixture
def sweep(finished, tmp_path) -> Path:
    """A copy of the finished sweep, to restart."""
    return Path(shutil.copytree(finished[0], tmp_path / "tuned"))


def files(sweep: Path) -> dict[str, bytes]:
    """Every job file and the storage: what a restart must leave as it was."""
    return {str(p.relative_to(sweep)): p.read_bytes() for p in sorted(sweep.rglob("*"))
            if p.is_file() and p.parts[len(sweep.parts)] in ("search", "default", "tuned", "optuna.db")}


def restart(cli, sweep: Path, *study: str) -> tuple[int, list[str]]:
    code, stderr = cli(*command(sweep, *study)[3:])  # the command line after "python -m ftbench.train"
    return code, stderr.strip().splitlines()


def test_the_final_runs_leave_out_the_search_seed(finished):
    sweep = finished[0]
    searched = {json.loads(p.read_text())["seed"] for p in (sweep / "search").rglob("result.json")}
    final = {json.loads(p.read_text())["seed"] for phase in ("default", "tuned")
             for p in (sweep / phase).rglob("result.json")}
    assert searched == {0} and final == {1}  # tune.seeds=1 with search seed 0


@pytest.mark.parametrize("change, message", [
    (("tune.trials=2", "tune.trials=3"), "tune.trials changed 2 -> 3 since this study was created in "),
    (("tune.seeds=1", "tune.seeds=2"), "tune.seeds changed [1] -> [1, 2] since this study was created in "),
    (("trainer.max_epochs=1", "trainer.max_epochs=2"),
     "the command's overrides changed (added trainer.max_epochs=2; removed trainer.max_epochs=1)"),
    ((None, "~strategy.search.lr", "+strategy.search.lr={choices:[0.1,0.01]}"),
     "the search space of strategy=linear_probe changed (lr: FloatDistribution("),
])
def test_a_restart_that_would_change_the_study_is_one_line_and_runs_nothing(sweep, cli, change, message):
    before = files(sweep)
    old, *new = change
    code, lines = restart(cli, sweep, *[o for o in STUDY if o != old], *new)
    assert code == 2 and len(lines) == 1 and message in lines[0], lines
    assert "allowed: the original value" in lines[0] and "or a new hydra.sweep.dir" in lines[0]
    assert files(sweep) == before  # nothing ran, nothing was written


@pytest.mark.parametrize("damage, message", [
    ("random bytes", "is not an SQLite database"),
    ("0 bytes", "holds no study, but"),
    ("deleted", "holds no study, but"),
    ("another program's SQLite database", "is an SQLite database but not an Optuna storage"),
    ("another Optuna study", "holds Optuna studies (elsewhere) but not this sweep's record"),
])
def test_a_damaged_storage_is_one_line_and_reruns_or_overwrites_nothing(sweep, cli, damage, message):
    db = sweep / "optuna.db"
    if damage == "random bytes":
        db.write_bytes(os.urandom(4096))
    elif damage == "0 bytes":
        db.write_bytes(b"")
    elif damage == "deleted":
        db.unlink()
    elif damage == "another program's SQLite database":
        db.unlink()
        with sqlite3.connect(db) as other:
            other.execute("CREATE TABLE people (name TEXT)")
    else:
        db.unlink()
        optuna.create_study(study_name="elsewhere", storage=f"sqlite:///{db}")
    before = files(sweep)
    stored = db.read_bytes() if db.exists() else None
    code, lines = restart(cli, sweep, *STUDY)
    assert code == 2 and len(lines) == 1 and message in lines[0], lines
    assert files(sweep) == before  # no result.json rerun or overwritten
    assert (db.read_bytes() if db.exists() else None) == stored  # the storage itself untouched


def test_a_trial_left_running_without_a_heartbeat_does_not_wedge_a_restart(sweep):
    before = files(sweep)
    search = study(sweep, "search-linear_probe")
    left = search.ask()  # as a search killed between asking and its first beat leaves it
    again = subprocess.run(command(sweep, *STUDY), capture_output=True, text=True, timeout=600,
                           env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert again.returncode == 0, again.stderr[-3000:]
    trials = study(sweep, "search-linear_probe").trials
    assert trials[left.number].state == TrialState.FAIL
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    after = files(sweep)
    assert {k: v for k, v in after.items() if k != "optuna.db"} == \
        {k: v for k, v in before.items() if k != "optuna.db"}  # no job ran again


def test_no_url_password_reaches_a_file_of_the_tuned_sweep_nor_its_console(finished):
    sweep, console = finished
    assert "postgresql://ftb:***@db.example/x" in (sweep / "multirun.yaml").read_text()
    found = [str(p) for p in sweep.rglob("*") if p.is_file() and PASSWORD.encode() in p.read_bytes()]
    assert found == [] and PASSWORD not in console
