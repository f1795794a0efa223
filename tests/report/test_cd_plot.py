"""The critical-difference diagram of a suite's ranking (scikit-posthocs draws it)."""

from __future__ import annotations

from ftbench.report.cd_plot import plot_cd_diagram
from ftbench.stats.ranks import rank_strategies

# five tasks that agree on the order a > b > c: a ranking the diagram can draw a difference in
UNANIMOUS = {f"task{i}": {"a": 0.9 - i / 100, "b": 0.8 - i / 100, "c": 0.7 - i / 100} for i in range(6)}


def test_the_diagram_is_written_as_a_png(tmp_path):
    ranking = rank_strategies(UNANIMOUS, alpha=0.10)
    path = plot_cd_diagram(ranking, tmp_path / "plots" / "cd.png")
    assert path == tmp_path / "plots" / "cd.png"
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000


def test_with_too_few_tasks_no_diagram_is_drawn(tmp_path):
    ranking = rank_strategies({task: UNANIMOUS[task] for task in ("task0", "task1", "task2", "task3")})
    assert "Too few tasks" in ranking.note
    assert plot_cd_diagram(ranking, tmp_path / "cd.png") is None
    assert not (tmp_path / "cd.png").exists()
