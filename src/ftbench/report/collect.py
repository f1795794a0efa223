"""Reading a sweep folder: every job's ``result.json``, or a failed record where it left none."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

RESULT_FILE = "result.json"  # the contract (ftbench.result), named here without importing torch
SAVED_CONFIG = Path(".hydra") / "config.yaml"


@dataclass
class Run:
    """One job of a sweep: its ``result.json`` (or a failed record) and its folder."""

    data: dict
    dir: str = "."

    @cached_property
    def conf(self) -> DictConfig:
        return OmegaConf.create(self.data)

    def get(self, path: str, default=None):
        """The value at a dotted ``path`` (``metrics.test_acc``, ``config.strategy.lr``)."""
        value = OmegaConf.select(self.conf, path, default=default, throw_on_resolution_failure=False)
        return OmegaConf.to_container(value) if OmegaConf.is_config(value) else value

    def number(self, path: str) -> float | None:
        value = self.get(path)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return None
        return float(value)

    @property
    def status(self) -> str:
        return str(self.data.get("status"))

    @property
    def strategy(self) -> str:
        return str(self.data.get("strategy") or "unknown")

    @property
    def completed(self) -> bool:
        """Ran to the end with its accuracy: the test's, or a search trial's validation one."""
        return self.status == "completed" and self.number(f"metrics.{judged_by(self.data)}") is not None


def judged_by(data: dict) -> str:
    """The metric a completed record must hold: ``test_acc``, or ``val_acc`` for a search trial
    of the tuned comparison, which is judged on validation only and never tested."""
    tune = (data.get("config") or {}).get("tune")
    return "val_acc" if isinstance(tune, dict) and tune.get("phase") == "search" else "test_acc"


def killed_record(job_dir: Path) -> dict:
    """A job that left its Hydra config but no result: it crashed, was killed or interrupted."""
    from ftbench.failures import resume_command  # light: no torch

    error = f"no {RESULT_FILE} (the job crashed or was killed)"
    if (job_dir / "last.ckpt").is_file():
        error = (f"no {RESULT_FILE}: interrupted after a checkpoint; continue with: "
                 f"{resume_command(job_dir.absolute())}")
    record = {"status": "failed", "error": error}
    try:
        config = OmegaConf.to_container(OmegaConf.load(job_dir / SAVED_CONFIG), resolve=False)
    except (OSError, ValueError, yaml.YAMLError, OmegaConfBaseException):
        config = None
    if isinstance(config, dict):
        record.update(config=config, seed=_plain(config.get("seed")), **{
            key: _plain((config.get(key) or {}).get("name") if isinstance(config.get(key), dict)
                        else None)
            for key in ("strategy", "model", "dataset")})
    return record


def _plain(value):
    return value if isinstance(value, str | int | float | bool) or value is None else str(value)


# the parts of a result.json the report reads, and the JSON type each must have
_SHAPE = {"metrics": dict, "config": dict, "cost": dict, "data": dict, "history": list,
          "groups": list}


def problem(data: object) -> str | None:
    """Why a ``result.json`` cannot be reported (its parts of the wrong type, a completed
    run without a numeric test accuracy), or None."""
    if not isinstance(data, dict):
        return "not a JSON object"
    for key, kind in _SHAPE.items():
        if key in data and not isinstance(data[key], kind):
            return f"{key} is {type(data[key]).__name__ if data[key] is not None else 'null'}, " \
                   f"not {'an object' if kind is dict else 'a list'}"
    if not all(isinstance(entry, dict) for entry in data.get("history", [])):
        return "history holds an entry that is not an object"
    for key in ("status", "strategy", "error"):
        if data.get(key) is not None and not isinstance(data[key], str):
            return f"{key} is not a string"
    if data.get("status", "completed" if "metrics" in data else "failed") == "completed":
        metric = judged_by(data)
        acc = (data.get("metrics") or {}).get(metric)
        if isinstance(acc, bool) or not isinstance(acc, int | float) or not math.isfinite(acc):
            return f"metrics.{metric} is {acc!r}, not a number"
    return None


def read_record(job_dir: Path) -> dict:
    try:
        data = json.loads((job_dir / RESULT_FILE).read_text())
    except FileNotFoundError:
        return killed_record(job_dir)
    except (OSError, ValueError) as err:
        return {"status": "unreadable", "error": f"unreadable {RESULT_FILE}: {err}"}
    reason = problem(data)
    if reason is not None:
        record = {"status": "unreadable", "error": f"unreadable {RESULT_FILE}: {reason}"}
        if isinstance(data, dict):
            record.update({k: _plain(data.get(k)) for k in ("strategy", "seed")})
        return record
    data.setdefault("status", "completed" if "metrics" in data else "failed")
    return data


def collect(root: Path) -> list[Run]:
    """Every job under ``root``: a folder with a ``result.json`` or with Hydra's ``.hydra/``."""
    job_dirs = {p.parent for p in root.rglob(RESULT_FILE)} | {p.parent for p in root.rglob(".hydra")}
    return [Run(read_record(d), str(d.relative_to(root)) if d != root else ".")
            for d in sorted(job_dirs)]
