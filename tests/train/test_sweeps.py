"""Every W&B sweep file drives ``python -m ftbench.train`` with overrides that compose."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf
from wandb.sdk.launch.sweeps.utils import create_sweep_command_args

from ftbench.config import CONFIG_DIR, group_names
from ftbench.finetune.strategies import build_plan
from tests.helpers import make_cfg

SWEEPS = sorted((Path(__file__).parents[2] / "sweeps").glob("*.yaml"))


def candidate_values(spec: dict) -> list:
    """Every value of a discrete parameter; the ends and the middle of a distribution."""
    if "value" in spec:
        return [spec["value"]]
    if "values" in spec:
        return list(spec["values"])
    lo, hi = spec["min"], spec["max"]
    middle = math.sqrt(lo * hi) if spec["distribution"].startswith("log") else (lo + hi) / 2
    return [lo, middle, hi]


def assignments(sweep: dict) -> list[dict]:
    """The grid's every point; for bayes/random, the low, middle and high points of each range."""
    names = list(sweep["parameters"])
    values = [candidate_values(sweep["parameters"][n]) for n in names]
    if sweep["method"] == "grid":
        return [dict(zip(names, combo)) for combo in itertools.product(*values)]
    return [dict(zip(names, (v[min(i, len(v) - 1)] for v in values))) for i in range(3)]


def agent_overrides(sweep: dict, params: dict) -> list[str]:
    """The arguments ``wandb agent`` puts after ``python -m ftbench.train`` for ``params``."""
    args = create_sweep_command_args({"args": {k: {"value": v} for k, v in params.items()}})
    command = sweep["command"]
    module = command.index("${program}")
    assert command[module - 1] == "-m" and sweep["program"] == "ftbench.train"
    expanded = []
    for part in command[module + 1:]:
        expanded += args[part[2:-1]] if part.startswith("${") else [part]
    return expanded


@pytest.mark.parametrize("path", SWEEPS, ids=[p.stem for p in SWEEPS])
@pytest.mark.slow  # over a few seconds: make test runs it, make test-fast leaves it out
def test_every_sweep_parameter_composes_and_lands_where_intended(path):
    sweep = yaml.safe_load(path.read_text())
    assert sweep["metric"] == {"name": "val_acc", "goal": "maximize"}
    assert "${args_no_hyphens}" in sweep["command"]
    points = assignments(sweep)
    assert points
    for params in points:
        cfg = make_cfg(*agent_overrides(sweep, params))
        assert cfg.logger._target_ == "ftbench.tracking.loggers.wandb_logger"
        for key, value in params.items():
            if (Path(CONFIG_DIR) / key).is_dir():  # a config group: the choice picks the file
                assert cfg[key].name == value
            else:
                assert OmegaConf.select(cfg, key) == pytest.approx(value), key
        # raises on an invalid strategy
        build_plan(cfg.strategy, group_names(cfg.model.name), cfg.trainer.max_epochs)
