"""The benchmarks run and print their ratios (on a tiny model: their figures are not checked here)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TINY = ["model.name=test_efficientnet", "model.weights=none"]


def bench(name: str, *args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", f"benchmarks.{name}", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


@pytest.mark.parametrize("value, target, higher_is_better, line", [
    (1.25, 1.0, True, "speed-up: 1.250 (target >= 1.0) -> MET"),
    (1.0, 1.0, True, "speed-up: 1.000 (target >= 1.0) -> MET"),
    (0.999, 1.0, True, "speed-up: 0.999 (target >= 1.0) -> NOT MET"),
    (1.0, 1.0, False, "speed-up: 1.000 (target <= 1.0) -> MET"),
    (1.2, 1.15, False, "speed-up: 1.200 (target <= 1.15) -> NOT MET"),
])
def test_a_benchmarks_verdict_says_met_exactly_when_the_value_reaches_its_target(
        value, target, higher_is_better, line):
    from benchmarks.common import verdict

    assert verdict("speed-up", value, target, higher_is_better) == line


@pytest.mark.slow
@pytest.mark.parametrize("name", ["overhead", "feature_cache"])
def test_a_benchmark_prints_its_ratio_and_verdict(name):
    out = bench(name, "--epochs", "1", "--repeats", "1", *TINY)
    verdicts = re.findall(r"^(.+): ([0-9.]+) \(target ([<>]=) ([0-9.]+)\) -> (MET|NOT MET)$", out, re.M)
    assert verdicts, out  # whether each is met is verdict()'s, checked above against hand-made cases
    if name == "feature_cache":  # the same seed gives the same accuracy on every path
        gaps = [float(v) for label, v, *_ in verdicts if "accuracy gap" in label]
        assert gaps == [0.0, 0.0]
        assert "bare Lightning fit" in out


@pytest.mark.parametrize("one, two, said", [(100.0, 110.0, "MET"), (100.0, 120.0, "NOT MET")])
def test_the_shared_machine_benchmark_judges_its_ratio_with_the_shared_verdict(monkeypatch, capsys, one, two,
                                                                               said):
    """Lower is better here (two workers' time over one's): its verdict line is the shared one's."""
    from benchmarks import shared_machine
    from benchmarks.common import verdict

    seconds = iter([one, two])

    def sweep(folder, copies, workers, overrides):
        spent = next(seconds)
        return {"seconds": spent, "cpu_seconds": spent, "search_seconds": spent, "search_jobs": 2,
                "final_jobs": 1, "threads": [1]}

    monkeypatch.setattr(shared_machine, "sweep", sweep)
    monkeypatch.setattr(sys, "argv", ["shared_machine"])
    shared_machine.main()
    last = capsys.readouterr().out.splitlines()[-1]
    ratio = two / one
    assert last == verdict("search, two workers / one", ratio, shared_machine.TARGET, higher_is_better=False)
    assert last.endswith(f"(target <= 1.15) -> {said}")


@pytest.mark.slow
def test_the_shared_machine_benchmark_gives_each_of_two_workers_half_the_cores():
    import os

    out = bench("shared_machine", *TINY, "tune.strategies=[linear_probe]", "tune.trials=2",
                "trainer.max_epochs=1", "dataset.train_fraction=0.2")
    cores = len(os.sched_getaffinity(0))
    threads = dict(re.findall(r"^  (one worker|two workers, FTBENCH_WORKERS=2) .* torch threads per job "
                              r"\[(\d+)\]$", out, re.M))
    assert threads == {"one worker": str(cores),
                       "two workers, FTBENCH_WORKERS=2": str(max(1, cores // 2))}, out
    assert re.search(r"^search, two workers / one: [0-9.]+ \(target <= 1.15\) -> (MET|NOT MET)$", out, re.M)
    assert re.search(r"\(2 trials\)", out)
