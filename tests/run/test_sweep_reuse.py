"""A multirun repeated into its sweep folder never destroys a result: finished jobs are reused,
a job of another config is refused, a failure never replaces a finished result."""

from __future__ import annotations

import pytest

from ftbench.run.atomic import write_json
from ftbench.run.failures import UserError
from ftbench.run.result import build_result
from ftbench.run.reuse import finished_result, holds_finished
from tests.helpers import FAST, make_cfg


def results(sweep) -> dict[str, bytes]:
    return {str(p.relative_to(sweep)): p.read_bytes() for p in sorted(sweep.rglob("result.json"))}


def test_a_finished_result_of_the_same_config_is_reused_and_of_another_refused(tmp_path):
    cfg = make_cfg(*FAST, "strategy=full")
    job = tmp_path / "0_strategy=full"
    assert finished_result(job, cfg) is None  # nothing there: the job runs
    job.mkdir()
    (job / "last.ckpt").write_bytes(b"a killed job's checkpoint")
    assert finished_result(job, cfg) is None and not holds_finished(job)  # killed: it runs again whole
    write_json(job / "result.json", build_result(cfg, status="failed", error=RuntimeError("boom")).to_data())
    assert finished_result(job, cfg) is None and not holds_finished(job)  # a failed one runs again
    completed = {**build_result(cfg, metrics={"test_acc": 0.5}).to_data(), "status": "completed"}
    write_json(job / "result.json", completed)
    assert finished_result(job, cfg)["metrics"]["test_acc"] == 0.5 and holds_finished(job)
    assert finished_result(job, make_cfg(*FAST, "strategy=full", "progress=lines")) is not None
    with pytest.raises(UserError, match="holds a completed run of another config .*allowed: the command"):
        finished_result(job, make_cfg(*FAST, "strategy=full", "strategy.lr=0.5"))


@pytest.mark.slow  # two multiruns of two tiny jobs
def test_the_same_sweep_twice_keeps_every_result_and_a_failure_replaces_none(tmp_path, cli, monkeypatch):
    sweep = tmp_path / "sweep"
    command = ["-m", *FAST, "trainer.max_epochs=1", "strategy=linear_probe,full", "eval.shifts=[]",
               f"hydra.sweep.dir={sweep}"]
    code, _ = cli(*command)
    assert code == 0
    first = results(sweep)
    assert len(first) == 2
    code, _ = cli(*command)  # as make run's second call: nothing trains again
    assert code == 0 and cli.stdout.count("reused, completed before") == 2
    assert results(sweep) == first
    assert (sweep / "report.md").is_file()
    # a mistake only the jobs find at run time: it never reaches a finished job
    monkeypatch.setenv("FTBENCH_WORKERS", "abc")
    code, err = cli(*command)
    assert results(sweep) == first
    # another config into the same job folders: refused, and the failure is not recorded there
    monkeypatch.delenv("FTBENCH_WORKERS")
    monkeypatch.setenv("FTBENCH_DATA_DIR", str(tmp_path / "elsewhere"))
    code, _ = cli(*command)
    assert "holds a completed run of another config" in cli.stdout
    assert results(sweep) == first
