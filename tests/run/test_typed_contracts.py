"""The type checker holds the declared contracts: renaming a field of the result schema or a
member of ``TrainingView`` makes ``mypy src/ftbench`` (part of ``make lint``) fail where the
old name is still read, and where a writer still writes it (the writers build the result's
parts by keyword: ``Cost(shift_eval_flops=...)``).

Every rename goes into one shadow copy and one mypy run, in which each must show its own error.
The run reads the package's own mypy settings, with the heavy libraries' sources left unread
(``SKIPPED``): the renamed names are the package's own, and reading torch's and Lightning's
sources takes half a minute with a cold cache where the rest takes seconds. ``make lint`` reads them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "src/ftbench"
SCHEMA = "src/ftbench/run/schema.py"
OBSERVED = "src/ftbench/finetune/observed.py"

# libraries read as Any (types from them unchecked): pydantic, numpy and optuna stay read
SKIPPED = ["torch", "torchvision", "lightning", "lightning_fabric", "pytorch_lightning", "timm",
           "transformers", "peft", "scipy", "pandas", "matplotlib", "wandb", "sklearn", "torchmetrics"]

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
    (the package itself is left as it is), from the repository's root."""
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
    # a process of its own: mypy's command line exits without tearing its state down; after its API,
    # the test's process took 12 s more to exit
    proc = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(config(tmp)),
                           "--cache-dir", str(tmp / "mypy_cache"), *arguments, PACKAGE],
                          capture_output=True, text=True, timeout=600)
    return proc.returncode, proc.stdout + proc.stderr


def config(tmp: Path) -> Path:
    """pyproject.toml's mypy settings, and ``SKIPPED`` not followed. A type from a skipped library
    reads as Any, which leaves some of the package's ``# type: ignore``s unused: not warned here."""
    skipped = ", ".join(f'"{name}.*"' for name in SKIPPED)
    path = tmp / "pyproject.toml"
    path.write_text((ROOT / "pyproject.toml").read_text()
                    + f'\n[[tool.mypy.overrides]]\nmodule = [{skipped}]\nfollow_imports = "skip"\n'
                    + '\n[[tool.mypy.overrides]]\nmodule = ["ftbench.*"]\nwarn_unused_ignores = false\n')
    return path


def test_renamed_contract_names_fail_the_type_checker_where_read_and_where_written(tmp_path, monkeypatch):
    """One mypy run holds every rename; each must fail it."""
    monkeypatch.chdir(ROOT)
    status, out = run_mypy(tmp_path)
    lines = out.splitlines()
    missed = [rename for rename, (_, _, message) in READ_RENAMES.items() if message not in out]
    for rename, (model, name, writer) in WRITE_RENAMES.items():
        message = f'Unexpected keyword argument "{name}" for "{model}"'
        if not any(line.startswith(f"{writer}:") and message in line for line in lines):
            missed.append(rename)
    assert status != 0 and not missed, f"renames mypy did not catch: {missed}\n{out}"
