"""A strategy from another installed package joins through the entry-point group
``ftbench.strategies``: a real distribution (a ``*.dist-info`` folder with its entry points) on
the path, found by ``importlib.metadata``, loaded once on the first read of the registry."""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from ftbench.finetune import plugins, strategies
from ftbench.finetune.plugins import GROUP
from tests.helpers import FAST, make_cfg, train_cli

REGISTERS = """\
from ftbench.finetune.strategies import STRATEGIES, register

CALLS = []


def setup():
    CALLS.append(1)
    register("{name}", STRATEGIES["linear_probe"], "{name}: the head only, from a plugin; knobs: lr")
"""


def plugin_distribution(root: Path, package: str, name: str, *, entry: str | None = None,
                        module: str = REGISTERS) -> Path:
    """Install (on ``root``, to be put on the path) a package ``package`` whose module
    ``strategy`` registers ``name``, with its ``conf/strategy/<name>.yaml``; return that conf folder."""
    code = root / package
    (code / "conf" / "strategy").mkdir(parents=True)
    (code / "__init__.py").write_text("")
    body = module.format(name=name)
    (code / "strategy.py").write_text(body if entry else body + "\nsetup()\n")
    (code / "conf" / "strategy" / f"{name}.yaml").write_text(f"name: {name}\nlr: 0.1\n")
    info = root / f"{package}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{GROUP}]\n{name} = {entry or f'{package}.strategy'}\n")
    return code / "conf"


@pytest.fixture
def fresh_registry(monkeypatch, tmp_path):
    """The built-in registry, plugins not loaded yet, and ``tmp_path`` on the import path."""
    monkeypatch.setattr(strategies, "STRATEGIES", dict(strategies.STRATEGIES))
    monkeypatch.setattr(strategies, "SUMMARIES", dict(strategies.SUMMARIES))
    monkeypatch.setattr(plugins, "_loaded", False)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for module in [m for m in sys.modules if m.startswith("probe_plugin")]:
        del sys.modules[module]
    importlib.invalidate_caches()


def test_an_installed_plugin_strategy_is_in_the_registry_help_and_config_lists(fresh_registry):
    plugin_distribution(fresh_registry, "probe_plugin", "my_probe")
    names = list(strategies.registered())
    assert names[-1] == "my_probe" and names[:-1] == list(strategies.SUMMARIES)[:-1]
    assert "my_probe: the head only, from a plugin" in strategies.help_lines()
    cfg = make_cfg("experiment=compare")
    assert cfg.tune.strategies[-1] == "my_probe"
    plan = strategies.build_plan(OmegaConf.merge(cfg.strategy, {"name": "my_probe"}), ["stem", "head"], 2)
    assert plan.trainable(0) == (False, True)  # linear_probe's factory, under the plugin's name


def test_an_entry_point_naming_a_function_is_called_once(fresh_registry):
    plugin_distribution(fresh_registry, "probe_plugin_fn", "fn_probe", entry="probe_plugin_fn.strategy:setup")
    strategies.registered()
    strategies.registered()
    assert "fn_probe" in strategies.registered()
    assert sys.modules["probe_plugin_fn.strategy"].CALLS == [1]


def test_a_broken_plugin_ends_help_in_one_line_naming_its_entry_point(fresh_registry, cli):
    plugin_distribution(fresh_registry, "probe_plugin_broken", "broken_probe",
                        module="import probe_plugin_missing_dependency\n")
    code, err = cli("--help")
    assert code == 2
    assert err.strip().count("\n") == 0 and "Traceback" not in err
    assert err.startswith("ftbench: error: strategy plugin 'broken_probe")  # not OmegaConf's wrapping
    assert ("strategy plugin 'broken_probe = probe_plugin_broken.strategy' (entry point of "
            "ftbench.strategies in package probe_plugin_broken 0.1) failed to load: "
            "ModuleNotFoundError: No module named 'probe_plugin_missing_dependency'") in err
    with pytest.raises(plugins.UserError, match="broken_probe"):  # again: never a partial registry
        strategies.build_plan(make_cfg().strategy, ["stem", "head"], 2)


def test_a_plugin_taking_a_registered_name_is_refused_naming_it(fresh_registry):
    plugin_distribution(fresh_registry, "probe_plugin_taken", "full",
                        module=REGISTERS.replace('STRATEGIES["linear_probe"]', "lambda *a: {{}}"))
    with pytest.raises(plugins.UserError, match="'full = probe_plugin_taken.strategy'.*"
                                                "strategy 'full' is registered already"):
        strategies.registered()
    assert strategies.STRATEGIES["full"] is strategies.STRATEGIES["discriminative"]  # still the built-in


@pytest.mark.slow  # two fresh processes that import torch, and a short fit
def test_a_plugin_on_the_path_is_in_help_and_runs_with_its_yaml_on_the_search_path(tmp_path):
    conf = plugin_distribution(tmp_path / "site", "probe_plugin", "my_probe")
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), os.environ.get("PYTHONPATH", "")])}
    search = f"hydra.searchpath=[file://{conf}]"
    shown = train_cli("--help", search, env=env)
    assert shown.returncode == 0, shown.stderr
    listed = shown.stdout[shown.stdout.index("== Strategies"):shown.stdout.index("== Config groups")]
    summary = "my_probe: the head only, from a plugin; knobs: lr"
    assert any(line.split()[:1] == ["my_probe"] and line.endswith(summary) for line in listed.splitlines())

    run_dir = tmp_path / "run"  # conf/strategy/my_probe.yaml, found on the search path
    done = train_cli("strategy=my_probe", *FAST, "model.name=test_resnet", "trainer.max_epochs=1",
                     "eval.shifts=[]", search, f"hydra.run.dir={run_dir}", env=env)
    assert done.returncode == 0, done.stderr
    result = json.loads((run_dir / "result.json").read_text())
    assert result["strategy"] == "my_probe" and result["status"] == "completed"
    assert result["cost"]["trainable_params"] < result["cost"]["total_params"]  # the head alone
