"""Where a result comes from: the versions of Python and the libraries that produced it, and
the source commit. Same seed, same result holds only for the same versions."""

from __future__ import annotations

import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from ftbench.run.schema import Versions


def versions() -> Versions:
    def dist(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    import torch

    return Versions(python=platform.python_version(), torch=torch.__version__, timm=dist("timm"),
                    lightning=dist("lightning"), ftbench=dist("ftbench"), git_commit=_git_commit())


def _git_commit() -> str | None:
    """The commit of a source checkout (src/ftbench inside it); None for an installed wheel."""
    root = Path(__file__).resolve().parents[3]
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             cwd=root, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None
