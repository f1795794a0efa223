"""What a sweep prints when it ends: the report's table and files, and last, once, its
recommendation."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from ftbench.report.callback import WriteReport, split_answer
from tests.helpers import fake_run, write_runs


@pytest.mark.slow  # over a second or two: make test runs it, make test-fast leaves it out
def test_a_sweep_ends_its_console_output_with_the_recommendation_sentence(tmp_path, template, capsys):
    accs = {"full": 0.95, "linear_probe": 0.60}
    write_runs(tmp_path, [fake_run(template, s, seed, a, 1e9 if s == "full" else 1e8)
                          for s, a in accs.items() for seed in range(3)], examples=1000)
    WriteReport()._write(OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}}), final=True)
    out = capsys.readouterr().out
    last = out.rstrip().splitlines()[-1]
    assert last.startswith("Recommendation: full") and "**" not in last
    assert out.count("Recommendation: full") == 1  # not in the summary above it as well
    paragraphs = [" ".join(p.replace("**", "").split())
                  for p in (tmp_path / "report.md").read_text().split("\n\n")]
    assert last in paragraphs  # the report's words
    assert "| full |" in out  # the rest of the summary is printed


def test_a_summary_without_a_recommendation_is_printed_whole():
    summary = "| a | b |\n\nreport.md: x\n"
    assert split_answer(summary) == (summary, None)
    assert split_answer("table\n\n**No recommendation**: too few\nseeds.\n\nfiles\n") == (
        "table\n\nfiles\n", "No recommendation: too few seeds.")
