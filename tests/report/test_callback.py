"""What a sweep prints when it ends: the report's table and files, and last its recommendation."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from ftbench.report.callback import WriteReport, recommendation_line
from tests.helpers import fake_run, write_runs


@pytest.mark.slow  # over a second or two: make test runs it, make test-fast leaves it out
def test_a_sweep_ends_its_console_output_with_the_recommendation_sentence(tmp_path, template, capsys):
    accs = {"full": 0.95, "linear_probe": 0.60}
    write_runs(tmp_path, [fake_run(template, s, seed, a, 1e9 if s == "full" else 1e8)
                          for s, a in accs.items() for seed in range(3)], examples=1000)
    WriteReport()._write(OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}}), final=True)
    last = capsys.readouterr().out.rstrip().splitlines()[-1]
    assert last.startswith("Recommendation: full") and "**" not in last
    assert last == recommendation_line(tmp_path / "report.md")
    assert "Recommendation: full" in (tmp_path / "report.md").read_text().replace("**", "")


def test_without_a_report_there_is_no_line(tmp_path):
    assert recommendation_line(tmp_path / "report.md") is None
