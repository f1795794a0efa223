"""ftbench as a user installs it: a wheel (not editable) whose configs travel inside the package."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.helpers import FAST

ROOT = Path(__file__).resolve().parents[2]


def run(*cmd, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env={**os.environ, **(env or {})})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_a_wheel_installed_into_a_fresh_venv_trains_from_any_folder_with_a_users_own_configs(tmp_path):
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", tmp_path / "dist", ROOT)
    (wheel,) = (tmp_path / "dist").glob("ftbench-*.whl")
    shipped = zipfile.ZipFile(wheel).namelist()
    assert {"ftbench/conf/config.yaml", "ftbench/conf/strategy/gradual.yaml",
            "ftbench/conf/model/efficientnet_lite0.yaml"} <= set(shipped)

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    # without PYTHONPATH: a source checkout on it reads to pip as ftbench already installed
    run(sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "-q",
        "--no-deps", wheel, env={"PYTHONPATH": ""})
    # the dependencies come from this environment; ftbench itself only from the wheel
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = Path(run(venv / "bin" / "python", "-c", purelib).stdout.strip())
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    elsewhere = tmp_path / "elsewhere"
    own = elsewhere / "my_configs" / "model"
    own.mkdir(parents=True)
    (own / "tiny.yaml").write_text("name: test_efficientnet\nweights: none\n")
    overrides = [o for o in FAST if not o.startswith(("model.", "trainer.max_epochs"))]
    env = {"PYTHONPATH": "", "PYTHONNOUSERSITE": "1"}
    found = run(venv / "bin" / "python", "-c", "import ftbench; print(ftbench.__file__)", cwd=elsewhere,
                env=env).stdout
    assert found.startswith(str(site)), found  # not the checkout
    run(venv / "bin" / "ftbench-train", "trainer.max_epochs=1", "strategy=linear_probe",
        "hydra.searchpath=[file://my_configs]", "model=tiny", "hydra.run.dir=out", *overrides,
        cwd=elsewhere, env=env)
    result = json.loads((elsewhere / "out" / "result.json").read_text())
    assert result["status"] == "completed" and result["model"] == "test_efficientnet"
    assert result["strategy"] == "linear_probe" and len(result["history"]) == 1
