"""The type checker holds the declared contracts: renaming a field of the result schema or a
member of ``TrainingView`` makes ``mypy src/ftbench`` (part of ``make lint``) fail where the
old name is still read, and where a writer still writes it (the writers build the result's
parts by keyword: ``Cost(shift_eval_flops=...)``).

Every rename goes into one shadow copy and one mypy run (a minute with a cold cache), in which
each must show its own error."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from mypy import api

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "src/ftbench"
SCHEMA = "src/ftbench/run/schema.py"
OBSERVED = "src/ftbench/finetune/observed.py"

# a read of each old name fails
READ_RENAMES = {
    "result-field": (SCHEMA, "    test_acc: Figure = None", '"Metrics" has no attribute "test_acc"'),
    "protocol-member": (OBSERVED, "    def trainable_at(self, progress: float) -> Mask:",
                        '"TrainingView" has no attribute "trainable_at"'),
}
# fields only writers use: the writer's keyword fails, in the writer's module
WRITE_RENAMES = {
    "build_result": ("Cost", "shift_eval_flops", "src/ftbench/run/result.py"),  # the shifted sets' cost
    "fit": ("Metrics", "test_loss", "src/ftbench/train.py"),
    "meter": ("Epoch", "val_loss", "src/ftbench/cost/meter.py"),  # the meter's history
}


def renamed(declaration: str) -> str:
    """``    test_acc: Figure = None`` -> ``    test_acc_renamed: Figure = None`` (a def likewise)."""
    name = declaration.split("def ")[-1].strip().split(":")[0].split("(")[0]
    return declaration.replace(name, f"{name}_renamed", 1)


def run_mypy(tmp: Path) -> tuple[int, str]:
    """mypy over the package as ``make lint`` runs it, every rename above made in shadow copies
    (the package itself is left as it is), from the repository's root: seconds with a warm cache,
    a minute without."""
    changes: dict[str, list[str]] = {}
    for source, declaration, _ in READ_RENAMES.values():
        changes.setdefault(source, []).append(declaration)
    for _, name, _ in WRITE_RENAMES.values():
        changes[SCHEMA].append(f"    {name}: Figure = None")
    arguments = []
    for source, declarations in changes.items():
        text = (ROOT / source).read_text()
        for declaration in declarations:
            assert text.count(declaration) == 1, f"{declaration!r} is not in {source} exactly once"
            text = text.replace(declaration, renamed(declaration))
        shadow = tmp / Path(source).name
        shadow.write_text(text)
        arguments += ["--shadow-file", source, str(shadow)]
    cache = tmp / "mypy_cache"
    if (ROOT / ".mypy_cache").is_dir():  # third-party modules stay checked: seconds, not a minute
        shutil.copytree(ROOT / ".mypy_cache", cache)
    out, err, status = api.run(["--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(cache),
                                *arguments, PACKAGE])
    return status, out + err


def test_renamed_contract_names_fail_the_type_checker_where_read_and_where_written(tmp_path, monkeypatch):
    """One mypy run (a minute with a cold cache) holds every rename; each must fail it."""
    monkeypatch.chdir(ROOT)
    status, out = run_mypy(tmp_path)
    lines = out.splitlines()
    missed = [rename for rename, (_, _, message) in READ_RENAMES.items() if message not in out]
    for rename, (model, name, writer) in WRITE_RENAMES.items():
        message = f'Unexpected keyword argument "{name}" for "{model}"'
        if not any(line.startswith(f"{writer}:") and message in line for line in lines):
            missed.append(rename)
    assert status != 0 and not missed, f"renames mypy did not catch: {missed}\n{out}"
