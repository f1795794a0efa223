"""Reading a sweep folder: every job's ``result.json``, or a failed record where it left none."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

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
        return self.status == "completed" and self.number("metrics.test_acc") is not None


def killed_record(job_dir: Path) -> dict:
    """A job that left its Hydra config but no result: it crashed or was killed."""
    record = {"status": "failed", "error": f"no {RESULT_FILE} (the job crashed or was killed)"}
    try:
        config = OmegaConf.to_container(OmegaConf.load(job_dir / SAVED_CONFIG), resolve=False)
    except (OSError, ValueError, OmegaConfBaseException):
        config = None
    if isinstance(config, dict):
        conf = OmegaConf.create(config)
        record.update(config=config, seed=config.get("seed"), **{
            key: OmegaConf.select(conf, f"{key}.name", default=None, throw_on_resolution_failure=False)
            for key in ("strategy", "model", "dataset")})
    return record


def read_record(job_dir: Path) -> dict:
    try:
        data = json.loads((job_dir / RESULT_FILE).read_text())
    except FileNotFoundError:
        return killed_record(job_dir)
    except (OSError, ValueError) as err:
        return {"status": "failed", "error": f"unreadable {RESULT_FILE}: {err}"}
    if not isinstance(data, dict):
        return {"status": "failed", "error": f"unreadable {RESULT_FILE}: not a JSON object"}
    data.setdefault("status", "completed" if "metrics" in data else "failed")
    return data


def collect(root: Path) -> list[Run]:
    """Every job under ``root``: a folder with a ``result.json`` or with Hydra's ``.hydra/``."""
    job_dirs = {p.parent for p in root.rglob(RESULT_FILE)} | {p.parent for p in root.rglob(".hydra")}
    return [Run(read_record(d), str(d.relative_to(root)) if d != root else ".")
            for d in sorted(job_dirs)]
