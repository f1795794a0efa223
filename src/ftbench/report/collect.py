"""Reading a sweep folder: every job's record (``ftbench.run.result.job_record``), as data.

Nothing read is evaluated: values are looked up in plain dicts, so an interpolation such as
``${oc.env:...}`` in a crafted ``result.json`` stays the text it is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ftbench.run.result import RESULT_FILE, SAVED_CONFIG, job_record, judged_by

__all__ = ["RESULT_FILE", "Run", "collect", "judged_by"]


@dataclass
class Run:
    """One job of a sweep: its ``result.json`` (or a failed record) and its folder."""

    data: dict
    dir: str = "."

    def get(self, path: str, default=None):
        """The value at a dotted ``path`` (``metrics.test_acc``, ``config.strategy.lr``)."""
        return lookup(self.data, path, default)

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


def lookup(data, path: str, default=None):
    """``data[a][b]...`` for the dotted ``path`` ``a.b...`` in plain dicts, or ``default``."""
    for part in path.split("."):
        if not isinstance(data, dict) or part not in data:
            return default
        data = data[part]
    return data


def collect(root: Path) -> list[Run]:
    """Every job under ``root``: a folder with a ``result.json`` or with Hydra's saved config."""
    saved = {p.parent.parent for p in root.rglob(SAVED_CONFIG.name)
             if p.parent.name == SAVED_CONFIG.parent.name}
    job_dirs = {p.parent for p in root.rglob(RESULT_FILE)} | saved
    return [Run(job_record(d), str(d.relative_to(root)) if d != root else ".")
            for d in sorted(job_dirs)]
