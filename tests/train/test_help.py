"""``--help`` of both commands: what ftbench does, its strategies, groups and common overrides."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ftbench.config import CONFIG_DIR
from ftbench.finetune.strategies import registered
from ftbench.report.cli import main as report_main
from ftbench.train import main as train_main


def test_train_help_lists_strategies_groups_and_common_overrides(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["ftbench.train", "--help"])
    with pytest.raises(SystemExit) as exit_:
        train_main()
    assert exit_.value.code in (0, None)
    out = capsys.readouterr().out
    assert "powered by Hydra" not in out and out.startswith("ftbench: fine-tune")
    strategies = out[out.index("== Strategies"):out.index("== Config groups")]
    assert [line.split()[0] for line in strategies.splitlines()[1:] if line.startswith("  ")
            and not line.startswith("   ")] == list(registered())
    # hydra/ holds Hydra's own groups (the tuned sweeper), listed by --hydra-help
    for group in sorted(p.name for p in Path(CONFIG_DIR).iterdir() if p.is_dir() and p.name != "hydra"):
        options = sorted(f.stem for f in (Path(CONFIG_DIR) / group).glob("*.yaml"))
        assert f"{group}: {', '.join(options)}" in out
    for override in ("strategy.unfreeze_every=2", "dataset=imagefolder dataset.root=", "dataset.image_size=",
                     "logger=wandb", "resume=", "-m experiment=compare", "-m experiment=tuned",
                     "-m experiment=surgical"):
        assert override in out


def test_report_help_is_plain_text(capsys):
    with pytest.raises(SystemExit):
        report_main(["--help"])
    out = capsys.readouterr().out
    assert "``" not in out and "report.md" in out and "python -m ftbench.report" in out
