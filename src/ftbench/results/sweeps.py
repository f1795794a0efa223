"""Which sweep folders a folder holds: itself, or each task's folder of a suite."""

from __future__ import annotations

import os
from pathlib import Path

from ftbench.report.suite_results import is_suite, read_suite_record


def sweeps(folder: str | os.PathLike) -> list[tuple[str, Path]]:
    """``(task, sweep folder)`` pairs: every task of a suite (``suite.yaml``) whose folder exists,
    or the folder itself, named after itself, so that ``task`` is never missing in a groupby."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder; give a sweep folder (multirun/...) or a suite's")
    if not is_suite(root):
        return [(root.resolve().name, root)]
    record = read_suite_record(root)
    return [(task["name"], root / task["name"]) for task in record.tasks if (root / task["name"]).is_dir()]
