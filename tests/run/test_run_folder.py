"""One run per folder: a locked folder, no start over a run it would destroy, nothing left by a
refused command, files written as the user's other files are."""

from __future__ import annotations

import os
import sys

import pytest
from filelock import FileLock, Timeout

from ftbench.run.atomic import write_json
from tests.helpers import FAST, contents

LOCK_FILE = ".ftbench.lock"  # what a running run holds in its folder


def last_line(result: tuple[int, str]) -> tuple[int, str]:
    code, stderr = result
    lines = stderr.strip().splitlines()
    return code, lines[-1] if lines else ""


def test_a_new_run_into_a_folder_holding_a_run_is_refused_and_changes_nothing(interrupted, cli):
    before = contents(interrupted)
    code, line = last_line(cli(f"hydra.run.dir={interrupted}", *FAST, "strategy=full", "strategy.lr=-1"))
    assert code == 2
    assert line == (f"ftbench: error: hydra.run.dir='{interrupted}' holds a run already (last.ckpt); "
                    f"allowed: a new folder, or continue it with: python -m ftbench.train "
                    f"resume={interrupted}")
    assert contents(interrupted) == before
    assert not (interrupted / "train.log").exists()  # Hydra wrote nothing there either


def test_a_folder_another_run_holds_is_refused_for_a_new_run_and_a_resume(interrupted, tmp_path, cli):
    running, empty = FileLock(interrupted / LOCK_FILE), FileLock(tmp_path / "empty" / LOCK_FILE)
    for lock in (running, empty):  # the locks of processes running there
        lock.acquire(timeout=0)
    try:
        before = contents(interrupted)
        code, line = last_line(cli(f"resume={interrupted}"))
        assert code == 2 and line.startswith(f"ftbench: error: resume='{interrupted}' is in use by "
                                             "another run")
        code, line = last_line(cli(f"hydra.run.dir={tmp_path / 'empty'}", *FAST))
        assert code == 2 and "is in use by another run" in line
        assert contents(interrupted) == before
        assert [p.name for p in (tmp_path / "empty").iterdir()] == [LOCK_FILE]
    finally:
        for lock in (running, empty):
            lock.release()


@pytest.mark.slow  # over a few seconds: make test runs it, make test-fast leaves it out
def test_a_run_releases_its_folder_when_it_ends(tmp_path, cli):
    code, _ = cli(f"hydra.run.dir={tmp_path}", *FAST, "strategy=gradual", "strategy.unfreeze_every=0")
    assert code == 2
    code, _ = cli(f"hydra.run.dir={tmp_path}", *FAST, "trainer.max_epochs=1")
    assert code == 0
    lock = FileLock(tmp_path / LOCK_FILE)
    lock.acquire(timeout=0)  # no Timeout: free again
    lock.release()


@pytest.mark.parametrize("bad", [["strategy.lr=-1"], ["dataset=imagefolder", "dataset.root=/no/such/folder"],
                                 ["model.weights=/no/such/weights.safetensors"]])
@pytest.mark.slow  # over a second or two: make test runs it, make test-fast leaves it out
def test_a_refused_command_leaves_no_run_folder(tmp_path, cli, bad):
    new, empty = tmp_path / "new", tmp_path / "empty"
    empty.mkdir()
    for folder in (new, empty):
        code, line = last_line(cli(f"hydra.run.dir={folder}", *FAST, *bad))
        assert code == 2 and line.startswith("ftbench: error: ")
    assert not new.exists()
    assert list(empty.iterdir()) == []


def test_a_resume_of_a_missing_folder_creates_nothing(tmp_path, cli):
    code, line = last_line(cli(f"resume={tmp_path / 'missing'}"))
    assert code == 2 and "is not a run folder" in line
    assert not (tmp_path / "missing").exists()


@pytest.mark.parametrize("mode", [[], ["-m"]])
def test_an_output_folder_that_cannot_be_created_is_one_line(tmp_path, cli, mode):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    setting = "hydra.sweep.dir" if mode else "hydra.run.dir"
    code, line = last_line(cli(*mode, f"{setting}={blocker / 'run'}", *FAST))
    assert code == 2
    assert line.startswith(f"ftbench: error: {setting}='{blocker / 'run'}': cannot write there")


@pytest.mark.parametrize("broken", ["result.json", "config.yaml"])
def test_a_resume_of_a_folder_with_a_malformed_file_is_one_line(interrupted, cli, broken):
    path = interrupted / "result.json" if broken == "result.json" else interrupted / ".hydra" / "config.yaml"
    path.write_text("{not json: [")
    code, line = last_line(cli(f"resume={interrupted}"))
    assert code == 2 and line.startswith(f"ftbench: error: resume='{interrupted}': its ")
    assert "allowed: a run folder whose files are intact" in line


def test_a_resume_with_a_malformed_metrics_log_is_refused(interrupted):
    from ftbench.run.failures import UserError
    from tests.helpers import fit_schedule as _fit

    (interrupted / "logs" / "metrics.csv").write_text("epoch,step,val_acc\n0,three,0.5\n")
    with pytest.raises(UserError, match="is not a readable metrics log"):
        _fit(interrupted, "strategy=gradual", ckpt_path=interrupted / "last.ckpt")


def test_taking_a_folder_removes_the_temporary_files_a_killed_write_left(tmp_path):
    from ftbench.run.folder import lock, release

    stale = tmp_path / ".result.json.k2j4h1.tmp"
    stale.write_text('{"status": "compl')
    lock(tmp_path, "hydra.run.dir")
    release(tmp_path)
    assert not stale.exists()


def test_atomically_written_files_get_the_usual_modes(tmp_path):
    mask = os.umask(0)
    os.umask(mask)
    path = write_json(tmp_path / "result.json", {"a": 1})
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask  # not mkstemp's 0600


@pytest.mark.slow
def test_a_lock_is_free_once_its_process_is_gone(tmp_path):
    import subprocess

    code = ("from ftbench.run.folder import lock; import os; "
            f"lock({str(tmp_path)!r}, 'hydra.run.dir'); os._exit(9)")  # no clean-up at all
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 9
    lock = FileLock(tmp_path / LOCK_FILE)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        pytest.fail("the lock of a process that died is still held")
    lock.release()


@pytest.mark.parametrize("bad", [["strategy.lr=-1"], ["resume=outputs/no/such/run"],
                                 ["optimizer.name=adamax"],
                                 ["strategy.lr=${hydra:job.num}"],  # a single run has none
                                 ["logger.save_dir=${hydra:runtime.output_dir}/${no_such_key}"]])
def test_a_refused_run_writes_nothing_under_the_output_root(tmp_path, cli, monkeypatch, bad):
    """Refused while it is prepared, before Hydra creates the run's folder or saves into it."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "outputs").mkdir()
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    code, line = last_line(cli(*FAST, *bad))
    assert code == 2 and line.startswith("ftbench: error: ")
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_hydra_values_are_checked_before_the_folder_exists_and_resolve_as_the_job_sees_them(tmp_path, cli):
    run_dir = tmp_path / "run"
    code, _ = cli(f"hydra.run.dir={run_dir}", *FAST, "trainer.max_epochs=1",
                  "logger.save_dir=${hydra:runtime.output_dir}/csv")
    assert code == 0
    assert (run_dir / "csv" / "logs" / "metrics.csv").is_file()
    # the config Hydra saves is the one it composed: the check resolved a copy
    assert "save_dir: ${hydra:runtime.output_dir}/csv" in (run_dir / ".hydra" / "config.yaml").read_text()
