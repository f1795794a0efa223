"""What a run does besides training (``run:`` in the config): test, checkpoint, save weights."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import DictConfig, OmegaConf


@dataclass(frozen=True)
class RunOutputs:
    """What a run does besides training (``run:`` in the config). A search trial of the tuned
    comparison does none of it: it is judged on validation, and a dead one runs again whole."""

    test: bool = True
    checkpoint: bool = True
    weights: bool = True


def run_outputs(cfg: DictConfig) -> RunOutputs:  # a saved config without ``run:`` does all three
    return RunOutputs(*(bool(OmegaConf.select(cfg, f"run.{key}", default=True))
                        for key in ("test", "checkpoint", "save_weights")))
