"""Reading a sweep folder: every job's record (``ftbench.run.result.job_record``), as data.

Nothing read is evaluated: values are looked up in plain dicts, so an interpolation such as
``${oc.env:...}`` in a crafted ``result.json`` stays the text it is. ``job_record`` checks the
shape of the parts the report walks; a scalar the report reads as a figure counts as absent
when it is none (``Run.number``), and a part read as a mapping as empty when it is not one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ftbench.run.result import RESULT_FILE, SAVED_CONFIG, job_record, judged_by, number

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
        """The figure at ``path``; None where there is none (``ftbench.run.result.number``)."""
        return number(self.get(path))

    def mapping(self, path: str) -> dict:
        """The object at ``path``; empty where there is none, or something else is there."""
        value = self.get(path)
        return value if isinstance(value, dict) else {}

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
