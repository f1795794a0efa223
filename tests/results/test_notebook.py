"""docs/notebook.md runs: its python blocks, in order, on a sweep at the path it names."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib
import pytest

from tests.helpers import PNG_MAGIC, fake_run, write_runs

PAGE = Path(__file__).resolve().parents[2] / "docs" / "notebook.md"


def python_blocks(page: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", page.read_text(), flags=re.S | re.M)


def test_the_notebook_page_runs_on_a_sweep(tmp_path, monkeypatch, template):
    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)
    strategies = (("linear_probe", 0.8, 1e9), ("full", 0.9, 6e9), ("lp_ft", 0.88, 4e9))
    write_runs(tmp_path / "multirun" / "make-run",
               [fake_run(template, strategy, seed, acc + 0.01 * seed, flops)
                for strategy, acc, flops in strategies for seed in range(3)])
    blocks = python_blocks(PAGE)
    assert len(blocks) >= 4

    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(PAGE), "exec"), namespace)

    assert len(namespace["runs"]) == 9
    assert namespace["summary"].loc["full", ("test_acc", "mean")] == pytest.approx(0.91)
    assert set(namespace["judged"].strategy) == {"linear_probe", "full", "lp_ft"}
    assert (tmp_path / "accuracy_vs_flops.png").read_bytes().startswith(PNG_MAGIC)
