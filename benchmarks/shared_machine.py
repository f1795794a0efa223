"""Two workers of one tuned search on one machine, against one worker doing every trial.

Runs the tuned comparison (``python -m ftbench.train -m experiment=tuned``) on a fresh sweep
folder once as one command alone, then on another fresh folder as two copies of the command
started together with ``FTBENCH_WORKERS=2``: they share the folder's Optuna storage and split
its trials, and ``trainer.threads=auto`` gives each half the cores. ``OMP_NUM_THREADS`` and its
kin are removed from the commands' environment, so that ``auto`` decides, as for a user who
sets none. The search is unpruned (``tune.pruner=null``), so both do the same number of
trials, each to its last epoch.

Target: the two workers finish the search (from their start to the last search trial's
``result.json``) in at most 1.15x the one worker's time. Two workers cannot beat the cores
they share; they must not collapse by oversubscribing them. The whole command's wall-clock
(the final runs too) and the CPU time its processes used are printed alongside: threads that
oversubscribe the cores burn CPU time waiting on each other, while a machine busy with other
work stretches the wall-clock at the same CPU time. ``--oversubscribed`` also times two copies without
``FTBENCH_WORKERS`` (each taking every core), the case the setting exists for.

    python -m benchmarks.shared_machine [--oversubscribed] [Hydra overrides]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import verdict
from ftbench.run.result import RESULT_FILE, read_result

TARGET = 1.15
# Small: two strategies, a cheap one and a dear one, four trials each, one final seed, timm's
# tiny ResNet on a quarter of the embedded digits at 32 px (the figures are times, not accuracy).
SWEEP = ["-m", "experiment=tuned", "tune.strategies=[linear_probe,full]", "tune.trials=4",
         "tune.seeds=1", "tune.pruner=null", "trainer.max_epochs=2", "eval.shifts=[]",
         "model.name=test_resnet", "model.weights=none", "dataset.train_fraction=0.25"]
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "FTBENCH_WORKERS")


def environment(workers: int | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}
    if workers:
        env["FTBENCH_WORKERS"] = str(workers)
    return env


def sweep(folder: Path, copies: int, workers: int | None, overrides: list[str]) -> dict:
    """Run ``copies`` copies of the tuned comparison into ``folder`` at once; what they did."""
    command = [sys.executable, "-m", "ftbench.train", *SWEEP, *overrides, f"hydra.sweep.dir={folder}"]
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.time()
    procs = [subprocess.Popen(command, env=environment(workers), stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for _ in range(copies)]
    errors = [proc.communicate()[1] for proc in procs]
    seconds = time.time() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - used.ru_utime - used.ru_stime
    for proc, err in zip(procs, errors, strict=True):
        if proc.returncode != 0:
            sys.exit(f"a copy of the tuned comparison failed ({proc.returncode}):\n{err[-2000:]}")
    records = {path: read_result(path.parent) for path in folder.rglob(RESULT_FILE)}
    search = [p for p in records if p.relative_to(folder).parts[0] == "search"]
    return {"seconds": seconds, "cpu_seconds": cpu,
            "search_seconds": max(p.stat().st_mtime for p in search) - start,
            "search_jobs": len(search), "final_jobs": len(records) - len(search),
            "threads": sorted({r.runtime.torch_threads for r in records.values()} - {None})}


def load() -> str:
    """The 1-minute load average: how busy the machine was with other work too."""
    return f"load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else "load unknown"


def machine() -> str:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{platform.processor() or platform.machine()}, {cores} cores, {load()}"


def show(label: str, run: dict) -> None:
    print(f"  {label:31s} search {run['search_seconds']:6.1f} s ({run['search_jobs']} trials), whole "
          f"command {run['seconds']:6.1f} s ({run['final_jobs']} final runs), CPU time "
          f"{run['cpu_seconds']:6.1f} s, torch threads per job {run['threads']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--oversubscribed", action="store_true",
                        help="also time two copies that each take every core (no FTBENCH_WORKERS)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. model.name=test_resnet")
    args = parser.parse_args()
    print(f"shared_machine benchmark on {machine()}: {' '.join([*SWEEP, *args.overrides])}")
    with tempfile.TemporaryDirectory() as tmp:
        one = sweep(Path(tmp, "one"), copies=1, workers=None, overrides=args.overrides)
        show("one worker", one)
        two = sweep(Path(tmp, "two"), copies=2, workers=2, overrides=args.overrides)
        show("two workers, FTBENCH_WORKERS=2", two)
        if args.oversubscribed:
            show("two workers, every core each", sweep(Path(tmp, "over"), copies=2, workers=None,
                                                       overrides=args.overrides))
    print(f"at the end: {load()}")
    print(f"whole command, two workers / one: {two['seconds'] / one['seconds']:.3f}")
    print(verdict("search, two workers / one", two["search_seconds"] / one["search_seconds"], TARGET,
                  higher_is_better=False))


if __name__ == "__main__":
    main()
