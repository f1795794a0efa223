"""The result contract: what ``result.json`` holds, built in one place.

Every run writes ``result.json`` into its folder; the report reads nothing else. A completed
run holds ``strategy``, ``model``, ``dataset``, ``seed``, ``metrics`` (with ``shift``, the accuracy
under distribution shift), ``cost``, ``history``,
``groups``, ``data``, the resolved ``config`` (secrets masked), ``versions`` and ``runtime`` (the
torch thread count it ran with, ``ftbench.threads``: float sums depend on it); a failed or
diverged one holds the same identity, its ``status`` and a one-line ``error`` instead of
``metrics``.
"""

from __future__ import annotations

import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from ftbench.failures import one_line
from ftbench.redaction import redact_config
from ftbench.run_io import read_json, write_json

RESULT_FILE = "result.json"
WEIGHTS_FILE = "model.safetensors"


def identity(cfg: DictConfig) -> dict:
    """Who the run is: strategy, model, dataset, seed and the resolved config, secrets masked."""
    record = {key: OmegaConf.select(cfg, path, default=None, throw_on_resolution_failure=False)
              for key, path in (("strategy", "strategy.name"), ("model", "model.name"),
                                ("dataset", "dataset.name"), ("seed", "seed"))}
    record["config"] = redact_config(cfg)
    return record


def completed_result(cfg: DictConfig, *, metrics: dict, cost: dict, history: list[dict],
                     groups: list[dict], data: dict, shift: dict | None = None,
                     status: str = "completed", runtime: dict | None = None) -> dict:
    """A run that trained to its end (``completed``), or a search trial the pruner stopped
    (``pruned``: its cost and history are those of the epochs it ran).

    ``shift`` is ``robustness.ShiftEvaluation.summary()``: it adds ``metrics.shift`` (accuracy
    per shifted set and their ``mean``; None when none was evaluated), ``data.shift_hashes``
    (SHA-256 of each shifted set's model inputs and labels) and ``cost.shift_eval_flops``,
    ``cost.shift_eval_seconds`` and ``cost.shift_eval_images``, apart from training and testing.
    ``runtime`` is ``ftbench.threads.ThreadShare.record()``."""
    shift = shift or {}
    metrics = {**metrics, "shift": shift.get("accuracy")}
    cost = {**cost, "shift_eval_flops": shift.get("flops", 0.0),
            "shift_eval_seconds": shift.get("seconds", 0.0), "shift_eval_images": shift.get("images", 0)}
    data = {**data, "shift_hashes": shift.get("hashes", {})}
    return {"status": status, **identity(cfg), "groups": groups, "metrics": metrics,
            "cost": cost, "history": history, "data": data, "versions": versions(),
            "runtime": runtime or {}}


def failed_result(cfg: DictConfig | None, error: BaseException, status: str = "failed") -> dict:
    """What a failed job leaves behind: who it was and why it failed, without metrics."""
    record: dict = {"status": status, "error": one_line(error)}
    if cfg is not None:
        record.update(identity(cfg))
    record["versions"] = versions()
    return record


def write_result(run_dir: Path, result: dict) -> Path:
    return write_json(Path(run_dir) / RESULT_FILE, result)


def read_result(run_dir: str | Path) -> dict:
    return read_json(Path(run_dir) / RESULT_FILE)


def versions() -> dict:
    def dist(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "timm": dist("timm"),
        "lightning": dist("lightning"),
        "ftbench": dist("ftbench"),
        "git_commit": _git_commit(),
    }


def _git_commit() -> str | None:
    """The commit of a source checkout (src/ftbench inside it); None for an installed wheel."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             cwd=root, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None
