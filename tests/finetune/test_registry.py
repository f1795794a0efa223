"""The strategy registry is the one list of strategies: a strategy registered once is in
--help, in experiment=compare's sweep, in the tuned and suite lists, and has a plot colour of its own."""

from __future__ import annotations

import matplotlib.axes
import pytest
from omegaconf import OmegaConf

from ftbench.config import CONFIG_DIR, CONFIG_NAME
from ftbench.finetune import strategies
from ftbench.report import write_report
from ftbench.report.style import colour
from tests.helpers import fake_run, write_runs

EXTRA = ("head_again", "tenth_strategy")  # with the nine built in: eleven


@pytest.fixture
def registered(monkeypatch):
    monkeypatch.setattr(strategies, "STRATEGIES", dict(strategies.STRATEGIES))
    monkeypatch.setattr(strategies, "SUMMARIES", dict(strategies.SUMMARIES))
    for name in EXTRA:
        strategies.register(name, strategies.STRATEGIES["linear_probe"], f"{name}: the head only; knobs: lr")
    return list(strategies.registered())


def test_a_registered_strategy_is_in_the_help_the_compare_sweep_and_the_lists(registered):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name=CONFIG_NAME, overrides=["experiment=compare"], return_hydra_config=True)
    help_text = OmegaConf.to_container(cfg.hydra.help, resolve=True)["template"]
    for name in EXTRA:
        assert f"  {name}  " in help_text and f"{name}: the head only" in help_text
    assert cfg.hydra.sweeper.params.strategy.split(",") == registered
    assert list(cfg.tune.strategies) == registered
    suite = OmegaConf.load(f"{CONFIG_DIR}/benchmark/vtab1k_natural.yaml")
    assert list(suite.strategies) == registered


@pytest.mark.slow  # over a second or two: make test runs it, make test-fast leaves it out
def test_every_strategy_gets_a_colour_of_its_own_in_the_report_plots(registered, tmp_path, template,
                                                                     monkeypatch):
    drawn = {}
    errorbar = matplotlib.axes.Axes.errorbar

    def spy(self, *args, **kwargs):
        drawn.setdefault(str(kwargs.get("label")).split(" (n=")[0], kwargs.get("color"))
        return errorbar(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "errorbar", spy)
    runs = [fake_run(template, name, seed, 0.5 + 0.01 * i, 1e9 * (i + 1))
            for i, name in enumerate(registered) for seed in (0, 1)]
    write_runs(tmp_path, runs)
    write_report(tmp_path)
    colours = [colour(name) for name in registered]
    assert len(set(colours)) == len(registered) and "grey" not in colours
    assert drawn.get(EXTRA[-1]) == colour(EXTRA[-1])  # the eleventh, drawn in its own colour
