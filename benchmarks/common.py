"""Shared helpers for the benchmarks: compose the real config, time things, print a verdict.

torch and ftbench's config are imported where they are used: a benchmark that only drives
``python -m ftbench.train`` in subprocesses (``shared_machine``, ``make_run``, ``pruners``)
shares the verdict without loading them into the process that waits.
"""

from __future__ import annotations

import argparse
import logging
import platform
import time
from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig, open_dict


def make_cfg(*overrides: str, run_dir: Path) -> DictConfig:
    """The real config, as ``python -m ftbench.train OVERRIDES`` composes it, progress bar off,
    logging into ``run_dir``."""
    from ftbench.config import compose_config

    cfg = compose_config("trainer.enable_progress_bar=false", *overrides)
    with open_dict(cfg):
        cfg.logger.save_dir = str(run_dir)
    return cfg


def parse_args(doc: str, epochs: int, repeats: int, example: str,
               flags: dict[str, str] | None = None) -> argparse.Namespace:
    """``--epochs``, ``--repeats``, a benchmark's own on/off ``flags`` (name -> help) and
    trailing Hydra overrides, shared by the benchmarks."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--repeats", type=int, default=repeats)
    for flag, help_text in (flags or {}).items():
        parser.add_argument(flag, action="store_true", help=help_text)
    parser.add_argument("overrides", nargs="*", help=f"Hydra overrides, e.g. {example}")
    return parser.parse_args()


def quiet() -> None:
    import warnings

    warnings.filterwarnings("ignore")
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "ftbench"):
        logging.getLogger(name).setLevel(logging.ERROR)


def machine() -> str:
    import torch

    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()} (CUDA), torch {torch.__version__}"
    return (f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} CPU threads, "
            f"torch {torch.__version__}")


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start, out


def meets(value: float, target: float, higher_is_better: bool = True) -> bool:
    """Whether a benchmark's figure reaches its target (the target itself counts as reached)."""
    return value >= target if higher_is_better else value <= target


def verdict(name: str, value: float, target: float, higher_is_better: bool = True) -> str:
    """The line every benchmark ends with: ``name: value (target >= t) -> MET`` (or ``NOT MET``)."""
    sign, met = (">=" if higher_is_better else "<="), meets(value, target, higher_is_better)
    return f"{name}: {value:.3f} (target {sign} {target}) -> {'MET' if met else 'NOT MET'}"
