"""The type checker holds the declared contracts: renaming a field of the result schema or a
member of ``TrainingView`` makes ``mypy src/ftbench`` (part of ``make lint``) fail where the
old name is still read, and where a writer still writes it (the writers build the result's
parts by keyword: ``Cost(shift_eval_flops=...)``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from mypy import api

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "src/ftbench"
SCHEMA = "src/ftbench/run/schema.py"


def mypy_with(tmp_path: Path, source: str, old: str, new: str) -> tuple[int, str]:
    """mypy over the package as ``make lint`` runs it, with ``old`` renamed ``new`` in ``source``
    (read from a shadow copy: the package itself is left as it is)."""
    text = (ROOT / source).read_text()
    assert text.count(old) == 1, f"{old!r} is not in {source} exactly once"
    shadow = tmp_path / Path(source).name
    shadow.write_text(text.replace(old, new))
    cache = tmp_path / "mypy_cache"
    if (ROOT / ".mypy_cache").is_dir():  # third-party modules stay checked: seconds, not a minute
        shutil.copytree(ROOT / ".mypy_cache", cache)
    out, err, status = api.run(["--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(cache),
                                "--shadow-file", source, str(shadow), PACKAGE])
    return status, out + err


@pytest.mark.slow  # a mypy run over the package: seconds with a warm cache, a minute without
@pytest.mark.parametrize("source, old, new, message", [
    ("src/ftbench/run/schema.py", "    test_acc: Figure = None", "    test_accuracy: Figure = None",
     '"Metrics" has no attribute "test_acc"'),
    ("src/ftbench/finetune/observed.py", "    def trainable_at(self, progress: float) -> Mask:",
     "    def trainable_at_progress(self, progress: float) -> Mask:",
     '"TrainingView" has no attribute "trainable_at"'),
], ids=["result-field", "protocol-member"])
def test_a_renamed_contract_name_fails_the_type_checker(tmp_path, monkeypatch, source, old, new, message):
    monkeypatch.chdir(ROOT)
    status, out = mypy_with(tmp_path, source, old, new)
    assert status != 0 and message in out, out


@pytest.mark.slow  # as above
@pytest.mark.parametrize("field, writer", [
    ("Cost.shift_eval_flops", "src/ftbench/run/result.py"),  # build_result: the shifted test sets' cost
    ("Metrics.test_loss", "src/ftbench/train.py"),  # fit
    ("Epoch.val_loss", "src/ftbench/cost/meter.py"),  # the meter's history
], ids=["build_result", "fit", "meter"])
def test_a_field_only_writers_use_renamed_fails_the_type_checker_in_the_writer(tmp_path, monkeypatch, field,
                                                                              writer):
    monkeypatch.chdir(ROOT)
    model, name = field.split(".")
    declared = f"    {name}: Figure = None"
    status, out = mypy_with(tmp_path, SCHEMA, declared, declared.replace(name, f"{name}_renamed"))
    message = f'Unexpected keyword argument "{name}" for "{model}"'
    in_writer = [line for line in out.splitlines() if line.startswith(f"{writer}:") and message in line]
    assert status != 0 and in_writer, out
